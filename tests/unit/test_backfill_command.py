"""`backfill` (upscale_cli/backfill_command.py): the inbox's objects onto the stack's ingestion queue."""

from __future__ import annotations

import io
import json

import boto3

from tests.conftest import INBOX_BUCKET, REGION
from tests.unit.cli_target import moto_target
from upscale_cli import backfill_command
from upscale_cli.main import build_parser
from upscale_cli.output import Output


def run(*argv: str, as_json: bool = False, **names: str) -> tuple[int, str]:
    stream = io.StringIO()
    args = build_parser().parse_args(["backfill", *argv])
    return backfill_command.run(args, moto_target(**names), Output(as_json=as_json, stream=stream)), stream.getvalue()


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
    assert text == "s3://test-inbox/inbox/: 2 objects (8 bytes), enqueued 2; 1 folder placeholders skipped\n"
    assert queued_keys(url) == ["inbox/a.png", "inbox/x/b.png"]


def test_a_dry_run_under_a_prefix_only_counts(aws):
    url = inbox(aws)
    code, text = run("--prefix", "inbox/x/", "--dry-run", as_json=True, ingest_queue_url=url)
    assert code == 0
    assert json.loads(text) == {"bucket": INBOX_BUCKET, "prefix": "inbox/x/", "dry_run": True, "objects": 1,
                                "bytes": 3, "enqueued": 0, "skipped_folders": 1}  # fmt: skip
    assert queued_keys(url) == []
    assert run("--dry-run", ingest_queue_url=url)[1].endswith(", would enqueue 2; 1 folder placeholders skipped\n")


def test_a_stack_without_an_ingestion_queue_is_exit_status_2(aws):
    code, text = run()
    assert (code, text) == (2, "stack test (moto) has no ingestion queue output\n")
