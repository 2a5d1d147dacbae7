"""Backfill (upscale_cli/backfill.py) against moto: current versions only, notifications the submit path reads."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.conftest import INBOX_BUCKET, REGION
from upscale_cli.backfill import backfill, notification_for
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
    report = backfill(aws.s3, sqs, bucket=INBOX_BUCKET, prefix="inbox/", queue_url=url, dry_run=True)
    assert (report.objects, report.bytes, report.enqueued) == (3, 6, 0)
    assert drain(sqs, url) == []


def test_each_current_version_is_one_message_that_names_it(aws, queue):
    sqs, url = queue
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/My Photos/a+b.jpg", Body=b"old")
    latest = aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/My Photos/a+b.jpg", Body=b"new!")
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/gone.jpg", Body=b"x")
    aws.s3.delete_object(Bucket=INBOX_BUCKET, Key="inbox/gone.jpg")
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/folder/", Body=b"")
    for index in range(12):  # more than one SendMessageBatch
        aws.s3.put_object(Bucket=INBOX_BUCKET, Key=f"inbox/many/{index:02d}.png", Body=b"p")

    report = backfill(aws.s3, sqs, bucket=INBOX_BUCKET, prefix="inbox/", queue_url=url, dry_run=False)
    assert (report.objects, report.enqueued, report.skipped_folders) == (13, 13, 1)
    sources = [source for body in drain(sqs, url) for source in source_objects(body)]
    assert len(sources) == 13
    [photo] = [s for s in sources if s.key == "inbox/My Photos/a+b.jpg"]
    assert (photo.version_id, photo.size, photo.etag) == (latest["VersionId"], 4, latest["ETag"].strip('"'))


def test_two_runs_name_the_same_jobs(aws, queue):
    sqs, url = queue
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/a.jpg", Body=b"a")
    ids = []
    for _ in range(2):
        backfill(aws.s3, sqs, bucket=INBOX_BUCKET, prefix="inbox/", queue_url=url, dry_run=False)
        [source] = [s for body in drain(sqs, url) for s in source_objects(body)]
        ids.append(job_id_for(source.bucket, source.key, source.version))
    assert ids[0] == ids[1]


def test_unversioned_objects_are_named_by_etag():
    body = notification_for("b", {"Key": "k", "VersionId": "null", "ETag": '"abc"', "Size": 1})
    [source] = source_objects(body)
    assert (source.version_id, source.version) == (None, "abc:")
