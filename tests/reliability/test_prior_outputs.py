"""No second bill for the same content, on the local stack with the real handlers: an in-place copy
that keeps the options, one that changes an option, and a redelivery after the job record is gone."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any
from urllib.parse import quote_plus

from local.stack import LocalStack
from tests.reliability.harness import (
    Drop,
    Dropped,
    aws,
    image_bytes,
    run_scenario,
    scenario_jobs,
    sent_tasks,
    settle,
)
from tests.reliability.test_ingestion import completion_events
from upscaler.clock import iso, utc_now
from upscaler.job_record import Job
from upscaler.prior_outputs import REUSED_VIA, reuse_key_for

SMALL = {"target-megapixels": "1"}
OBJECTS = 3


def first_uploads(stack: LocalStack, prefix: str) -> tuple[list[Dropped], dict[str, dict[str, Any]]]:
    """Uploads upscaled the ordinary way (one Runware task each), and their jobs by key."""
    drops = [Drop(f"{index:02d}.jpg", image_bytes(170, 120, shade=index), SMALL) for index in range(OBJECTS)]
    row, dropped = run_scenario(stack, f"prior outputs: first uploads ({prefix})", prefix, drops)
    assert row.completed == OBJECTS
    return dropped, {job["sourceKey"]: job for job in scenario_jobs(stack, prefix)}


def copy_in_place(stack: LocalStack, item: Dropped, metadata: dict[str, str]) -> Dropped:
    """`aws s3 cp s3://b/k s3://b/k --metadata-directive REPLACE --metadata ...`: ObjectCreated:Copy."""
    s3 = aws(stack, "s3")
    bucket = stack.names["inbox_bucket"]
    copied = s3.copy_object(
        Bucket=bucket,
        Key=item.key,
        CopySource={"Bucket": bucket, "Key": item.key},
        Metadata=metadata,
        MetadataDirective="REPLACE",
    )
    etag = copied["CopyObjectResult"]["ETag"].strip('"')
    assert etag == item.etag, "a copy of a single-part, unencrypted object keeps its ETag"
    return Dropped(item.key, copied["VersionId"], etag, item.size, metadata)


def tasks_sent(stack: LocalStack, prefix: str) -> int:
    return sum(len(uuids) for uuids in sent_tasks(stack, prefix).values())


def jobs_of(stack: LocalStack, prefix: str) -> dict[tuple[str, str | None], dict[str, Any]]:
    return {(job["sourceKey"], job.get("sourceVersionId")): job for job in scenario_jobs(stack, prefix)}


def output_size(stack: LocalStack, key: str) -> int:
    return int(aws(stack, "s3").head_object(Bucket=stack.names["output_bucket"], Key=key)["ContentLength"])


def test_an_in_place_copy_that_keeps_the_options_makes_no_runware_task(stack: LocalStack) -> None:
    prefix = "rel-prior-same/"
    key_prefix = stack.names["inbox_prefix"] + prefix
    dropped, first = first_uploads(stack, prefix)
    tasks_before = tasks_sent(stack, prefix)
    assert tasks_before == OBJECTS

    copies = [copy_in_place(stack, item, {**item.metadata, "reviewed-by": "ana"}) for item in dropped]
    assert settle(stack, prefix, dropped + copies)

    assert tasks_sent(stack, prefix) == tasks_before, "no Runware task for a copy of the same content and options"
    jobs = jobs_of(stack, prefix)
    assert len(jobs) == 2 * OBJECTS
    for copied in copies:
        job = jobs[(copied.key, copied.version_id)]
        earlier = first[copied.key]
        assert job["status"] == "COMPLETED", job
        assert job["reusedOutputOf"] == earlier["jobId"]
        assert job["resultVia"] == REUSED_VIA
        assert job["cost"] == 0
        assert job["outputKey"] != earlier["outputKey"]
        assert output_size(stack, job["outputKey"]) == job["outputSize"] == earlier["outputSize"]
        assert (job["outputWidth"], job["outputHeight"]) == (earlier["outputWidth"], earlier["outputHeight"])
    # One completion event per copy, like any completion, naming the job reused.
    copy_jobs = {jobs[(copied.key, copied.version_id)]["jobId"] for copied in copies}
    events = [event for event in completion_events(stack, key_prefix) if event["detail"]["jobId"] in copy_jobs]
    assert sorted(event["detail"]["jobId"] for event in events) == sorted(copy_jobs), "one event per copy"
    by_job = {event["detail"]["jobId"]: event for event in events}
    for copied in copies:
        job = jobs[(copied.key, copied.version_id)]
        event = by_job[job["jobId"]]
        assert event["detail-type"] == "Upscale Job Completed"
        assert event["detail"]["reusedOutputOf"] == first[copied.key]["jobId"]
        assert event["detail"]["outputKey"] == job["outputKey"]


def test_an_in_place_copy_that_changes_an_option_is_a_new_job(stack: LocalStack) -> None:
    prefix = "rel-prior-option/"
    dropped, first = first_uploads(stack, prefix)
    tasks_before = tasks_sent(stack, prefix)

    copies = [copy_in_place(stack, item, {"target-megapixels": "2"}) for item in dropped]
    assert settle(stack, prefix, dropped + copies)

    assert tasks_sent(stack, prefix) == tasks_before + OBJECTS, "one new task per copy"
    jobs = jobs_of(stack, prefix)
    for copied in copies:
        job = jobs[(copied.key, copied.version_id)]
        assert job["status"] == "COMPLETED", job
        assert "reusedOutputOf" not in job
        assert job["targetMegapixels"] == 2
        assert job["jobId"] in sent_tasks(stack, prefix)[(copied.key, copied.version_id)]
        assert job["outputKey"] != first[copied.key]["outputKey"]


def redeliver(stack: LocalStack, item: Dropped, uploaded: str) -> None:
    """The upload's own S3 notification, sent to the ingestion queue again (a re-drive, a backfill)."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": uploaded,
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": stack.names["inbox_bucket"], "arn": f"arn:aws:s3:::{stack.names['inbox_bucket']}"},
            "object": {
                "key": quote_plus(item.key, safe="/"),
                "size": item.size,
                "eTag": item.etag,
                "versionId": item.version_id,
                "sequencer": f"{time.time_ns():018X}",
            },
        },
    }
    body = json.dumps({"Records": [record]})
    aws(stack, "sqs").send_message(QueueUrl=stack.names["ingest_queue_url"], MessageBody=body)


