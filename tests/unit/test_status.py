"""`status` (upscale_cli/status.py): open jobs per status and the newest open jobs, as tables or JSON.

Ended jobs are in no index (they are read by key): they are neither counted nor listed."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.unit.cli_target import add_job, moto_target
from upscale_cli import status
from upscale_cli.main import build_parser
from upscale_cli.output import Output

START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def run(*argv: str, as_json: bool = False) -> tuple[int, str]:
    stream = io.StringIO()
    code = status.run(
        build_parser().parse_args(["status", *argv]), moto_target(), Output(as_json=as_json, stream=stream)
    )
    return code, stream.getvalue()


def seed() -> None:
    target = moto_target()
    done = {"inputWidth": 640, "inputHeight": 480, "outputWidth": 1155, "outputHeight": 866, "cost": Decimal("0.005")}
    add_job(target, "inbox/old.png", "COMPLETED", START, **done)
    add_job(target, "inbox/bad.png", "FAILED", START + timedelta(minutes=1), errorCode="invalidImage")
    add_job(target, "inbox/new.png", "SUBMITTED", START + timedelta(minutes=2))
    add_job(target, "inbox/wait.png", "CLAIMED", START + timedelta(minutes=3), waitingReason="Runware refused")


def test_the_counts_and_the_newest_jobs_as_json(aws):
    seed()
    code, text = run("--limit", "2", as_json=True)
    report = json.loads(text)
    assert code == 0
    assert report["stack"] == "stack test (moto)"
    assert report["counts"] == {"CLAIMED": 1, "SUBMITTED": 1}
    assert report["total"] == 2
    assert [job["sourceKey"] for job in report["newest"]] == ["inbox/wait.png", "inbox/new.png"]


def test_the_tables_show_counts_a_total_and_the_newest_jobs_of_a_status(aws):
    seed()
    code, text = run("--status", "SUBMITTED")
    lines = text.splitlines()
    assert code == 0
    assert lines[0] == "stack test (moto)"
    assert "SUBMITTED  1" in lines and "CLAIMED    1" in lines and "total      2" in lines
    assert "Newest 1 SUBMITTED jobs" in lines
    row = next(line for line in lines if line.startswith("2024-03-01T12:02:00"))
    assert row.split()[1:3] == ["inbox/new.png", "SUBMITTED"]
    assert "COMPLETED" not in text and "FAILED" not in text


def test_a_limit_of_zero_lists_no_jobs(aws):
    seed()
    report = json.loads(run("--limit", "0", as_json=True)[1])
    assert report["newest"] == [] and report["total"] == 2
