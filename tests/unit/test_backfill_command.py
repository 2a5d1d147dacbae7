"""`backfill` (upscale_cli/backfill_command.py): the inbox's objects onto the stack's ingestion queue."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest

from tests.conftest import ENVIRONMENT, INBOX_BUCKET, REGION
from tests.unit.cli_target import moto_target, run_command
from upscale_cli import backfill_command
from upscale_cli.main import build_parser
from upscale_cli.output import Output


def run(*argv: str, as_json: bool = False, **names: Any) -> tuple[int, str]:
    stream = io.StringIO()
    args = build_parser().parse_args(["backfill", *argv])
    output = Output(as_json=as_json, stream=stream)
    return run_command(lambda: backfill_command.run(args, moto_target(**names), output), stream)


def inbox(aws) -> str:
    for key, body in (("inbox/a.png", b"12345"), ("inbox/x/b.png", b"123"), ("inbox/x/", b""), ("other/c.png", b"1")):
        aws.s3.put_object(Bucket=INBOX_BUCKET, Key=key, Body=body)
    return boto3.client("sqs", region_name=REGION).create_queue(QueueName="ingest")["QueueUrl"]


def queued_keys(url: str) -> list[str]:
    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return sorted(json.loads(m["Body"])["Records"][0]["s3"]["object"]["key"] for m in messages)


def test_the_inbox_prefix_is_enqueued_by_default(aws):
    url = inbox(aws)
    code, text = run(ingest_queue_url=url)
    assert code == 0
    assert text == (
        "s3://test-inbox/inbox/: 3 objects (8 bytes): 2 new enqueued, 0 already have jobs, "
        "1 ignored (1 folder placeholder)\n"
    )
    assert queued_keys(url) == ["inbox/a.png", "inbox/x/b.png"]


def test_a_dry_run_under_a_prefix_only_counts(aws):
    url = inbox(aws)
    code, text = run("--prefix", "inbox/x/", "--dry-run", as_json=True, ingest_queue_url=url,
                     submit_environment=ENVIRONMENT)  # fmt: skip
    assert code == 0
    counted = json.loads(text)
    estimate = counted.pop("estimate")
    assert counted == {"bucket": INBOX_BUCKET, "prefix": "inbox/x/", "dry_run": True, "objects": 2, "bytes": 3,
                       "new": 1, "have_jobs": 0, "have_jobs_by_status": {}, "enqueued": 0, "skipped_folders": 1,
                       "ignored": 1}  # fmt: skip
    assert (estimate["would_send"], estimate["would_refuse"], estimate["usd"]) == (0, {"notAnImage": 1}, 0)
    assert queued_keys(url) == []
    text = run("--dry-run", ingest_queue_url=url, submit_environment=ENVIRONMENT)[1]
    assert text.splitlines()[0].endswith(
        ": 2 new would be enqueued, 0 already have jobs, 1 ignored (1 folder placeholder)"
    )


def test_one_of_each_is_said_in_the_singular(aws):
    url = boto3.client("sqs", region_name=REGION).create_queue(QueueName="ingest")["QueueUrl"]
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/one/a.png", Body=b"1")
    code, text = run("--prefix", "inbox/one/", "--dry-run", ingest_queue_url=url, submit_environment=ENVIRONMENT)
    assert code == 0
    assert text.splitlines()[0] == ("s3://test-inbox/inbox/one/: 1 object (1 byte): 1 new would be enqueued, "
                                    "0 already have jobs, 0 ignored (0 folder placeholders)")  # fmt: skip


@pytest.mark.parametrize("prefix", ["elsewhere/", "other/", "", "inbo"])
def test_a_prefix_outside_the_inbox_is_refused_and_nothing_is_sent(aws, prefix):
    url = inbox(aws)
    code, text = run("--prefix", prefix, ingest_queue_url=url)
    assert code == 2
    assert text == (
        f"--prefix {prefix!r} is outside the inbox s3://test-inbox/inbox/: the pipeline ignores objects there; "
        "give a prefix that starts with 'inbox/'\n"
    )
    assert queued_keys(url) == []


def test_a_stack_without_an_ingestion_queue_is_exit_status_3(aws):
    code, text = run()
    assert (code, text) == (3, "stack test (moto) has no ingestion queue output (IngestQueueUrl)\n")
