"""Completion events: one per terminal write of the job store, on EventBridge (moto), never raised."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import boto3
import pytest

from tests.conftest import JOBS_TABLE, REGION
from tests.job_records import move_job, seed_job
from upscaler.completion_events import (
    DETAIL_TYPES,
    EVENT_SOURCE,
    CompletionEventPublisher,
    completion_detail,
    completion_entry,
)
from upscaler.job_record import Job, JobStatus
from upscaler.jobs import JobStore, TransitionRefused


@pytest.fixture
def ended(aws) -> tuple[JobStore, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    return JobStore(aws.dynamodb, JOBS_TABLE, retention_days=30, on_terminal=seen.append), seen


def new_job(**fields: Any) -> dict[str, Any]:
    return {"jobId": str(uuid.uuid4()), "sourceBucket": "inbox", "sourceKey": "inbox/a.jpg", **fields}


def test_the_store_reports_each_write_that_ends_a_job_once(ended):
    store, seen = ended
    rejected = new_job(errorCode="notAnImage")
    seed_job(store, rejected, JobStatus.REJECTED)
    claimed = new_job()
    seed_job(store, claimed, JobStatus.CLAIMED)
    move_job(store, claimed["jobId"], JobStatus.SUBMITTED)
    assert [job.job_id for job in seen] == [rejected["jobId"]], "claims and submissions end nothing"

    move_job(store, claimed["jobId"], JobStatus.TIMED_OUT)
    with pytest.raises(TransitionRefused):  # a duplicate report of the same ending
        move_job(store, claimed["jobId"], JobStatus.TIMED_OUT)
    move_job(store, claimed["jobId"], JobStatus.COMPLETED, {"cost": Decimal("0.005")})
    assert [(job.job_id, job.status) for job in seen] == [
        (rejected["jobId"], "REJECTED"),
        (claimed["jobId"], "TIMED_OUT"),
        (claimed["jobId"], "COMPLETED"),
    ]
    assert seen[-1].cost == Decimal("0.005"), "the event is made from the item as written"
    with pytest.raises(TransitionRefused):
        seed_job(store, rejected, JobStatus.REJECTED)
    assert len(seen) == 3


@pytest.mark.parametrize("status", ["COMPLETED", "FAILED", "REJECTED", "TIMED_OUT"])
def test_entry_names_the_product_and_the_ending(status):
    entry = completion_entry(
        Job.from_record({"jobId": "j", "status": status, "sourceBucket": "b", "sourceKey": "k"}), "my-bus"
    )
    assert entry["Source"] == EVENT_SOURCE == "s3-upscale"
    assert entry["DetailType"] == DETAIL_TYPES[status]
    assert entry["DetailType"].startswith("Upscale Job ")
    assert entry["EventBusName"] == "my-bus"
    assert json.loads(entry["Detail"]) == {"jobId": "j", "status": status, "sourceBucket": "b", "sourceKey": "k"}


def test_detail_holds_the_public_fields_only():
    job = {
        "jobId": "j",
        "status": "COMPLETED",
        "sourceBucket": "b",
        "sourceKey": "inbox/a.jpg",
        "outputKey": "upscaled/a.jpg.12345678.jpg",
        "outputWidth": 2000,
        "cost": Decimal("0.0025"),
        "totalSeconds": Decimal("3.5"),
        "expiresAt": 1,
        "submitAttempts": 1,
        "imageURL": "https://im.runware.ai/x.jpg",
        "errorCode": None,
    }
    assert completion_detail(Job.from_record(job)) == {
        "jobId": "j",
        "status": "COMPLETED",
        "sourceBucket": "b",
        "sourceKey": "inbox/a.jpg",
        "outputKey": "upscaled/a.jpg.12345678.jpg",
        "outputWidth": 2000,
        "cost": 0.0025,
        "totalSeconds": 3.5,
    }


def test_an_event_reaches_a_rule_on_the_bus(aws):
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="completions")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="done", EventPattern=json.dumps({"source": ["s3-upscale"]}))
    events.put_targets(Rule="done", Targets=[{"Id": "q", "Arn": arn}])
    publish = CompletionEventPublisher(lambda: events, "default")
    publish(
        Job.from_record(
            {
                "jobId": "j1",
                "status": "FAILED",
                "sourceBucket": "b",
                "sourceKey": "k",
                "errorCode": "invalidImage",
                "cost": Decimal("0"),
            }
        )
    )
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    event = json.loads(message["Body"])
    assert (event["source"], event["detail-type"]) == ("s3-upscale", "Upscale Job Failed")
    assert event["detail"] == {
        "jobId": "j1",
        "status": "FAILED",
        "sourceBucket": "b",
        "sourceKey": "k",
        "errorCode": "invalidImage",
        "cost": 0,
    }


class RefusingEvents:
    """EventBridge answering every PutEvents with a failed entry (as it does when throttled)."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.calls = 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.refusals:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow"}]}
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e"}]}


def test_a_refused_event_is_sent_again_and_never_raises(caplog):
    job = Job.from_record({"jobId": "j", "status": "COMPLETED", "sourceBucket": "b", "sourceKey": "k"})
    flaky = RefusingEvents(refusals=2)
    CompletionEventPublisher(lambda: flaky, "default", sleep=lambda _: None)(job)
    assert flaky.calls == 3
    down = RefusingEvents(refusals=99)
    CompletionEventPublisher(lambda: down, "default", sleep=lambda _: None)(job)
    assert down.calls == 3
    assert "completion event not sent" in caplog.text
