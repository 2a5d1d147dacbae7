"""Every webhook body in the Runware contract, answered by the receiver and recorded on its job (how each
body reads: tests/unit/test_runware_answers.py)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from PIL import Image

from tests.conftest import INBOX_BUCKET, JOBS_TABLE, OUTPUT_BUCKET, WEBHOOK_KEY
from tests.contract.runware_contract import by_name, of_kind
from tests.job_records import move_job, seed_job, stored_record
from upscaler.clock import iso
from upscaler.job_record import JobStatus
from upscaler.jobs import JobStore
from upscaler.results import ResultRecorder
from upscaler.runware_answers import TaskResult
from upscaler.storage import ObjectStore
from upscaler.tokens import webhook_token
from upscaler.webhook import WebhookReceiver

CONTRACT_TASK = "3f1c6a2e-8b4d-4c1e-9a7f-2d5b6c8e9f01"
JOB_ID = "9b1d3c5e-7f2a-4b6c-8d0e-1f3a5b7c9d2e"
TOKEN = webhook_token(JOB_ID, WEBHOOK_KEY)
IMAGE_UUID = "5d2e7f1a-9c3b-4e8d-a6f0-1b2c3d4e5f60"
RESULT = TaskResult(
    CONTRACT_TASK, IMAGE_UUID, f"https://im.runware.ai/image/ws/2/ii/{IMAGE_UUID}.jpg", Decimal("0.005")
)
SUBMITTED = datetime.now(UTC) - timedelta(minutes=2)

# What each body reports: a result, or (code, message) of a failure.
EXPECTED: dict[str, TaskResult | tuple[str, str]] = {
    "webhook/envelope-success": RESULT,
    "webhook/bare-success": RESULT,
    "webhook/array-of-results": RESULT,
    "webhook/envelope-error": ("timeoutProvider", "Provider timed out"),
    "webhook/bare-error": ("timeoutProvider", "Provider timed out"),
    "webhook/error-object": ("timeoutProvider", "Provider timed out"),
    "webhook/nested-error-item": ("inferenceError", "Inference failed"),
    # To a recorder without recovery, as here; with it: tests/unit/test_result_recovery.py.
    "webhook/upload-failed": ("uploadFailed", "Failed to upload the result to uploadEndpoint."),
}


def as_job(name: str) -> bytes:
    """The fixture's body with the job's id in place of the contract's taskUUID."""
    return json.dumps(by_name(name).body).replace(CONTRACT_TASK, JOB_ID).encode()


def test_every_webhook_fixture_is_checked_here():
    assert {fixture.name for fixture in of_kind("webhook")} == set(EXPECTED)


@pytest.fixture
def store(aws):
    return JobStore(aws.dynamodb, JOBS_TABLE)


@pytest.fixture
def receiver(aws, store):
    return WebhookReceiver(store, ResultRecorder(ObjectStore(aws.s3), store), lambda: WEBHOOK_KEY)


@pytest.fixture
def job(aws, store):
    """A SUBMITTED job whose 1600x1200 JPEG output Runware has already PUT."""
    fields = {
        "jobId": JOB_ID,
        "sourceBucket": INBOX_BUCKET,
        "sourceKey": "inbox/dog.jpg",
        "sourceVersionId": "v1",
        "sourceSize": 45678,
        "eventTime": iso(SUBMITTED - timedelta(seconds=3)),
        "inputFormat": "JPG",
        "inputWidth": 800,
        "inputHeight": 600,
        "outputFormat": "JPG",
        "outputBucket": OUTPUT_BUCKET,
        "outputKey": f"upscaled/dog.jpg.{JOB_ID[:8]}.jpg",
    }
    seed_job(store, fields, JobStatus.CLAIMED, now=SUBMITTED - timedelta(seconds=1))
    buffer = io.BytesIO()
    Image.new("RGB", (1600, 1200), (200, 120, 40)).save(buffer, format="JPEG")
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=f"staging/{JOB_ID}", Body=buffer.getvalue())
    return move_job(store, JOB_ID, JobStatus.SUBMITTED, {"submittedAt": iso(SUBMITTED)}, now=SUBMITTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_the_receiver_records_each_body_on_its_job(aws, store, receiver, job, name):
    if not isinstance(EXPECTED[name], TaskResult):
        # A failure report is recorded only when no checked output exists (otherwise the output wins).
        aws.s3.delete_object(Bucket=OUTPUT_BUCKET, Key=f"staging/{JOB_ID}")
    reply = receiver.receive(JOB_ID, TOKEN, as_job(name))

    record = stored_record(store, JOB_ID)
    assert (reply.status_code, reply.malformed) == (200, 0)
    if isinstance(EXPECTED[name], TaskResult):
        assert (record["status"], record["imageUUID"], record["cost"]) == ("COMPLETED", IMAGE_UUID, Decimal("0.005"))
    else:
        assert (record["status"], record["errorCode"]) == ("FAILED", EXPECTED[name][0])
    assert "malformedReports" not in record


def test_a_body_with_a_readable_result_beside_hostile_items_completes_the_job(store, receiver, job):
    result = json.loads(as_job("webhook/envelope-success"))["data"][0]
    hostile = [{"taskUUID": [JOB_ID]}, {"taskUUID": JOB_ID, "imageURL": 7, "cost": "NaN"}, "x", None]
    body = json.dumps({"data": [*hostile, result]}).encode()

    reply = receiver.receive(JOB_ID, TOKEN, body)

    record = stored_record(store, JOB_ID)
    assert (reply.status_code, reply.malformed, record["status"]) == (200, 4, "COMPLETED")
    assert record["malformedReports"] == 4


@pytest.mark.parametrize(
    "raw",
    [b"[" * 100_000 + b"]" * 100_000, b'{"data": [{"taskUUID": 5}, "x", {"cost": NaN}]}', b"Infinity"],
    ids=["deeply-nested", "only-hostile-items", "infinity"],
)
def test_a_body_with_nothing_readable_answers_400_and_is_counted(store, receiver, job, raw):
    reply = receiver.receive(JOB_ID, TOKEN, raw)

    record = stored_record(store, JOB_ID)
    assert reply.status_code == 400
    assert (record["status"], record["malformedReports"] >= 1) == ("SUBMITTED", True)
    assert record["lastMalformedReport"]
