"""The safety-net pass against moto and a Runware mocked at the HTTP level (getResponse answers).

The pass looks only at jobs open longer than the maximum age plus CHECK_GRACE_SECONDS (their check
was lost); here the settle rules get a longer maximum age than the pass, so that a job the pass
finds can still be "within its maximum age" for the rules and every rule is exercised."""

from __future__ import annotations

import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import boto3
import httpx
import pytest
from PIL import Image

from tests.conftest import INBOX_BUCKET, JOBS_TABLE, OUTPUT_BUCKET, REGION, RUNWARE_KEY, RUNWARE_URL
from tests.job_records import move_job, seed_job, stored_record
from upscaler.clock import iso
from upscaler.job_record import JobStatus, to_attribute_values
from upscaler.jobs import JobStore
from upscaler.open_jobs import OPEN_INDEX, OpenJobs, open_shard
from upscaler.reconciliation import CHECK_GRACE_SECONDS, POLL_BATCH_SIZE, Reconciler
from upscaler.results import ResultRecorder
from upscaler.runware import RunwareClient
from upscaler.settlement import Settler
from upscaler.storage import ObjectStore

PASS_MAX_AGE = 4 * 3600  # the safety net looks at jobs open longer than this plus the grace
MAX_AGE = 6 * 3600  # the settle rules' maximum age
STALE = timedelta(seconds=PASS_MAX_AGE + CHECK_GRACE_SECONDS + 600)  # a lost check, within MAX_AGE
ANCIENT = timedelta(hours=7)  # past the maximum age


