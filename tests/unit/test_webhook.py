"""WebhookReceiver against moto: authentication, body checks, and what each answer leaves in the table."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest
from PIL import Image

from tests.conftest import INBOX_BUCKET, JOBS_TABLE, OUTPUT_BUCKET, WEBHOOK_KEY
from tests.job_records import move_job, seed_job, stored_record
from upscaler.clock import iso
from upscaler.job_record import JobStatus
from upscaler.jobs import JobStore
from upscaler.results import ResultRecorder
from upscaler.storage import ObjectStore
from upscaler.tokens import webhook_token
from upscaler.webhook import MAX_BODY_BYTES, WebhookReceiver

JOB_ID = "7385b5c0-ffc2-4024-b9ba-1dc0426e58c9"
UNKNOWN_ID = "0f8e2b1c-3d4a-4b5c-8d6e-7f8091a2b3c4"
TOKEN = webhook_token(JOB_ID, WEBHOOK_KEY)
IMAGE_UUID = "2af4c8a9-5865-46b2-a4e3-b011d3dcd03e"
RESULT = {
    "taskType": "upscale",
    "taskUUID": JOB_ID,
    "imageUUID": IMAGE_UUID,
    "imageURL": f"https://im.runware.ai/image/ws/2/ii/{IMAGE_UUID}.png",
    "cost": 0.0052,
}
ERROR = {
    "code": "invalidImageURL",
    "message": "The image at inputs.image could not be downloaded.",
    "parameter": "inputs.image",
    "taskType": "upscale",
    "taskUUID": JOB_ID,
}
SUBMITTED = datetime.now(UTC) - timedelta(minutes=2)


def body(payload: object) -> bytes:
    return json.dumps(payload).encode()


@cache
def png_bytes(width: int = 1600, height: int = 1200) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 160)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def store(aws):
    return JobStore(aws.dynamodb, JOBS_TABLE)


@pytest.fixture
def receiver(aws, store):
    return WebhookReceiver(store, ResultRecorder(ObjectStore(aws.s3), store), lambda: WEBHOOK_KEY)


@pytest.fixture
def job(store):
    """A SUBMITTED job as the submit path leaves it: 640x480 PNG in, PNG out."""
    fields = {
        "jobId": JOB_ID,
        "sourceBucket": INBOX_BUCKET,
        "sourceKey": "inbox/cat.png",
        "sourceVersionId": "v1",
        "sourceSize": 98765,
        "eventTime": iso(SUBMITTED - timedelta(seconds=3)),
        "inputFormat": "PNG",
        "inputWidth": 640,
        "inputHeight": 480,
        "outputFormat": "PNG",
        "outputBucket": OUTPUT_BUCKET,
        "outputKey": f"upscaled/cat.png.{JOB_ID[:8]}.png",
    }
    seed_job(store, fields, JobStatus.CLAIMED, now=SUBMITTED - timedelta(seconds=1))
    return move_job(store, JOB_ID, JobStatus.SUBMITTED, {"submittedAt": iso(SUBMITTED)}, now=SUBMITTED)


@pytest.fixture
def output(aws, job):
    """The upscaled object Runware PUT to its staging URL, without a Content-Type; the final key it
    is published to once checked."""
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=f"staging/{job.job_id}", Body=png_bytes())
    return job.output_key


def all_items(aws) -> list[dict]:
    # A scan here is the test's own look at the table, not the code under test.
    return aws.dynamodb.scan(TableName=JOBS_TABLE)["Items"]


@pytest.mark.parametrize("payload", [{"data": [RESULT]}, RESULT], ids=["envelope", "bare"])
def test_success_answers_200_and_completes_the_job(aws, store, receiver, output, payload):
    reply = receiver.receive(JOB_ID, TOKEN, body(payload))

    record = stored_record(store, JOB_ID)
    assert reply.status_code == 200
    assert reply.body == {"jobId": JOB_ID, "status": "COMPLETED"}
    assert [item.status for item in reply.recorded] == ["COMPLETED"]
    assert record["status"] == "COMPLETED"
    assert record["imageUUID"] == IMAGE_UUID
    assert (record["outputWidth"], record["outputHeight"]) == (1600, 1200)
    assert record["resultVia"] == "webhook"
    assert aws.s3.head_object(Bucket=OUTPUT_BUCKET, Key=output)["ContentType"] == "image/png"


@pytest.mark.parametrize("payload", [{"errors": [ERROR]}, ERROR], ids=["envelope", "bare"])
def test_error_answers_200_and_fails_the_job_with_runware_details(store, receiver, job, payload):
    reply = receiver.receive(JOB_ID, TOKEN, body(payload))

    record = stored_record(store, JOB_ID)
    assert reply.status_code == 200
    assert reply.body == {"jobId": JOB_ID, "status": "FAILED"}
    assert record["status"] == "FAILED"
    assert (record["errorCode"], record["errorParameter"]) == ("invalidImageURL", "inputs.image")
    assert record["errorMessage"] == "The image at inputs.image could not be downloaded."


BAD_CREDENTIALS = {
    "no-token": (JOB_ID, None),
    "empty-token": (JOB_ID, ""),
    "no-job": (None, TOKEN),
    "one-char-off": (JOB_ID, TOKEN[:-1] + ("0" if TOKEN[-1] != "0" else "1")),
    "upper-case-token": (JOB_ID, TOKEN.upper()),
    "other-key": (JOB_ID, webhook_token(JOB_ID, "some-other-key")),
    "other-job": (JOB_ID, webhook_token(UNKNOWN_ID, WEBHOOK_KEY)),
    "non-ascii": (JOB_ID, "é" * 64),
    "job-not-uuid": ("not-a-uuid", webhook_token("not-a-uuid", WEBHOOK_KEY)),
    "job-upper-case": (JOB_ID.upper(), TOKEN),
}


def test_missing_or_bad_token_answers_401_and_writes_nothing(aws, store, receiver, output):
    # One moto world for every variant: each must leave the same job and output untouched.
    before = store.get(JOB_ID)
    staged = f"staging/{JOB_ID}"
    etag_before = aws.s3.head_object(Bucket=OUTPUT_BUCKET, Key=staged)["ETag"]

    replies = {
        case: receiver.receive(job_id, token, body({"data": [RESULT]}))
        for case, (job_id, token) in BAD_CREDENTIALS.items()
    }

    assert {case: reply.status_code for case, reply in replies.items()} == dict.fromkeys(BAD_CREDENTIALS, 401)
    assert all(reply.recorded == [] for reply in replies.values())
    assert store.get(JOB_ID) == before
    assert aws.s3.head_object(Bucket=OUTPUT_BUCKET, Key=staged)["ETag"] == etag_before
    assert len(all_items(aws)) == 1


def test_bad_token_is_refused_before_the_body_is_read(store, receiver, job):
    reply = receiver.receive(JOB_ID, "forged", b"x" * (MAX_BODY_BYTES + 1))

    assert reply.status_code == 401


def test_unknown_job_with_a_valid_token_answers_404_and_writes_nothing(aws, receiver):
    token = webhook_token(UNKNOWN_ID, WEBHOOK_KEY)

    reply = receiver.receive(UNKNOWN_ID, token, body({"data": [{**RESULT, "taskUUID": UNKNOWN_ID}]}))

    assert reply.status_code == 404
    assert all_items(aws) == []


def test_body_over_the_limit_answers_413_and_writes_nothing(store, receiver, job):
    padded = body({"data": [{**RESULT, "padding": "x" * MAX_BODY_BYTES}]})

    reply = receiver.receive(JOB_ID, TOKEN, padded)

    assert reply.status_code == 413
    assert store.get(JOB_ID) == job


def test_body_at_the_limit_is_read(store, receiver, output):
    payload = body({"data": [RESULT]})
    padded = payload + b" " * (MAX_BODY_BYTES - len(payload))

    reply = receiver.receive(JOB_ID, TOKEN, padded)

    assert reply.status_code == 200
    assert store.get(JOB_ID).status == "COMPLETED"


UNREADABLE_BODIES = {
    "empty": b"",
    "text": b"not json",
    "truncated": b'{"data": [',
    "binary": b"\xff\xfe\x00binary",
    "number": b"42",
    "empty-envelope": b'{"data": []}',
    "no-result": b'{"taskUUID": null}',
}


def test_unreadable_body_answers_400_and_is_only_counted_on_the_job(store, receiver, job):
    replies = {case: receiver.receive(JOB_ID, TOKEN, raw) for case, raw in UNREADABLE_BODIES.items()}

    assert {case: reply.status_code for case, reply in replies.items()} == dict.fromkeys(UNREADABLE_BODIES, 400)
    after = stored_record(store, JOB_ID)
    assert after["malformedReports"] == len(UNREADABLE_BODIES)
    assert {
        k: v for k, v in after.items() if not k.startswith(("malformedReports", "lastMalformedReport"))
    } == job.to_record()


def test_items_for_another_task_answer_400_and_nothing_is_recorded(store, receiver, output, job):
    payload = {"data": [RESULT, {**RESULT, "taskUUID": UNKNOWN_ID}]}

    reply = receiver.receive(JOB_ID, TOKEN, body(payload))

    assert reply.status_code == 400
    assert UNKNOWN_ID in reply.body["message"]
    assert store.get(JOB_ID) == job


def test_success_before_the_output_exists_answers_503_and_the_job_stays_submitted(store, receiver, job):
    reply = receiver.receive(JOB_ID, TOKEN, body({"data": [RESULT]}))

    assert reply.status_code == 503
    assert store.get(JOB_ID) == job


def test_retry_after_503_completes_the_job_once_the_output_is_there(aws, store, receiver, job):
    first = receiver.receive(JOB_ID, TOKEN, body({"data": [RESULT]}))
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=job.output_key, Body=png_bytes())

    second = receiver.receive(JOB_ID, TOKEN, body({"data": [RESULT]}))

    assert (first.status_code, second.status_code) == (503, 200)
    assert store.get(JOB_ID).status == "COMPLETED"
    assert store.get(JOB_ID).result_reports == 1


def test_duplicate_success_answers_200_and_changes_nothing(store, receiver, output):
    receiver.receive(JOB_ID, TOKEN, body({"data": [RESULT]}))
    completed = store.get(JOB_ID)

    again = receiver.receive(JOB_ID, TOKEN, body(RESULT))

    assert again.status_code == 200
    assert again.body == {"jobId": JOB_ID, "status": "COMPLETED"}
    assert [item.changed for item in again.recorded] == [False]
    assert store.get(JOB_ID) == completed


def test_duplicate_error_answers_200_and_changes_nothing(store, receiver, job):
    receiver.receive(JOB_ID, TOKEN, body({"errors": [ERROR]}))
    failed = store.get(JOB_ID)

    again = receiver.receive(JOB_ID, TOKEN, body({"errors": [{**ERROR, "message": "another message"}]}))

    assert again.status_code == 200
    assert store.get(JOB_ID) == failed


def test_error_arriving_after_success_leaves_one_completed_record(aws, store, receiver, output):
    receiver.receive(JOB_ID, TOKEN, body(RESULT))
    completed = store.get(JOB_ID)

    late = receiver.receive(JOB_ID, TOKEN, body({"errors": [ERROR]}))

    assert late.status_code == 200
    assert late.body["status"] == "COMPLETED"
    assert store.get(JOB_ID) == completed
    assert store.get(JOB_ID).error_code is None
    assert len(all_items(aws)) == 1


def test_error_report_for_a_job_whose_output_is_there_completes_it(aws, store, receiver, output):
    reply = receiver.receive(JOB_ID, TOKEN, body(ERROR))

    assert reply.status_code == 200
    assert reply.body["status"] == "COMPLETED"
    record = stored_record(store, JOB_ID)
    assert record["overriddenErrorCode"] == ERROR["code"]
    assert aws.s3.head_object(Bucket=OUTPUT_BUCKET, Key=output)["ContentType"] == "image/png"


def test_success_arriving_after_an_error_completes_the_failed_job(aws, store, receiver, job):
    receiver.receive(JOB_ID, TOKEN, body(ERROR))
    assert store.get(JOB_ID).status == "FAILED"
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=f"staging/{JOB_ID}", Body=png_bytes())

    late = receiver.receive(JOB_ID, TOKEN, body({"data": [RESULT]}))

    assert late.status_code == 200
    assert late.body["status"] == "COMPLETED"
    record = stored_record(store, JOB_ID)
    assert record["overriddenErrorCode"] == ERROR["code"]
    assert "errorCode" not in record


def test_envelope_with_success_and_error_for_the_job_records_the_success(store, receiver, output):
    reply = receiver.receive(JOB_ID, TOKEN, body({"data": [RESULT], "errors": [ERROR]}))

    assert reply.status_code == 200
    assert [(item.status, item.changed) for item in reply.recorded] == [("COMPLETED", True), ("COMPLETED", False)]
    assert store.get(JOB_ID).status == "COMPLETED"


def test_late_success_completes_a_timed_out_job_and_marks_it_late(store, receiver, output, job):
    move_job(store, JOB_ID, JobStatus.TIMED_OUT, {"errorCode": "timedOut"})

    reply = receiver.receive(JOB_ID, TOKEN, body(RESULT))

    record = stored_record(store, JOB_ID)
    assert reply.status_code == 200
    assert record["status"] == "COMPLETED"
    assert record["lateResult"] is True


def test_late_error_leaves_a_timed_out_job_timed_out(store, receiver, job):
    timed_out = move_job(store, JOB_ID, JobStatus.TIMED_OUT, {"errorCode": "timedOut"})

    reply = receiver.receive(JOB_ID, TOKEN, body(ERROR))

    assert reply.status_code == 200
    assert reply.body["status"] == "TIMED_OUT"
    assert store.get(JOB_ID) == timed_out


def test_result_for_a_rejected_job_answers_200_and_changes_nothing(store, receiver):
    seed_job(
        store,
        {"jobId": JOB_ID, "sourceBucket": INBOX_BUCKET, "sourceKey": "k", "errorCode": "notAnImage"},
        JobStatus.REJECTED,
    )
    rejected = store.get(JOB_ID)

    reply = receiver.receive(JOB_ID, TOKEN, body(ERROR))

    assert reply.status_code == 200
    assert store.get(JOB_ID) == rejected


def test_a_job_sent_again_takes_reports_of_its_second_task_and_ignores_the_first(store, receiver, output, job):
    from upscaler.jobs import RESUBMIT

    second = "0b6f7d0e-3a51-4c0e-8d2f-6f1b9a3c2e45"
    store.move(JOB_ID, RESUBMIT, {"runware_task_uuid": second}, increment="resubmissions")
    stale = receiver.receive(JOB_ID, TOKEN, body({"errors": [{"code": "uploadFailed", "taskUUID": JOB_ID}]}))
    assert stale.status_code == 200 and store.get(JOB_ID).status is JobStatus.SUBMITTED

    reply = receiver.receive(JOB_ID, TOKEN, body({"data": [{**RESULT, "taskUUID": second}]}))

    assert reply.status_code == 200
    assert store.get(JOB_ID).status is JobStatus.COMPLETED
