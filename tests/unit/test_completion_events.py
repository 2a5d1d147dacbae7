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


class RecordingEvents:
    """EventBridge refusing, once, the entries of the jobs named in `refuse_once` (per-entry failures)."""

    def __init__(self, refuse_once: set[str]) -> None:
        self.refuse_once = set(refuse_once)
        self.requests: list[list[str]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        ids = [json.loads(entry["Detail"])["jobId"] for entry in Entries]
        self.requests.append(ids)
        answers = []
        for job_id in ids:
            if job_id in self.refuse_once:
                self.refuse_once.discard(job_id)
                answers.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
            else:
                answers.append({"EventId": f"e-{job_id}"})
        return {"FailedEntryCount": sum("ErrorCode" in a for a in answers), "Entries": answers}


def test_events_held_together_go_ten_to_a_request_from_every_thread_and_only_refused_ones_again():
    from upscaler.completion_events import sent_together
    from upscaler.parallel import run_each

    jobs = [
        Job.from_record({"jobId": f"j{n:02}", "status": "COMPLETED", "sourceBucket": "b", "sourceKey": f"k{n}"})
        for n in range(23)
    ]
    events = RecordingEvents(refuse_once={"j03", "j17"})
    publish = CompletionEventPublisher(lambda: events, "default", sleep=lambda _: None)
    with sent_together():
        run_each(jobs, publish, parallelism=5)  # worker threads, as a recovery batch settles its jobs
        assert events.requests == [], "nothing is sent before the block ends"
    sent = [job_id for request in events.requests for job_id in request]
    assert sorted(set(sent)) == sorted(job.job_id for job in jobs)
    assert all(len(request) <= 10 for request in events.requests)
    assert len(events.requests) == 3 + 2, "23 events in 3 requests, and one retry for each refused entry's request"
    assert sorted(job_id for job_id in sent if sent.count(job_id) > 1) == ["j03", "j03", "j17", "j17"]

    publish(jobs[0])  # outside the block: sent at once, alone
    assert events.requests[-1] == ["j00"]


def test_held_events_are_sent_when_the_block_raises():
    from upscaler.completion_events import sent_together

    job = Job.from_record({"jobId": "j", "status": "COMPLETED", "sourceBucket": "b", "sourceKey": "k"})
    events = RecordingEvents(refuse_once=set())
    publish = CompletionEventPublisher(lambda: events, "default", sleep=lambda _: None)
    with pytest.raises(RuntimeError), sent_together():
        publish(job)
        raise RuntimeError("the batch died after the write")
    assert events.requests == [["j"]]