class RecordingClient:
    """A DynamoDB client that notes every method called on it (scan, query, ...) and the index used."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.operations: list[str] = []
        self.indexes: list[str | None] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.operations.append(name)
            self.indexes.append(kwargs.get("IndexName"))
            return attribute(*args, **kwargs)

        return call


class FakeRunware:
    """Answers getResponse per taskUUID: a data item (success/processing/error status) or an error."""

    def __init__(self) -> None:
        self.answers: dict[str, dict] = {}
        self.requests: list[list[dict]] = []
        self.headers: list[httpx.Headers] = []
        self.status_code = 200
        self.whole_request_error: dict | None = None

    def succeed(self, job_id: str, cost: float = 0.0052) -> str:
        image_uuid = str(uuid.uuid4())
        self.answers[job_id] = {
            "status": "success",
            "imageUUID": image_uuid,
            "imageURL": f"https://im.runware.ai/image/ws/2/ii/{image_uuid}.png",
            "cost": cost,
        }
        return image_uuid

    def fail(self, job_id: str, code: str, message: str, parameter: str | None = None) -> None:
        self.answers[job_id] = {"error": {"code": code, "message": message, "parameter": parameter}}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        tasks = json.loads(request.content)
        self.requests.append(tasks)
        self.headers.append(request.headers)
        if self.whole_request_error is not None:
            return httpx.Response(self.status_code, json={"errors": [self.whole_request_error]})
        data, errors = [], []
        for task in tasks:
            answer = self.answers.get(task["taskUUID"], {"status": "processing"})
            if "error" in answer:
                errors.append({**answer["error"], "taskType": "getResponse", "taskUUID": task["taskUUID"]})
            else:
                data.append({"taskType": "upscale", "taskUUID": task["taskUUID"], **answer})
        payload: dict[str, list] = {"data": data}
        if errors:
            payload["errors"] = errors
        return httpx.Response(self.status_code, json=payload)

    def polled(self) -> list[str]:
        return [task["taskUUID"] for tasks in self.requests for task in tasks]


@cache
def png_bytes(width: int = 1600, height: int = 1200) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 90, 220)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def dynamodb(aws):
    return RecordingClient(aws.dynamodb)


@pytest.fixture
def store(dynamodb):
    return JobStore(dynamodb, JOBS_TABLE)


@pytest.fixture
def runware():
    return FakeRunware()


def make_reconciler(aws, store, runware, **limits) -> Reconciler:
    client = RunwareClient(
        RUNWARE_URL,
        lambda: RUNWARE_KEY,
        http=httpx.Client(transport=httpx.MockTransport(runware)),
        max_attempts=3,
        sleep=lambda seconds: None,
    )
    settler = Settler(store, ResultRecorder(ObjectStore(aws.s3), store), max_age_seconds=MAX_AGE)
    return Reconciler(
        store,
        OpenJobs(store._db, JOBS_TABLE),
        settler,
        client,
        max_age_seconds=limits.get("max_age_seconds", PASS_MAX_AGE),
        max_jobs=limits.get("max_jobs", 50),
        **{name: limits[name] for name in ("checks", "schedule", "legacy_index", "late_outputs") if name in limits},
    )


@pytest.fixture
def reconciler(aws, store, runware):
    return make_reconciler(aws, store, runware)


def add_job(store: JobStore, age: timedelta, status: JobStatus = JobStatus.SUBMITTED) -> str:
    """A job created `age` ago for a 640x480 PNG, submitted a second later (unless still CLAIMED)."""
    job_id = str(uuid.uuid4())
    created = datetime.now(UTC) - age
    seed_job(
        store,
        {
            "jobId": job_id,
            "sourceBucket": INBOX_BUCKET,
            "sourceKey": f"inbox/{job_id[:8]}.png",
            "sourceSize": 54321,
            "eventTime": iso(created - timedelta(seconds=1)),
            "inputFormat": "PNG",
            "inputWidth": 640,
            "inputHeight": 480,
            "outputFormat": "PNG",
            "outputBucket": OUTPUT_BUCKET,
            "outputKey": f"upscaled/{job_id[:8]}.png.{job_id[:8]}.png",
        },
        JobStatus.CLAIMED,
        now=created,
    )
    if status != JobStatus.CLAIMED:
        submitted = created + timedelta(seconds=1)
        move_job(store, job_id, JobStatus.SUBMITTED, {"submittedAt": iso(submitted)}, now=submitted)
    if status not in (JobStatus.CLAIMED, JobStatus.SUBMITTED):
        move_job(store, job_id, status)
    return job_id


def put_output(aws, store: JobStore, job_id: str, **extra) -> bytes:
    job = store.get(job_id)
    data = png_bytes()
    aws.s3.put_object(Bucket=job.output_bucket, Key=job.output_key, Body=data, **extra)
    return data


def test_completes_a_job_whose_webhook_was_lost(aws, store, runware, reconciler):
    job_id = add_job(store, STALE)
    image_uuid = runware.succeed(job_id)
    data = put_output(aws, store, job_id, ContentType="binary/octet-stream")

    report = reconciler.run()

    record = stored_record(store, job_id)
    assert runware.requests == [[{"taskType": "getResponse", "taskUUID": job_id}]]
    assert runware.headers[0]["Authorization"] == f"Bearer {RUNWARE_KEY}"
    assert record["status"] == "COMPLETED"
    assert record["resultVia"] == "reconcile"
    assert record["imageUUID"] == image_uuid
    assert record["cost"] == Decimal("0.0052")
    assert record["outputSize"] == len(data)
    assert (record["outputWidth"], record["outputHeight"]) == (1600, 1200)
    assert record["outputContentType"] == "image/png"
    assert record["totalSeconds"] == record["uploadToSubmitSeconds"] + record["providerSeconds"]
    assert aws.s3.head_object(Bucket=OUTPUT_BUCKET, Key=record["outputKey"])["ContentType"] == "image/png"
    assert report.counts() == {
        "examined": 1,
        "stillProcessing": 0,
        "outputNotReady": 0,
        "unreadable": 0,
        "indexedFromLegacy": 0,
        "stagedExamined": 0,
        "stagedLeftoversRemoved": 0,
        "nowCompleted": 1,
    }


@pytest.mark.parametrize("http_status", [200, 400])
def test_fails_a_job_runware_reports_failed(store, runware, reconciler, http_status):
    job_id = add_job(store, STALE)
    runware.fail(job_id, "invalidImageURL", "The image at inputs.image could not be downloaded.", "inputs.image")
    runware.status_code = http_status

    report = reconciler.run()

    record = stored_record(store, job_id)
    assert record["status"] == "FAILED"
    assert (record["errorCode"], record["errorParameter"]) == ("invalidImageURL", "inputs.image")
    assert record["errorMessage"] == "The image at inputs.image could not be downloaded."
    assert record["resultVia"] == "reconcile"
    assert report.counts()["nowFailed"] == 1


def test_fails_a_job_whose_data_item_has_status_error(store, runware, reconciler):
    job_id = add_job(store, STALE)
    runware.answers[job_id] = {"status": "error", "code": "timeoutProvider", "message": "provider timed out"}

    reconciler.run()

    record = stored_record(store, job_id)
    assert (record["status"], record["errorCode"]) == ("FAILED", "timeoutProvider")


def test_times_out_a_job_still_processing_past_the_maximum_age(store, runware, reconciler):
    job_id = add_job(store, ANCIENT)

    report = reconciler.run()

    record = stored_record(store, job_id)
    assert runware.polled() == [job_id]
    assert record["status"] == "TIMED_OUT"
    assert record["errorCode"] == "timedOut"
    assert report.counts()["nowTimedOut"] == 1


def test_leaves_a_job_still_processing_within_the_maximum_age(store, runware, reconciler):
    job_id = add_job(store, STALE)
    before = store.get(job_id)

    report = reconciler.run()

    assert store.get(job_id) == before
    assert report.still_processing == 1
    assert report.recorded == []


def test_task_runware_no_longer_knows_is_never_failed_only_timed_out(store, runware, reconciler):
    recent, ancient = add_job(store, STALE), add_job(store, ANCIENT)
    for job_id in (recent, ancient):
        runware.fail(job_id, "taskNotFound", "No task found with the given taskUUID.")

    reconciler.run()

    assert (store.get(recent).status, store.get(ancient).status) == ("SUBMITTED", "TIMED_OUT")


def test_success_without_the_output_object_waits_then_times_out(store, runware, reconciler):
    recent, ancient = add_job(store, STALE), add_job(store, ANCIENT)
    runware.succeed(recent)
    runware.succeed(ancient)

    report = reconciler.run()

    assert (store.get(recent).status, store.get(ancient).status) == ("SUBMITTED", "TIMED_OUT")
    assert report.output_not_ready == 2


def test_jobs_a_live_check_may_still_settle_are_not_polled(store, runware, reconciler):
    job_id = add_job(store, timedelta(seconds=PASS_MAX_AGE + CHECK_GRACE_SECONDS - 120))
    before = store.get(job_id)

    report = reconciler.run()

    assert runware.requests == []
    assert report.examined == 0
    assert store.get(job_id) == before


def test_jobs_not_submitted_are_not_polled(store, runware, reconciler):
    for status in (JobStatus.CLAIMED, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.TIMED_OUT):
        add_job(store, ANCIENT, status)

    report = reconciler.run()

    assert runware.requests == []
    assert report.examined == 0


def test_one_run_completes_fails_and_times_out_without_ever_scanning(aws, dynamodb, store, runware, reconciler):
    lost = add_job(store, STALE)
    runware.succeed(lost)
    put_output(aws, store, lost)
    failed = add_job(store, STALE)
    runware.fail(failed, "invalidImageURL", "could not download")
    ancient = add_job(store, ANCIENT)
    waiting = add_job(store, STALE)
    dynamodb.operations.clear()
    dynamodb.indexes.clear()

    report = reconciler.run()

    statuses = {job_id: store.get(job_id).status for job_id in (lost, failed, ancient, waiting)}
    assert statuses == {lost: "COMPLETED", failed: "FAILED", ancient: "TIMED_OUT", waiting: "SUBMITTED"}
    assert report.counts() == {
        "examined": 4,
        "stillProcessing": 1,
        "outputNotReady": 0,
        "unreadable": 0,
        "indexedFromLegacy": 0,
        "stagedExamined": 0,
        "stagedLeftoversRemoved": 0,
        "nowCompleted": 1,
        "nowFailed": 1,
        "nowTimedOut": 1,
    }
    assert "scan" not in dynamodb.operations
    assert set(dynamodb.operations) <= {"query", "batch_get_item", "update_item", "get_item"}  # get: this test
    queried = {index for op, index in zip(dynamodb.operations, dynamodb.indexes, strict=True) if op == "query"}
    assert queried == {OPEN_INDEX}, "open jobs through the sparse index; terminal ones never"
    assert dynamodb.operations.count("update_item") == 3


def test_polls_in_batches(store, runware, reconciler):
    job_ids = {add_job(store, STALE + timedelta(seconds=n)) for n in range(POLL_BATCH_SIZE + 5)}

    report = reconciler.run()

    assert [len(tasks) for tasks in runware.requests] == [POLL_BATCH_SIZE, 5]
    assert all(task["taskType"] == "getResponse" for tasks in runware.requests for task in tasks)
    assert set(runware.polled()) == job_ids
    assert report.examined == POLL_BATCH_SIZE + 5


def test_polls_at_most_max_jobs_per_run_oldest_first(aws, store, runware):
    ages = [STALE + timedelta(minutes=n) for n in range(5)]
    job_ids = [add_job(store, age) for age in ages]
    reconciler = make_reconciler(aws, store, runware, max_jobs=3)

    report = reconciler.run()

    assert runware.polled() == list(reversed(job_ids))[:3]
    assert report.examined == 3


def test_stops_at_the_deadline(store, runware, reconciler):
    job_id = add_job(store, ANCIENT)

    reconciler.run(deadline=time.monotonic() - 1)

    assert runware.requests == []
    assert store.get(job_id).status == "SUBMITTED"


def test_runware_unavailable_changes_nothing_and_is_reported(store, runware, reconciler):
    job_ids = [add_job(store, STALE), add_job(store, ANCIENT)]
    before = [store.get(job_id) for job_id in job_ids]
    runware.status_code = 503
    runware.whole_request_error = {"code": "serviceUnavailable", "message": "try later"}

    report = reconciler.run()

    assert report.runware_unavailable is True
    assert len(runware.requests) == 3  # the client's max_attempts
    assert [store.get(job_id) for job_id in job_ids] == before


def test_request_refused_for_our_key_fails_no_job(store, runware, reconciler):
    job_ids = [add_job(store, STALE), add_job(store, ANCIENT)]
    before = [store.get(job_id) for job_id in job_ids]
    for http_status, code in ((401, "invalidApiKey"), (402, "insufficientCredits"), (403, "forbidden")):
        runware.status_code = http_status
        runware.whole_request_error = {"code": code, "message": "the request was refused"}

        report = reconciler.run()

        assert report.runware_unavailable is True, http_status
        assert [store.get(job_id) for job_id in job_ids] == before, http_status


def test_stops_between_jobs_once_the_deadline_passes(store, runware, reconciler, monkeypatch):
    job_ids = [add_job(store, ANCIENT + timedelta(minutes=n)) for n in range(3)]
    now = [0.0]
    monkeypatch.setattr("upscaler.reconciliation.time.monotonic", lambda: now[0])
    settle = reconciler.settler.settle

    def slow_settle(*args: Any, **kwargs: Any) -> Any:
        now[0] += 100.0  # this job's settling outlasts the deadline
        return settle(*args, **kwargs)

    monkeypatch.setattr(reconciler.settler, "settle", slow_settle)

    report = reconciler.run(deadline=50.0)

    assert report.out_of_time is True
    assert sorted(store.get(job_id).status for job_id in job_ids) == ["SUBMITTED", "SUBMITTED", "TIMED_OUT"]


def test_reports_when_the_oldest_open_job_opened(store, reconciler):
    assert reconciler.run().oldest_open_age_seconds is None
    add_job(store, timedelta(minutes=30), JobStatus.CLAIMED)
    add_job(store, timedelta(minutes=10))
    add_job(store, timedelta(hours=9), JobStatus.COMPLETED)  # ended: not open, not counted

    age = reconciler.run().oldest_open_age_seconds

    assert 30 * 60 <= age < 31 * 60


def test_while_migrating_open_jobs_of_the_old_index_get_their_keys_and_checks(aws, runware):
    from tests.conftest import create_jobs_table
    from upscaler.recovery_checks import CheckQueue, CheckSchedule

    create_jobs_table(aws.dynamodb, "migrating-jobs", with_status_index=True)
    store = JobStore(aws.dynamodb, "migrating-jobs")
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="checks")["QueueUrl"]
    created = datetime.now(UTC) - timedelta(minutes=20)
    # As an earlier version wrote them: status and createdAt, no open-jobs keys.
    old = {status: str(uuid.uuid4()) for status in ("CLAIMED", "SUBMITTED", "COMPLETED")}
    for status, job_id in old.items():
        item = {"jobId": job_id, "status": status, "createdAt": iso(created), "sourceBucket": "b", "sourceKey": "k"}
        aws.dynamodb.put_item(TableName="migrating-jobs", Item=to_attribute_values(item))
    reconciler = make_reconciler(
        aws,
        store,
        runware,
        legacy_index="jobsByStatus",
        checks=CheckQueue(sqs, queue_url),
        schedule=CheckSchedule(600, PASS_MAX_AGE),
    )
    reconciler.open_jobs = OpenJobs(aws.dynamodb, "migrating-jobs")

    report = reconciler.run()

    assert report.indexed_from_legacy == 2
    for status in ("CLAIMED", "SUBMITTED"):
        job = store.get(old[status])
        assert (job.open_shard, job.open_since) == (open_shard(old[status]), iso(created)), status
    assert store.get(old["COMPLETED"]).open_shard is None
    assert {job.job_id for job in reconciler.open_jobs.oldest()} == {old["CLAIMED"], old["SUBMITTED"]}
    [message] = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]  # due: no delay
    assert json.loads(message["Body"])["jobId"] == old["SUBMITTED"]
    assert reconciler.run().indexed_from_legacy == 0, "once indexed, never again"
