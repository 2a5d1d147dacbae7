"""The ingestion queue: a poison upload alone in the DLQ, backfill twice, one completion event per ending."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from botocore.exceptions import ClientError

from local.runware_emulator import FaultConfig
from local.stack import LocalStack
from tests.reliability.harness import (
    RECONCILE_AFTER_SECONDS,
    Drop,
    assert_invariant,
    aws,
    check,
    dead_letters,
    drop_all,
    image_bytes,
    jobs_by_key,
    run_scenario,
    scaled,
    sent_tasks,
    settle,
)
from tests.stack_waits import BOUND_SECONDS
from upscale_cli.backfill import backfill
from upscaler.job_record import TERMINAL_STATUSES

SMALL = {"target-megapixels": "1"}


def photos(count: int, width: int = 190) -> list[Drop]:
    return [Drop(f"{index:04d}.jpg", image_bytes(width, 120, shade=index), SMALL) for index in range(count)]


def count_deliveries(stack: LocalStack, monkeypatch: pytest.MonkeyPatch, key_prefix: str) -> Counter[str]:
    """How many times the submit function was handed each key under the prefix, batch by batch."""
    submit = stack.functions["SubmitFunction"]
    original = submit.invoke
    deliveries: Counter[str] = Counter()
    lock = threading.Lock()

    def counting(event: dict[str, Any]) -> Any:
        for message in event.get("Records", []):
            for record in json.loads(message["body"]).get("Records", []):
                key = unquote_plus(str(record.get("s3", {}).get("object", {}).get("key", "")))
                if key.startswith(key_prefix):
                    with lock:
                        deliveries[key] += 1
        return original(event)

    monkeypatch.setattr(submit, "invoke", counting)
    return deliveries


def refuse_s3_for(stack: LocalStack, key: str) -> Any:
    """The submit function's S3 client fails every call about one key (as S3 failing for that object
    would; a refusal such as AccessDenied is not retried but rejected, see test_unreadable_sources.py)."""
    client = stack.functions["SubmitFunction"].module.submitter.objects._s3

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == key:
            raise ClientError(
                {
                    "Error": {
                        "Code": "InternalError",
                        "Message": "We encountered an internal error. Please try again.",
                    },
                    "ResponseMetadata": {"HTTPStatusCode": 500},
                },
                "GetObject",
            )

    client.meta.events.register("before-parameter-build.s3", refuse)
    return lambda: client.meta.events.unregister("before-parameter-build.s3", refuse)


def max_receive_count(stack: LocalStack) -> int:
    attributes = aws(stack, "sqs").get_queue_attributes(
        QueueUrl=stack.names["ingest_queue_url"], AttributeNames=["RedrivePolicy"]
    )["Attributes"]
    return int(json.loads(attributes["RedrivePolicy"])["maxReceiveCount"])


def test_an_upload_that_always_fails_is_dead_lettered_alone_and_redriven(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = "rel-poison/"
    key_prefix = stack.names["inbox_prefix"] + prefix
    drops = photos(scaled(12, 60))
    poison = f"{key_prefix}{drops[len(drops) // 2].name}"
    deliveries = count_deliveries(stack, monkeypatch, key_prefix)
    allow = refuse_s3_for(stack, poison)
    started = time.monotonic()
    try:
        dropped = drop_all(stack, prefix, drops)
        settled = settle(stack, prefix, dropped)
        row = check(
            stack, "an upload that always fails: dead-lettered alone", prefix, dropped, started=started, settled=settled
        )
    finally:
        allow()
    assert_invariant(row)
    assert (row.in_dlq, row.completed) == (1, row.objects - 1)
    [letter] = [letter for letter in dead_letters(stack) if any(key == poison for _, key, _ in letter.sources)]
    assert json.loads(letter.body)["Records"][0]["eventSource"] == "aws:s3", "the upload's own event, to re-drive"
    assert deliveries[poison] == max_receive_count(stack), "received maxReceiveCount times, then dead-lettered"
    neighbours = {key: count for key, count in deliveries.items() if key != poison}
    assert neighbours and set(neighbours.values()) == {1}, f"neighbours were retried: {neighbours}"
    assert all(len(uuids) == 1 for uuids in sent_tasks(stack, prefix).values()), "each neighbour sent once"

    started = time.monotonic()
    task = stack.redrive()
    assert task["Status"] == "COMPLETED" and task["ApproximateNumberOfMessagesMoved"] >= 1
    settled = settle(stack, prefix, dropped)
    after = check(
        stack,
        "an upload that always fails: after the fix and a re-drive",
        prefix,
        dropped,
        started=started,
        settled=settled,
    )
    assert_invariant(after)
    assert (after.completed, after.in_dlq) == (after.objects, 0)
    assert jobs_by_key(stack, prefix)[poison]["status"] == "COMPLETED"


def test_backfill_twice_creates_no_second_job(stack: LocalStack) -> None:
    prefix = "rel-backfill/"
    s3, sqs = aws(stack, "s3"), aws(stack, "sqs")
    bucket = stack.names["inbox_bucket"]
    notifications = s3.get_bucket_notification_configuration(Bucket=bucket)
    notifications.pop("ResponseMetadata", None)
    started = time.monotonic()
    # Images already in the bucket before the stack watched it: uploaded with its notification off.
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    try:
        dropped = drop_all(stack, prefix, photos(scaled(10, 50)))
    finally:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=notifications)
    time.sleep(2)
    assert jobs_by_key(stack, prefix) == {}, "no event: nothing processed them yet"

    def run(dry_run: bool) -> Any:
        return backfill(
            s3,
            sqs,
            aws(stack, "dynamodb"),
            bucket=bucket,
            jobs_table=stack.names["jobs_table"],
            prefix=stack.names["inbox_prefix"] + prefix,
            queue_url=stack.names["ingest_queue_url"],
            dry_run=dry_run,
        )

    counted = run(dry_run=True)
    assert (counted.objects, counted.enqueued) == (len(dropped), 0)
    first = run(dry_run=False)
    assert first.enqueued == len(dropped)
    settled = settle(stack, prefix, dropped)
    row = check(stack, "backfill of objects already in the bucket", prefix, dropped, started=started, settled=settled)
    assert_invariant(row)
    assert row.completed == row.objects
    jobs_before = {key: job["jobId"] for key, job in jobs_by_key(stack, prefix).items()}

    started = time.monotonic()
    second = run(dry_run=False)
    assert (second.enqueued, second.have_jobs) == (0, len(dropped)), "objects with jobs are not sent again"
    settled = settle(stack, prefix, dropped)
    again = check(stack, "backfill run a second time", prefix, dropped, started=started, settled=settled)
    assert_invariant(again)
    assert {key: job["jobId"] for key, job in jobs_by_key(stack, prefix).items()} == jobs_before
    assert all(len(uuids) == 1 for uuids in sent_tasks(stack, prefix).values()), "nothing sent a second time"


def completion_events(stack: LocalStack, key_prefix: str) -> list[dict[str, Any]]:
    """Every completion event the local rule routed, taken off its queue, for keys under the prefix."""
    sqs = aws(stack, "sqs")
    url = stack.names["completion_events_url"]
    events = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        if not messages:
            return events
        for message in messages:
            event = json.loads(message["Body"])
            if str(event.get("detail", {}).get("sourceKey", "")).startswith(key_prefix):
                events.append(event)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_one_completion_event_per_ending_with_duplicated_deliveries_and_late_webhooks(stack: LocalStack) -> None:
    assert stack.emulator is not None
    prefix = "rel-completion-events/"
    key_prefix = stack.names["inbox_prefix"] + prefix
    completion_events(stack, key_prefix)  # nothing left from earlier runs
    # Every webhook twice, after the reconciler has looked; a quarter of the tasks fail; one input is
    # refused outright (REJECTED).
    stack.emulator.faults = FaultConfig(
        duplicate_webhook_rate=1.0, webhook_delay_seconds=RECONCILE_AFTER_SECONDS + 3, task_failure_rate=0.25
    )
    drops = [*photos(scaled(12, 40)), Drop("not-an-image.jpg", b"plain text", SMALL)]

    def deliver_uploads_again(_: Any) -> None:
        # Every upload's event a second time (a backfill of the same objects), while they are in flight.
        backfill(
            aws(stack, "s3"),
            aws(stack, "sqs"),
            aws(stack, "dynamodb"),
            bucket=stack.names["inbox_bucket"],
            jobs_table=stack.names["jobs_table"],
            prefix=key_prefix,
            queue_url=stack.names["ingest_queue_url"],
            dry_run=False,
        )

    row, _ = run_scenario(
        stack, "completion events (uploads twice, webhooks twice and late)", prefix, drops, during=deliver_uploads_again
    )
    assert row.rejected == 1 and row.completed > 0
    jobs = {job["jobId"]: job for job in jobs_by_key(stack, prefix).values()}
    assert all(job["status"] in TERMINAL_STATUSES for job in jobs.values())
    events = completion_events(stack, key_prefix)
    per_job = Counter(event["detail"]["jobId"] for event in events)
    assert set(per_job) == set(jobs), "every terminal job sent an event, no other job did"
    assert set(per_job.values()) == {1}, f"more than one event for a job: {per_job.most_common(3)}"
    detail_types = {"COMPLETED": "Completed", "FAILED": "Failed", "REJECTED": "Rejected", "TIMED_OUT": "Timed Out"}
    for event in events:
        job = jobs[event["detail"]["jobId"]]
        assert event["source"] == "s3-upscale"
        assert event["detail-type"] == f"Upscale Job {detail_types[job['status']]}"
        assert event["detail"]["status"] == job["status"]
        assert event["detail"]["sourceKey"] == job["sourceKey"]
        if job["status"] == "COMPLETED":
            assert event["detail"]["outputKey"] == job["outputKey"]
            assert event["detail"]["outputSize"] == job["outputSize"]


def test_an_existing_bucket_feeds_the_same_pipeline_through_eventbridge() -> None:
    """In a stack of its own (started with ExistingBucketName), run in a child process: one moto
    server and environment per process."""
    from tests.reliability import existing_bucket
    from tests.reliability.harness import ROWS, Row

    root = Path(__file__).resolve().parents[2]
    completed = subprocess.run(
        [sys.executable, "-m", "tests.reliability.existing_bucket"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "layers" / "common"), str(root)])},
        capture_output=True,
        text=True,
        # Its settle waits as long as its stack moves, up to the overall bound; the rest is start and stop.
        timeout=BOUND_SECONDS + scaled(240, 600),
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(existing_bucket.RESULT_PREFIX)]
    assert completed.returncode == 0 and lines, completed.stderr[-4000:]
    result = json.loads(lines[-1][len(existing_bucket.RESULT_PREFIX) :])
    row = Row(**result["row"])
    ROWS.append(row)
    assert_invariant(row)
    assert row.completed == row.objects
    assert result["inbox_bucket"] == existing_bucket.EXISTING_BUCKET
    assert not any(name.startswith("upscale-inbox-") for name in result["buckets"]), "no inbox bucket created"
    assert result["job_buckets"] == [existing_bucket.EXISTING_BUCKET]
    assert result["jobs"] == row.objects, "nothing outside the prefix became a job"
    assert result["shapes"] and set(result["shapes"]) == {"Object Created"}, "only EventBridge events reached submit"
