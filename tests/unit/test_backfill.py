"""Backfill (upscale_cli/backfill.py) against moto: current versions only, notifications the submit path reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest

from tests.conftest import INBOX_BUCKET, JOBS_TABLE, REGION
from tests.unit.cli_target import add_job, moto_target
from upscale_cli.backfill import backfill, notification_for, source_of
from upscaler.job_record import job_id_for
from upscaler.source_events import source_objects


@pytest.fixture
def queue(aws) -> tuple[object, str]:
    sqs = boto3.client("sqs", region_name=REGION)
    return sqs, sqs.create_queue(QueueName="ingest")["QueueUrl"]


def drain(sqs, url: str) -> list[dict]:
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_dry_run_counts_without_sending(aws, queue):
    sqs, url = queue
    for index in range(3):
        aws.s3.put_object(Bucket=INBOX_BUCKET, Key=f"inbox/{index}.jpg", Body=b"x" * (index + 1))
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="elsewhere/a.jpg", Body=b"x")
    report = run_backfill(aws, sqs, url, dry_run=True)
    assert (report.objects, report.bytes, report.new, report.enqueued) == (3, 6, 3, 0)
    assert drain(sqs, url) == []


def run_backfill(aws, sqs, url: str, *, dry_run: bool, prefix: str = "inbox/"):
    return backfill(aws.s3, sqs, aws.dynamodb, bucket=INBOX_BUCKET, prefix=prefix, queue_url=url,
                    jobs_table=JOBS_TABLE, dry_run=dry_run)  # fmt: skip


def test_objects_that_already_have_a_job_are_counted_not_sent(aws, queue):
    sqs, url = queue
    done = aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/done.jpg", Body=b"d")
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/new.jpg", Body=b"n")
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/folder/", Body=b"")
    add_job(moto_target(), "inbox/done.jpg", "COMPLETED", datetime(2024, 3, 1, tzinfo=UTC), version=done["VersionId"])

    dry = run_backfill(aws, sqs, url, dry_run=True)
    assert (dry.objects, dry.new, dry.have_jobs, dry.ignored, dry.enqueued) == (3, 1, 1, 1, 0)
    assert dry.have_jobs_by_status == {"COMPLETED": 1}
    real = run_backfill(aws, sqs, url, dry_run=False)
    assert (real.new, real.have_jobs, real.enqueued) == (1, 1, 1)
    assert [s.key for body in drain(sqs, url) for s in source_objects(body)] == ["inbox/new.jpg"]


def test_the_job_id_of_a_version_is_the_one_its_message_makes():
    version = {"Key": "inbox/a b.jpg", "VersionId": "v7", "ETag": '"e"', "Size": 3}
    assert source_of("bucket", version).job_id == job_id_for("bucket", "inbox/a b.jpg", "v7")


def test_each_current_version_is_one_message_that_names_it(aws, queue):
    sqs, url = queue
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/My Photos/a+b.jpg", Body=b"old")
    latest = aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/My Photos/a+b.jpg", Body=b"new!")
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/gone.jpg", Body=b"x")
    aws.s3.delete_object(Bucket=INBOX_BUCKET, Key="inbox/gone.jpg")
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/folder/", Body=b"")
    for index in range(12):  # more than one SendMessageBatch
        aws.s3.put_object(Bucket=INBOX_BUCKET, Key=f"inbox/many/{index:02d}.png", Body=b"p")

    report = run_backfill(aws, sqs, url, dry_run=False)
    assert (report.objects, report.enqueued, report.skipped_folders) == (14, 13, 1)
    sources = [source for body in drain(sqs, url) for source in source_objects(body)]
    assert len(sources) == 13
    [photo] = [s for s in sources if s.key == "inbox/My Photos/a+b.jpg"]
    assert (photo.version_id, photo.size, photo.etag) == (latest["VersionId"], 4, latest["ETag"].strip('"'))


def test_two_runs_name_the_same_jobs(aws, queue):
    sqs, url = queue
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/a.jpg", Body=b"a")
    ids = []
    for _ in range(2):  # no job is created between the runs, so both send the object
        run_backfill(aws, sqs, url, dry_run=False)
        [source] = [s for body in drain(sqs, url) for s in source_objects(body)]
        ids.append(job_id_for(source.bucket, source.key, source.version))
    assert ids[0] == ids[1]


def test_unversioned_objects_are_named_by_etag():
    body = notification_for("b", {"Key": "k", "VersionId": "null", "ETag": '"abc"', "Size": 1})
    [source] = source_objects(body)
    assert (source.version_id, source.version) == (None, "abc:")
