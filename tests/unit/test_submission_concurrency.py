"""The submit path's per-source steps run at once: order, isolation of failures, AWS calls, bounds.

Against moto's S3 and DynamoDB, with Runware answered at the HTTP level. Overlap is proved with
botocore event hooks that wait on a threading.Barrier: calls made one after another break it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import INBOX_BUCKET, REGION
from tests.unit.test_submission import FakeRunware, event, jpeg, runware_client, upload
from upscaler.clock import iso, utc_now
from upscaler.completion_events import CompletionEventPublisher
from upscaler.job_record import JobStatus, job_id_for
from upscaler.jobs import JobStore
from upscaler.settings import Settings
from upscaler.source_events import SourceObject, source_objects
from upscaler.submission import IGNORED, AccountRefused, Submitter
from upscaler.wiring import build_submitter

BARRIER_SECONDS = 5.0


@pytest.fixture
def runware() -> FakeRunware:
    return FakeRunware()


def make_submitter(aws: Any, runware: FakeRunware, **settings: Any) -> Submitter:
    chosen: Settings = replace(aws.settings, **settings)
    submitter = build_submitter(chosen)
    submitter.runware = runware_client(chosen, runware, [])
    return submitter


def sources_for(aws: Any, keys: list[str], body: bytes | None = None) -> list[SourceObject]:
    return source_objects(event(*(upload(aws, key, jpeg(320, 240) if body is None else body) for key in keys)))


def hook(client: Any, event_name: str, handler: Any) -> None:
    client.meta.events.register(event_name, handler)


def waiting_on(barrier: threading.Barrier) -> Any:
    # A before-call handler returns None: anything else would stand in for the call's response.
    def wait(**_: Any) -> None:
        barrier.wait()

    return wait


def job_status(submitter: Submitter, source: SourceObject) -> str | None:
    job = submitter.jobs.get(job_id_for(source.bucket, source.key, source.version))
    return job.status if job else None


# --- concurrency actually happens, within the bound ---------------------------------------------


def test_two_sources_are_read_from_s3_at_the_same_time(aws, runware):
    submitter = make_submitter(aws, runware)
    sources = sources_for(aws, ["inbox/a.jpg", "inbox/b.jpg"])
    both_reading = threading.Barrier(2, timeout=BARRIER_SECONDS)
    hook(submitter.objects._s3, "before-call.s3.GetObject", waiting_on(both_reading))

    report = submitter.submit_sources(sources)

    assert report.retry == [], "each read waited for the other, so they overlapped"
    assert [outcome.status for outcome in report.outcomes] == [JobStatus.SUBMITTED] * 2


def test_with_a_parallelism_of_one_the_reads_do_not_overlap(aws, runware):
    """The barrier test's counterpart: one after another, the first read waits alone and fails."""
    submitter = make_submitter(aws, runware, submit_parallelism=1)
    sources = sources_for(aws, ["inbox/a.jpg", "inbox/b.jpg"])
    both_reading = threading.Barrier(2, timeout=0.5)
    hook(submitter.objects._s3, "before-call.s3.GetObject", waiting_on(both_reading))

    report = submitter.submit_sources(sources)

    assert [source.key for source, _ in report.retry] == ["inbox/a.jpg", "inbox/b.jpg"]
    assert all("BrokenBarrierError" in reason for _, reason in report.retry)
    assert runware.requests == []


def test_the_writes_after_the_request_overlap_too(aws, runware):
    submitter = make_submitter(aws, runware)
    sources = sources_for(aws, ["inbox/a.jpg", "inbox/b.jpg"])
    both_writing = threading.Barrier(2, timeout=BARRIER_SECONDS)
    hook(submitter.jobs._db, "before-call.dynamodb.UpdateItem", waiting_on(both_writing))

    report = submitter.submit_sources(sources)

    assert report.retry == []
    assert [job_status(submitter, source) for source in sources] == [JobStatus.SUBMITTED] * 2


def test_the_account_refusal_notes_overlap_and_the_invocation_still_fails(aws, runware):
    submitter = make_submitter(aws, runware)
    sources = sources_for(aws, ["inbox/a.jpg", "inbox/b.jpg"])
    runware.script = [httpx.Response(401, json={"errors": [{"code": "invalidApiKey", "message": "bad key"}]})]
    both_writing = threading.Barrier(2, timeout=BARRIER_SECONDS)
    hook(submitter.jobs._db, "before-call.dynamodb.UpdateItem", waiting_on(both_writing))

    with pytest.raises(AccountRefused):
        submitter.submit_sources(sources)

    for source in sources:
        job = submitter.jobs.get(job_id_for(source.bucket, source.key, source.version))
        assert job.status == JobStatus.CLAIMED
        assert "invalidApiKey" in job.waiting_reason


def test_no_more_steps_run_at_once_than_the_setting_allows(aws, runware):
    submitter = make_submitter(aws, runware, submit_parallelism=2)
    sources = sources_for(aws, [f"inbox/{index}.jpg" for index in range(6)])
    lock = threading.Lock()
    running = [0]
    most = [0]

    def reading(**_: Any) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)  # long enough for a second worker to start its own read meanwhile
        with lock:
            running[0] -= 1

    hook(submitter.objects._s3, "before-call.s3.GetObject", reading)

    report = submitter.submit_sources(sources)

    assert report.retry == []
    assert most[0] == 2


# --- what stays as it was -----------------------------------------------------------------------


