"""The local stack with its moto server in a process of its own (StackConfig.moto_in_own_process):
the pipeline runs end to end, and the stack's changes to moto hold in that process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.stack_waits import BOUND_SECONDS


def test_the_pipeline_runs_with_moto_in_a_process_of_its_own() -> None:
    from tests.integration import moto_process_stack as scenario

    root = Path(__file__).resolve().parents[2]
    completed = subprocess.run(
        [sys.executable, "-m", "tests.integration.moto_process_stack"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "layers" / "common"), str(root)])},
        capture_output=True,
        text=True,
        timeout=BOUND_SECONDS + 240,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(scenario.RESULT_PREFIX)]
    assert completed.returncode == 0 and lines, completed.stderr[-4000:]
    result = json.loads(lines[-1][len(scenario.RESULT_PREFIX) :])

    assert result["statuses"] == ["COMPLETED"] * 3
    assert result["via"] == ["webhook"] * 3
    assert result["refusal"] == "AccessDenied", "the inbox's KMS grant is applied in moto's process"
    assert result["moto_pid"] not in (None, result["stack_pid"])
    assert result["moto_cpu_seconds"] > 0
    assert result["dead_letters"] == 0