def test_a_redelivery_after_the_job_record_is_gone_makes_no_runware_task(stack: LocalStack) -> None:
    prefix = "rel-prior-ttl/"
    dropped, first = first_uploads(stack, prefix)
    tasks_before = tasks_sent(stack, prefix)
    dynamodb = aws(stack, "dynamodb")
    jobs_table = stack.names["jobs_table"]
    pointers_table = stack.environment["PRIOR_OUTPUTS_TABLE"]
    recent, expired = dropped[0], dropped[1]
    # The table's TTL removes records: simulated by deleting the items. One keeps its pointer; for the
    # other the pointer is gone too and the upload is older than a record lives (a re-drive, a backfill).
    for item in (recent, expired):
        dynamodb.delete_item(TableName=jobs_table, Key={"jobId": {"S": first[item.key]["jobId"]}})
    pointer_key = reuse_key_for(Job.from_record(first[expired.key]))
    assert pointer_key is not None
    dynamodb.delete_item(TableName=pointers_table, Key={"reuseKey": {"S": pointer_key}})
    retention_days = int(stack.environment.get("JOB_RETENTION_DAYS", "90"))

    redeliver(stack, recent, iso(utc_now()))
    redeliver(stack, expired, iso(utc_now() - timedelta(days=retention_days + 1)))
    assert settle(stack, prefix, dropped)

    assert tasks_sent(stack, prefix) == tasks_before, "no second task for a version whose output exists"
    jobs = jobs_of(stack, prefix)
    for item in (recent, expired):
        job = jobs[(item.key, item.version_id)]
        earlier = first[item.key]
        assert job["status"] == "COMPLETED", job
        assert job["jobId"] == job["reusedOutputOf"] == earlier["jobId"]
        assert (job["outputKey"], job["outputETag"], job["outputSize"]) == (
            earlier["outputKey"],
            earlier["outputETag"],
            earlier["outputSize"],
        )
