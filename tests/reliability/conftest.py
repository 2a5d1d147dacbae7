"""One local stack for the whole reliability session; faults are set per scenario and reset after.

RELIABILITY_SCALE=soak (make soak) runs every scenario with more objects. The report table is
printed at the end of the run and written to .local-stack/reliability-report.md. Each test's rows
travel on its test report, so the table is whole when the suite runs in several processes
(pytest-xdist: one stack per process), in the order the scenarios are collected (by file and line),
whatever order they ran in.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from unittest import mock

import pytest

from local.runware_emulator import FaultConfig
from local.stack import LocalStack, StackConfig
from tests.reliability.harness import (
    EMULATOR_WORKERS,
    GRANTED_SOURCE_KMS_KEY,
    JOB_MAX_AGE_SECONDS,
    MAX_INPUT_BYTES,
    RECONCILE_AFTER_SECONDS,
    ROWS,
    SCALE,
    Row,
    report_table,
)

# Fewer Runware attempts per invocation than deployed, so an outage reaches the DLQ in seconds.
RUNWARE_MAX_ATTEMPTS = "3"

_session_started = time.monotonic()
ROW_PROPERTY = "reliability report row"
# (collection index of the test, order within it, row) of every test that reported, in any process.
_reported: list[tuple[int, int, Row]] = []
COLLECTED_AS = pytest.StashKey[int]()


NO_METRICS_WARNING = "No application metrics to publish"
# Run in several processes (make test: pytest-xdist), the longest scenario starts first so the others
# fill the workers around it.
LONGEST_FIRST = ("test_load.py",)


def pytest_configure(config: pytest.Config) -> None:
    # The stack filters Powertools' "no metrics to publish" warning (metrics are not published
    # locally), but its functions run on its threads, in whichever test runs or between two.
    config.addinivalue_line("filterwarnings", f"ignore:{NO_METRICS_WARNING}:UserWarning")
    warnings.filterwarnings("ignore", message=NO_METRICS_WARNING, category=UserWarning)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for index, item in enumerate(items):
        item.stash[COLLECTED_AS] = index  # the report lists the scenarios in this order
    items.sort(key=lambda item: item.path.is_relative_to(here) and item.path.name not in LONGEST_FIRST)


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    config = StackConfig(
        emulator_workers=EMULATOR_WORKERS,
        reconcile_interval_seconds=1.0,
        parameter_overrides={
            "ReconcileAfterSeconds": str(RECONCILE_AFTER_SECONDS),
            "JobMaxAgeSeconds": str(JOB_MAX_AGE_SECONDS),
            "MaxInputBytes": str(MAX_INPUT_BYTES),
            "SourceKmsKeyArns": GRANTED_SOURCE_KMS_KEY,
        },
        seed=20240611,
    )
    # The functions read RUNWARE_MAX_ATTEMPTS when the stack loads them; the test process gets its own back after.
    with mock.patch.dict(os.environ, {"RUNWARE_MAX_ATTEMPTS": RUNWARE_MAX_ATTEMPTS}), LocalStack(config) as running:
        yield running


@pytest.fixture(autouse=True)
def reset_faults(stack: LocalStack) -> Iterator[None]:
    assert stack.emulator is not None
    stack.emulator.faults = FaultConfig()
    if stack.emulator.wait_idle(5):
        # Each scenario draws its faults from the seed afresh, whatever ran before it.
        stack.emulator.reset()
    yield
    stack.emulator.faults = FaultConfig()


@pytest.fixture(autouse=True)
def report_rows(request: pytest.FixtureRequest) -> Iterator[None]:
    """The report rows this test added, put on its test report (read by pytest_runtest_logreport)."""
    before = len(ROWS)
    yield
    index = request.node.stash[COLLECTED_AS]
    for row in ROWS[before:]:
        request.node.user_properties.append((ROW_PROPERTY, {"test": index, "row": asdict(row)}))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "teardown":
        return
    rows = [value for name, value in report.user_properties if name == ROW_PROPERTY]
    for order, value in enumerate(rows):
        _reported.append((value["test"], order, Row(**value["row"])))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    if not _reported or hasattr(config, "workerinput"):
        return  # a pytest-xdist worker: the rows went to the main process on the test reports
    table = report_table(row for _, _, row in sorted(_reported, key=lambda entry: entry[:2]))
    elapsed = time.monotonic() - _session_started
    title = f"reliability report ({SCALE} scale, {elapsed:.0f} s)"
    path = config.rootpath / ".local-stack" / "reliability-report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {title[0].upper()}{title[1:]}\n\n{table}\n")
    terminalreporter.write_sep("=", title)
    for line in table.splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"(written to {path.relative_to(config.rootpath)})")
