"""One local stack for the whole reliability session; faults are set per scenario and reset after.

RELIABILITY_SCALE=soak (make soak) runs every scenario with more objects. The report table is
printed at the end of the run and written to .local-stack/reliability-report.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from local.runware_emulator import FaultConfig
from local.stack import LocalStack, StackConfig
from tests.reliability.harness import (
    EMULATOR_WORKERS,
    JOB_MAX_AGE_SECONDS,
    MAX_INPUT_BYTES,
    RECONCILE_AFTER_SECONDS,
    ROWS,
    SCALE,
    report_table,
)

# Fewer Runware attempts per invocation than deployed, so an outage reaches the DLQ in seconds.
RUNWARE_MAX_ATTEMPTS = "3"

_session_started = time.monotonic()


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    previous = os.environ.get("RUNWARE_MAX_ATTEMPTS")
    os.environ["RUNWARE_MAX_ATTEMPTS"] = RUNWARE_MAX_ATTEMPTS
    config = StackConfig(
        emulator_workers=EMULATOR_WORKERS,
        reconcile_interval_seconds=1.0,
        parameter_overrides={
            "ReconcileAfterSeconds": str(RECONCILE_AFTER_SECONDS),
            "JobMaxAgeSeconds": str(JOB_MAX_AGE_SECONDS),
            "MaxInputBytes": str(MAX_INPUT_BYTES),
        },
        seed=20240611,
    )
    try:
        with LocalStack(config) as running:
            yield running
    finally:
        if previous is None:
            os.environ.pop("RUNWARE_MAX_ATTEMPTS", None)
        else:
            os.environ["RUNWARE_MAX_ATTEMPTS"] = previous


@pytest.fixture(autouse=True)
def reset_faults(stack: LocalStack) -> Iterator[None]:
    assert stack.emulator is not None
    stack.emulator.faults = FaultConfig()
    if stack.emulator.wait_idle(5):
        # Each scenario draws its faults from the seed afresh, whatever ran before it.
        stack.emulator.reset()
    yield
    stack.emulator.faults = FaultConfig()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    if not ROWS:
        return
    table = report_table(ROWS)
    elapsed = time.monotonic() - _session_started
    title = f"reliability report ({SCALE} scale, {elapsed:.0f} s)"
    path = config.rootpath / ".local-stack" / "reliability-report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {title[0].upper()}{title[1:]}\n\n{table}\n")
    terminalreporter.write_sep("=", title)
    for line in table.splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(written to {path.relative_to(config.rootpath)})")
