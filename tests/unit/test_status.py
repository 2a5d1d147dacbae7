"""`status` (upscale_cli/status.py): jobs per status and the newest jobs, as tables or JSON."""

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


def test_the_counts_and_the_newest_jobs_as_json(aws):
    seed()
    code, text = run("--limit", "2", as_json=True)
    report = json.loads(text)
    assert code == 0
    assert report["stack"] == "stack test (moto)"
    assert report["counts"] == {"CLAIMED": 0, "SUBMITTED": 1, "COMPLETED": 1, "FAILED": 1, "TIMED_OUT": 0,
                                "REJECTED": 0}  # fmt: skip
    assert report["total"] == 3
    assert [job["sourceKey"] for job in report["newest"]] == ["inbox/new.png", "inbox/bad.png"]


def test_the_tables_show_counts_a_total_and_the_newest_jobs_of_a_status(aws):
    seed()
    code, text = run("--status", "COMPLETED")
    lines = text.splitlines()
    assert code == 0
    assert lines[0] == "stack test (moto)"
    assert "COMPLETED  1" in lines and "total      3" in lines
    assert "Newest 1 COMPLETED jobs" in lines
    row = next(line for line in lines if line.startswith("2024-03-01T12:00:00"))
    assert row.split()[1:6] == ["inbox/old.png", "COMPLETED", "640x480", "1155x866", "$0.0050"]
    failed = run("--status", "FAILED")[1]
    assert "FAILED (invalidImage)" in failed


def test_a_limit_of_zero_lists_no_jobs(aws):
    seed()
    report = json.loads(run("--limit", "0", as_json=True)[1])
    assert report["newest"] == [] and report["total"] == 3


def test_a_paused_intake_says_since_when_why_and_the_next_try(aws):
    from upscaler.intake_pause import BackOff, PauseReason, PauseStore

    seed()
    assert "intake paused" not in run()[1]
    target = moto_target()
    PauseStore(target.client("dynamodb"), target.jobs_table, BackOff()).open(
        PauseReason.ACCOUNT_REFUSED, "HTTP 402 insufficientCredits", None, START
    )
    code, text = run()
    assert code == 0
    assert text.splitlines()[1] == (
        "intake paused since 2024-03-01T12:00:00.000Z: account refused, next try at 2024-03-01T12:01:00.000Z"
        " (1 failed attempt)"
    )
    assert "total      3" in text, "the pause item is no job"