def test_outcomes_keep_source_order_whatever_order_the_steps_end_in(aws, runware):
    submitter = make_submitter(aws, runware)
    keys = [f"inbox/{index}.jpg" for index in range(5)]
    records = [upload(aws, key, jpeg(320, 240)) for key in keys]
    records.insert(2, upload(aws, "inbox/empty.jpg", b""))  # rejected, between the others
    foreign = upload(aws, "elsewhere/x.jpg", jpeg(320, 240))
    sources = source_objects(event(foreign, *records))
    # The earlier a source, the later its read ends.
    delays = {source.key: 0.02 * (len(sources) - index) for index, source in enumerate(sources)}
    hook(
        submitter.objects._s3,
        "before-parameter-build.s3.GetObject",
        lambda params, **_: time.sleep(delays[params["Key"]]),
    )

    report = submitter.submit_sources(sources)

    assert report.retry == []
    # Sources that are not sent first, in source order; then the sent ones, in the request's order.
    assert [(outcome.source_key, outcome.status) for outcome in report.outcomes] == [
        ("elsewhere/x.jpg", IGNORED),
        ("inbox/empty.jpg", JobStatus.REJECTED),
        *((key, JobStatus.SUBMITTED) for key in keys),
    ]
    [batch] = runware.batches
    assert [task["taskUUID"] for task in batch] == [
        job_id_for(INBOX_BUCKET, source.key, source.version) for source in sources if source.key in keys
    ]


def test_a_source_failing_its_claim_step_is_retried_alone(aws, runware):
    submitter = make_submitter(aws, runware)
    sources = sources_for(aws, [f"inbox/{index}.jpg" for index in range(4)])

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == "inbox/2.jpg":  # an error to retry (a refusal would be rejected at once)
            raise ClientError(
                {
                    "Error": {"Code": "InternalError", "Message": "Internal"},
                    "ResponseMetadata": {"HTTPStatusCode": 500},
                },
                "GetObject",
            )

    hook(submitter.objects._s3, "before-parameter-build.s3.GetObject", refuse)

    report = submitter.submit_sources(sources)

    assert [(source.key, reason.split(":")[0]) for source, reason in report.retry] == [("inbox/2.jpg", "ClientError")]
    [batch] = runware.batches
    others = [source for source in sources if source.key != "inbox/2.jpg"]
    assert [task["taskUUID"] for task in batch] == [job_id_for(INBOX_BUCKET, s.key, s.version) for s in others]
    assert [job_status(submitter, source) for source in sources] == ["SUBMITTED", "SUBMITTED", None, "SUBMITTED"]


def test_a_source_whose_write_after_the_request_fails_is_retried_alone(aws, runware):
    submitter = make_submitter(aws, runware)
    sources = sources_for(aws, [f"inbox/{index}.jpg" for index in range(3)])
    failing = job_id_for(INBOX_BUCKET, "inbox/1.jpg", sources[1].version)
    moved: list[str] = []
    lock = threading.Lock()

    def throttle_one(params: dict[str, Any], **_: Any) -> None:
        job_id = params["Key"]["jobId"]["S"]
        with lock:
            moved.append(job_id)
        if job_id == failing:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem")

    hook(submitter.jobs._db, "before-parameter-build.dynamodb.UpdateItem", throttle_one)

    report = submitter.submit_sources(sources)

    assert [source.key for source, _ in report.retry] == ["inbox/1.jpg"]
    assert [outcome.source_key for outcome in report.outcomes] == ["inbox/0.jpg", "inbox/2.jpg"]
    assert [job_status(submitter, source) for source in sources] == ["SUBMITTED", "CLAIMED", "SUBMITTED"]
    # Each move is a write of its own, made once: the failed one touches none of its neighbours.
    ids = [job_id_for(INBOX_BUCKET, source.key, source.version) for source in sources]
    assert sorted(moved) == sorted(ids)


def test_each_source_costs_one_read_and_two_writes(aws, runware):
    submitter = make_submitter(aws, runware)
    # Uploads of now (an upload older than a job record lives also looks for its own output).
    now = iso(utc_now())
    sources = [replace(source, event_time=now) for source in sources_for(aws, [f"inbox/{i}.jpg" for i in range(10)])]
    calls: Counter[str] = Counter()
    lock = threading.Lock()

    def count(model: Any, **_: Any) -> None:
        with lock:
            calls[model.name] += 1

    hook(submitter.objects._s3, "before-call", count)
    hook(submitter.jobs._db, "before-call", count)

    report = submitter.submit_sources(sources)

    assert [outcome.status for outcome in report.outcomes] == [JobStatus.SUBMITTED] * 10
    # Its claim and its move to SUBMITTED: single conditional writes (one write unit per KB each,
    # where a transaction's would cost two).
    assert calls == {"GetObject": 10, "PutItem": 10, "UpdateItem": 10}
    assert len(runware.requests) == 1


def test_jobs_rejected_at_once_share_one_completion_events_client(aws, runware):
    events = boto3.client("events", region_name=REGION)
    made: list[Any] = []

    def events_client() -> Any:
        time.sleep(0.05)  # a slow first use: every thread that came in meanwhile would make its own
        made.append(events)
        return events

    submitter = make_submitter(aws, runware)
    submitter.jobs = JobStore(
        aws.dynamodb, aws.settings.jobs_table, on_terminal=CompletionEventPublisher(events_client, "default")
    )
    sent: list[int] = []
    hook(events, "before-parameter-build.events.PutEvents", lambda params, **_: sent.append(len(params["Entries"])))
    sources = sources_for(aws, [f"inbox/{index}.jpg" for index in range(5)], body=b"")

    report = submitter.submit_sources(sources)

    assert report.retry == []
    assert [outcome.status for outcome in report.outcomes] == [JobStatus.REJECTED] * 5
    assert len(made) == 1
    assert sent == [1] * 5
    assert runware.requests == []
