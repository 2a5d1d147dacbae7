"""Every function's handler imports with exactly the environment the template gives it.

Handlers read their settings at import time and refuse to start without them, so a setting that
the code requires but the template does not set fails every invocation after a clean deploy. Each
handler is imported in a fresh interpreter whose environment holds only what Lambda would set.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from local.template import deployed_environment, function_specs, load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template()
FUNCTIONS = sorted(function_specs(TEMPLATE))


def _import_handler(function: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    spec = function_specs(TEMPLATE)[function]
    module, handler = spec.handler.rsplit(".", 1)
    code = (
        "import importlib, sys\n"
        f"sys.path[:0] = [{str(ROOT / spec.code_uri)!r}, {str(ROOT / 'layers' / 'common')!r}]\n"
        f"assert callable(getattr(importlib.import_module({module!r}), {handler!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-I", "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("function", FUNCTIONS)
def test_handler_imports_with_the_template_environment(function):
    result = _import_handler(function, deployed_environment(TEMPLATE, function))
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1:]


@pytest.mark.parametrize("function", ["SubmitFunction", "ReconcileFunction"])
def test_a_missing_setting_is_caught(function):
    environment = deployed_environment(TEMPLATE, function)
    required = {"SubmitFunction": "INGEST_QUEUE_URL", "ReconcileFunction": "SUBMIT_FUNCTION_NAME"}[function]
    del environment[required]
    result = _import_handler(function, environment)
    assert result.returncode != 0
    assert required in result.stderr
