"""`status` (upscale_cli/status.py): open jobs per status and the newest open jobs, as tables or JSON.

Ended jobs are in no index (they are read by key): they are neither counted nor listed."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import boto3

from tests.conftest import REGION
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
    assert "total      2" in text, "the pause item is no job"


class Terminal(io.StringIO):
    """A stdout that says it is a terminal (rich then draws tables to its width)."""

    def isatty(self) -> bool:
        return True


LONG_KEY = "inbox/" + "a-rather-long-folder-name/" * 4 + "with a long file name.png"


def run_on(stream: io.StringIO, *argv: str, **names: str) -> str:
    args = build_parser().parse_args(["status", *argv])
    assert status.run(args, moto_target(**names), Output(stream=stream)) == 0
    return stream.getvalue()


def test_without_a_terminal_ids_and_keys_are_never_cut(aws):
    job_id = add_job(moto_target(), LONG_KEY, "SUBMITTED", START)
    text = run_on(io.StringIO())
    row = next(line for line in text.splitlines() if line.startswith("2024"))
    assert LONG_KEY in row and row.endswith(job_id)


def test_on_a_narrow_terminal_ids_and_keys_wrap_whole_and_wide_prints_them_on_one_line(aws, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    job_id = add_job(moto_target(), LONG_KEY, "SUBMITTED", START)
    narrow = run_on(Terminal())
    assert "…" not in narrow, "no id or key is shortened"
    last_column = "".join(line.split("│")[-2].strip() for line in narrow.splitlines() if line.count("│") > 2)
    assert job_id in last_column, "the id, wrapped over lines, is all there"
    wide = run_on(Terminal(), "--wide")
    row = next(line for line in wide.splitlines() if line.startswith("2024"))
    assert LONG_KEY in row and row.endswith(job_id)


def test_the_dead_letter_queue_depth_is_shown(aws):
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName="submit-dlq")["QueueUrl"]
    for n in range(2):
        sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"n": n}))
    text = run_on(io.StringIO(), dlq_url=dlq)
    assert text.splitlines()[1] == "dead-letter queue: 2 messages waiting (`s3-upscale redrive` moves them back)"
    stream = io.StringIO()
    args = build_parser().parse_args(["status", "--json"])
    status.run(args, moto_target(dlq_url=dlq), Output(as_json=True, stream=stream))
    assert json.loads(stream.getvalue())["deadLetters"] == 2
    sqs.purge_queue(QueueUrl=dlq)
    assert run_on(io.StringIO(), dlq_url=dlq).splitlines()[1] == "dead-letter queue: empty"
    assert run_on(io.StringIO()).splitlines()[1].startswith("dead-letter queue: this stack names none")


def test_todays_images_and_spend_are_shown_against_the_limit(aws):
    from upscaler.clock import utc_now
    from upscaler.spend_limit import DailyLimit, SpendCounter

    seed()
    assert "spend today (UTC): 0 images, $0 (limit: not known until an image is sent today)" in run()[1]
    target = moto_target()
    limit = DailyLimit(images=20, microdollars=100_000)
    granted = SpendCounter(target.client("dynamodb"), target.jobs_table, limit).reserve([5_000] * 25, utc_now())
    assert granted.granted == 20
    text = run()[1]
    assert (
        "spend today (UTC): 20 images, $0.1 of 20 images and $0.1 a day"
        " (reached: intake waits for the next UTC day or a higher limit)"
    ) in text
    report = json.loads(run(as_json=True)[1])["spendToday"]
    assert report == {"images": 20, "usd": 0.1, "limitImages": 20, "limitUsd": 0.1, "limitReached": True}
