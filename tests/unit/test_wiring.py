"""Wiring each function's parts: the retry deadline from the Lambda context, and builders that import
only what their function uses (a module another function needs is cold-start time for nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from upscaler.wiring import DEADLINE_MARGIN_SECONDS, deadline_for


@dataclass
class Context:
    remaining_millis: int

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


def test_no_context_means_no_deadline():
    assert deadline_for(None) is None


def test_a_context_without_remaining_time_means_no_deadline():
    assert deadline_for(object()) is None  # type: ignore[arg-type]


def test_the_deadline_keeps_the_margin_back_from_the_remaining_time():
    before = time.monotonic()
    deadline = deadline_for(Context(30_000))
    after = time.monotonic()
    assert deadline is not None
    assert before + 30 - DEADLINE_MARGIN_SECONDS <= deadline <= after + 30 - DEADLINE_MARGIN_SECONDS


def test_a_margin_can_be_chosen():
    before = time.monotonic()
    deadline = deadline_for(Context(10_000), margin=1.5)
    after = time.monotonic()
    assert deadline is not None
    assert before + 8.5 <= deadline <= after + 8.5


@pytest.mark.parametrize("remaining_millis", [0, 1_000, int(DEADLINE_MARGIN_SECONDS * 1000)])
def test_less_time_than_the_margin_is_a_deadline_already_reached(remaining_millis):
    before = time.monotonic()
    deadline = deadline_for(Context(remaining_millis))
    after = time.monotonic()
    assert deadline is not None
    assert before <= deadline <= after


# Builds one function's parts in a fresh interpreter and prints which of these modules were loaded.
PROBE = """
import json, sys
import upscaler.wiring as wiring
builder = sys.argv[1]
if builder:
    getattr(wiring, builder)()
watched = json.loads(sys.argv[2])
print(json.dumps(sorted(name for name in watched if name in sys.modules)))
"""

WATCHED = [
    "httpx",
    "aws_lambda_powertools",
    "upscaler.runware",
    "upscaler.submission",
    "upscaler.webhook",
    "upscaler.results",
    "upscaler.reconciliation",
    "upscaler.completion_events",
]

ENVIRONMENT = {
    "AWS_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "JOBS_TABLE": "jobs",
    "OUTPUT_BUCKET": "out-bucket",
    "RUNWARE_API_KEY_SECRET": "runware-key-secret",
    "WEBHOOK_TOKEN_SECRET": "webhook-key-secret",
    "WEBHOOK_URL": "https://hooks.example.test/webhook",
    "COMPLETION_EVENT_BUS": "upscale-events",
}


def loaded_modules(builder: str, **overrides: str) -> set[str]:
    env = {"PATH": os.environ.get("PATH", ""), **ENVIRONMENT, **overrides}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, builder, json.dumps(WATCHED)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def test_importing_the_wiring_loads_no_functions_modules():
    assert loaded_modules("") == set()


@pytest.mark.parametrize(
    ("builder", "needed", "never"),
    [
        (
            "build_webhook_receiver",
            {"upscaler.webhook", "upscaler.results"},
            {"httpx", "upscaler.runware", "upscaler.submission", "upscaler.reconciliation"},
        ),
        (
            "build_submitter",
            {"httpx", "upscaler.runware", "upscaler.submission"},
            {"upscaler.webhook", "upscaler.results", "upscaler.reconciliation"},
        ),
        (
            "build_reconciler",
            {"httpx", "upscaler.runware", "upscaler.results", "upscaler.reconciliation"},
            {"upscaler.webhook", "upscaler.submission"},
        ),
    ],
)
def test_each_builder_loads_only_its_functions_modules(builder, needed, never):
    loaded = loaded_modules(builder)
    assert needed <= loaded
    assert not loaded & never, f"{builder} loads {sorted(loaded & never)}"
    assert "aws_lambda_powertools" not in loaded, "secrets are read on first use, not while building"


def test_completion_events_are_loaded_only_when_a_bus_is_set():
    assert "upscaler.completion_events" not in loaded_modules("build_webhook_receiver", COMPLETION_EVENT_BUS="")


def test_the_reconcile_function_may_send_a_job_again_and_the_webhook_function_may_not(aws, monkeypatch):
    from upscaler.settings import Settings
    from upscaler.wiring import build_reconciler, build_webhook_receiver

    settings = Settings.from_environment()
    assert settings.webhook_url  # the reconcile function is given the webhook URL
    reconcile_recovery = build_reconciler(settings).settler.recorder.recovery
    webhook_recovery = build_webhook_receiver(settings).recorder.recovery
    assert reconcile_recovery is not None and reconcile_recovery.resender is not None
    assert webhook_recovery is not None and webhook_recovery.resender is None


def test_urls_are_signed_by_the_signing_role_when_one_is_named(aws, monkeypatch):
    from upscaler.settings import Settings
    from upscaler.wiring import build_submitter

    assert build_submitter(Settings.from_environment()).objects.signing is None
    monkeypatch.setenv("URL_SIGNING_ROLE_ARN", "arn:aws:iam::123456789012:role/url-signing")
    signing = build_submitter(Settings.from_environment()).objects.signing
    assert signing is not None and signing.role_arn.endswith(":role/url-signing")
