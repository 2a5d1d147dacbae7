"""ResultRecorder against moto: what a completed, failed or timed-out job record holds, and the
state rules (one terminal record; only TIMED_OUT -> COMPLETED leaves a terminal state)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache

import pytest
from PIL import Image

from tests.conftest import INBOX_BUCKET, JOBS_TABLE, OUTPUT_BUCKET
from tests.job_records import move_job, seed_job, stored_record
from upscaler import results
from upscaler.clock import iso
from upscaler.job_record import Job, JobStatus
from upscaler.jobs import JobStore
from upscaler.results import OutputNotReady, ResultRecorder
from upscaler.runware_answers import TaskError, TaskResult
from upscaler.storage import ObjectStore

JOB_ID = "7385b5c0-ffc2-4024-b9ba-1dc0426e58c9"
UPLOADED = datetime(2025, 3, 12, 10, 0, 0, tzinfo=UTC)
SUBMITTED = UPLOADED + timedelta(seconds=2, milliseconds=500)
FINISHED = SUBMITTED + timedelta(seconds=95, milliseconds=250)
# outputFormat -> (Pillow format, Content-Type, extension)
FORMATS = {
    "JPG": ("JPEG", "image/jpeg", "jpg"),
    "PNG": ("PNG", "image/png", "png"),
    "WEBP": ("WEBP", "image/webp", "webp"),
}

RESULT = TaskResult(
    task_uuid=JOB_ID,
    image_uuid="2af4c8a9-5865-46b2-a4e3-b011d3dcd03e",
    image_url="https://im.runware.ai/image/ws/2/ii/2af4c8a9-5865-46b2-a4e3-b011d3dcd03e.png",
    cost=Decimal("0.0052"),
)
ERROR = TaskError("invalidImageURL", "The image at inputs.image could not be downloaded.", "inputs.image", JOB_ID)


@cache
def image_bytes(width: int, height: int, pillow_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, format=pillow_format)
    return buffer.getvalue()


def job_fields(job_id: str = JOB_ID, output_format: str = "PNG") -> dict:
    """The fields the submit path writes for an accepted 640x480 PNG."""
    extension = FORMATS[output_format][2]
    return {
        "jobId": job_id,
        "sourceBucket": INBOX_BUCKET,
        "sourceKey": "inbox/holiday/cat.png",
        "sourceVersionId": "3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY",
        "sourceETag": "9b2cf535f27731c974343645a3985328",
        "sourceSize": 123456,
        "sourceContentType": "image/png",
        "eventTime": iso(UPLOADED),
        "inputFormat": "PNG",
        "inputWidth": 640,
        "inputHeight": 480,
        "targetMegapixels": 4,
        "enhanceDetails": False,
        "realism": False,
        "outputFormat": output_format,
        "outputQuality": 95,
        "outputBucket": OUTPUT_BUCKET,
        "outputKey": f"upscaled/holiday/cat.png.{job_id[:8]}.{extension}",
        "outputContentType": FORMATS[output_format][1],
    }


def submitted_job(jobs: JobStore, **fields) -> dict:
    job = job_fields(**fields)
    seed_job(jobs, job, JobStatus.CLAIMED, now=UPLOADED + timedelta(seconds=1))
    return move_job(
        jobs,
        job["jobId"],
        JobStatus.SUBMITTED,
        # As the submitter writes it (upscaler.submission).
        {"submittedAt": iso(SUBMITTED), "submitRequestMs": 240, "stagingKey": f"staging/{job['jobId']}"},
        increment="submitAttempts",
        now=SUBMITTED,
    )


@pytest.fixture
def clock(monkeypatch):
    """Results are recorded at FINISHED, so durations are exact."""
    moment = {"now": FINISHED}
    monkeypatch.setattr(results, "utc_now", lambda: moment["now"])
    return moment


@pytest.fixture
def store(aws):
    return JobStore(aws.dynamodb, JOBS_TABLE)


@pytest.fixture
def recorder(aws, store):
    return ResultRecorder(ObjectStore(aws.s3), store)


@pytest.fixture
def copies(aws):
    """Every CopyObject the code makes (the Content-Type fix-up is one)."""
    calls: list[dict] = []
    aws.s3.meta.events.register("before-call.s3.CopyObject", lambda params, **kwargs: calls.append(params))
    return calls


def put_output(aws, job: Job | dict, data: bytes, **extra) -> None:
    """What Runware does: PUT the bytes to the presigned staging URL."""
    job = Job.from_record(job) if isinstance(job, dict) else job
    aws.s3.put_object(Bucket=job.output_bucket, Key=staging_key(job), Body=data, **extra)


def staging_key(job: Job) -> str:
    return f"staging/{job.job_id}"


def staged_keys(aws) -> list[str]:
    listing = aws.s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="staging/")
    return [item["Key"] for item in listing.get("Contents", [])]


def test_success_records_every_output_fact_and_the_three_durations(aws, store, recorder, clock):
    job = submitted_job(store)
    data = image_bytes(2310, 1733, "PNG")
    put_output(aws, job, data, ContentType="image/png")

    recorded = recorder.record_success(job, RESULT, via="webhook")
    stored_etag = aws.s3.head_object(Bucket=OUTPUT_BUCKET, Key=job.output_key)["ETag"].strip('"')

    record = stored_record(store, JOB_ID)
    assert recorded.changed is True
    assert recorded.status == "COMPLETED"
    assert recorded.job.to_record() == record
    assert record["status"] == "COMPLETED"
    assert record["imageUUID"] == RESULT.image_uuid
    # Spent once the output is in the bucket: Runware's temporary URL and the staging key.
    assert "imageURL" not in record and "stagingKey" not in record
    assert record["cost"] == Decimal("0.0052")
    assert record["outputSize"] == len(data)
    assert record["outputFormat"] == "PNG"
    assert record["outputContentType"] == "image/png"
    assert record["outputETag"] == stored_etag
    assert (record["outputWidth"], record["outputHeight"]) == (2310, 1733)
    assert record["outputKey"] == job.output_key
    assert staged_keys(aws) == []
    assert (record["inputWidth"], record["inputHeight"], record["inputFormat"]) == (640, 480, "PNG")
    assert record["sourceSize"] == 123456
    assert record["completedAt"] == iso(FINISHED)
    assert record["uploadToSubmitSeconds"] == Decimal("2.5")
    assert record["providerSeconds"] == Decimal("95.25")
    assert record["totalSeconds"] == Decimal("97.75")
    assert record["resultVia"] == "webhook"
    assert record["resultReports"] == 1
    assert "lateResult" not in record
    assert "errorCode" not in record


@pytest.mark.parametrize(
    ("output_format", "stored_type"),
    [("JPG", "binary/octet-stream"), ("PNG", None), ("WEBP", "image/png")],
    ids=["jpg-generic-type", "png-no-type", "webp-wrong-image-type"],
)
def test_success_publishes_the_staged_bytes_with_the_right_type_and_the_job_in_their_metadata(
    aws, store, recorder, output_format, stored_type
):
    pillow_format, content_type, _ = FORMATS[output_format]
    job = submitted_job(store, output_format=output_format)
    extra = {"ContentType": stored_type} if stored_type else {}
    put_output(aws, job, image_bytes(2310, 1733, pillow_format), Metadata={"origin": "runware"}, **extra)

    recorder.record_success(job, RESULT, via="webhook")

    head = aws.s3.head_object(Bucket=OUTPUT_BUCKET, Key=job.output_key)
    record = stored_record(store, JOB_ID)
    assert head["ContentType"] == content_type
    assert head["Metadata"] == {
        "job-id": JOB_ID,
        "source-bucket": INBOX_BUCKET,
        "source-key": "inbox/holiday/cat.png",
        "source-version-id": "3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY",
        # The options it was made with: an output found after its record expired is reused only for them.
        "upscale-options": "targetMegapixels=4;enhanceDetails=false;realism=false;"
        f"outputFormat={output_format};outputQuality=95",
    }
    assert record["outputContentType"] == content_type
    assert record["outputETag"] == head["ETag"].strip('"')
    assert (record["outputWidth"], record["outputHeight"]) == (2310, 1733)


def test_recorded_format_and_content_type_follow_the_bytes_not_the_request(aws, store, recorder):
    job = submitted_job(store, output_format="JPG")
    put_output(aws, job, image_bytes(2310, 1733, "PNG"))

    recorder.record_success(job, RESULT, via="webhook")

    record = stored_record(store, JOB_ID)
    assert (record["outputFormat"], record["outputContentType"]) == ("PNG", "image/png")
    # The extension follows the bytes too: the planned .jpg key becomes .png.
    assert job.output_key.endswith(".jpg")
    assert record["outputKey"] == job.output_key.removesuffix(".jpg") + ".png"
    assert aws.s3.head_object(Bucket=OUTPUT_BUCKET, Key=record["outputKey"])["ContentType"] == "image/png"


def test_success_publishes_with_one_server_side_copy(aws, store, recorder, copies):
    job = submitted_job(store)
    put_output(aws, job, image_bytes(2310, 1733, "PNG"), ContentType="image/png")

    recorder.record_success(job, RESULT, via="webhook")

    assert len(copies) == 1
    assert copies[0]["headers"]["x-amz-copy-source"] == f"{OUTPUT_BUCKET}/{staging_key(job)}"
    assert copies[0]["url_path"].endswith(job.output_key)
    assert store.get(JOB_ID).status == "COMPLETED"


def test_a_result_published_before_a_crash_completes_the_job_without_a_staged_copy(aws, store, recorder, copies):
    job = submitted_job(store)
    data = image_bytes(2310, 1733, "PNG")
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=job.output_key, Body=data, ContentType="image/png")

    recorded = recorder.record_success(job, RESULT, via="reconcile")

    assert recorded.status == "COMPLETED"
    assert copies == []
    assert store.get(JOB_ID).output_size == len(data)


@pytest.mark.parametrize(
    ("size", "reason"),
    [((1000, 750), "not the 4 MP asked for"), ((3000, 1333), "not the shape of the 640x480 input")],
    ids=["too-small", "other-shape"],
)
def test_staged_bytes_of_another_size_or_shape_fail_the_job_and_are_kept(aws, store, recorder, size, reason):
    job = submitted_job(store)
    put_output(aws, job, image_bytes(*size, "PNG"))

    recorded = recorder.record_success(job, RESULT, via="webhook")

    record = stored_record(store, JOB_ID)
    assert recorded.status == "FAILED"
    assert record["errorCode"] == "outputMismatch"
    assert reason in record["errorMessage"]
    assert staged_keys(aws) == [staging_key(job)]
    with pytest.raises(aws.s3.exceptions.ClientError):
        aws.s3.head_object(Bucket=OUTPUT_BUCKET, Key=job.output_key)


def test_an_output_turned_sideways_is_accepted(aws, store, recorder):
    job = submitted_job(store)
    put_output(aws, job, image_bytes(1733, 2310, "PNG"))

    assert recorder.record_success(job, RESULT, via="webhook").status == "COMPLETED"


def test_a_put_to_the_staging_url_after_completion_changes_nothing_the_user_sees(aws, store, recorder):
    job = submitted_job(store)
    put_output(aws, job, image_bytes(2310, 1733, "PNG"))
    completed = recorder.record_success(job, RESULT, via="webhook").job
    published = aws.s3.get_object(Bucket=OUTPUT_BUCKET, Key=job.output_key)["Body"].read()

    put_output(aws, job, image_bytes(2309, 1732, "PNG"))  # someone holding the URL replaces the bytes
    again = recorder.record_success(store.get(JOB_ID), RESULT, via="webhook")

    assert again.changed is False
    assert store.get(JOB_ID) == completed
    assert aws.s3.get_object(Bucket=OUTPUT_BUCKET, Key=job.output_key)["Body"].read() == published


def test_success_before_the_output_is_uploaded_raises_and_writes_nothing(aws, store, recorder):
    job = submitted_job(store)

    with pytest.raises(OutputNotReady):
        recorder.record_success(job, RESULT, via="webhook")

    assert store.get(JOB_ID) == job


def test_success_is_recorded_once_the_output_arrives_after_a_not_ready(aws, store, recorder):
    job = submitted_job(store)
    with pytest.raises(OutputNotReady):
        recorder.record_success(job, RESULT, via="webhook")
    put_output(aws, job, image_bytes(2310, 1733, "PNG"), ContentType="image/png")

    recorded = recorder.record_success(store.get(JOB_ID), RESULT, via="webhook")

    assert recorded.changed is True
    assert store.get(JOB_ID).status == "COMPLETED"
    assert store.get(JOB_ID).result_reports == 1


def test_output_that_is_not_an_image_fails_the_job(aws, store, recorder):
    job = submitted_job(store)
    put_output(aws, job, b"<html>Access denied</html>", ContentType="text/html")

    recorded = recorder.record_success(job, RESULT, via="webhook")

    record = stored_record(store, JOB_ID)
    assert recorded.status == "FAILED"
    assert record["status"] == "FAILED"
    assert record["errorCode"] == "outputUnreadable"
    assert "imageUUID" not in record


def test_failure_records_runware_code_message_parameter_and_durations(store, recorder, clock):
    job = submitted_job(store)

    recorded = recorder.record_failure(job, ERROR, via="webhook")

    record = stored_record(store, JOB_ID)
    assert recorded.changed is True
    assert record["status"] == "FAILED"
    assert record["errorCode"] == "invalidImageURL"
    assert record["errorMessage"] == "The image at inputs.image could not be downloaded."
    assert record["errorParameter"] == "inputs.image"
    assert record["completedAt"] == iso(FINISHED)
    assert record["providerSeconds"] == Decimal("95.25")
    assert record["totalSeconds"] == Decimal("97.75")
    assert record["resultVia"] == "webhook"


def test_repeated_success_changes_nothing(aws, store, recorder, clock):
    job = submitted_job(store)
    put_output(aws, job, image_bytes(2310, 1733, "PNG"))
    first = recorder.record_success(job, RESULT, via="webhook")
    clock["now"] = FINISHED + timedelta(minutes=3)

    again = recorder.record_success(first.job, RESULT, via="reconcile")

    assert again.changed is False
    assert again.status == "COMPLETED"
    assert store.get(JOB_ID) == first.job


def test_repeat_reported_with_a_stale_copy_of_the_job_changes_nothing(aws, store, recorder, clock):
    job = submitted_job(store)  # both reports start from this SUBMITTED copy, as racing deliveries would
    put_output(aws, job, image_bytes(2310, 1733, "PNG"))
    first = recorder.record_success(job, RESULT, via="webhook")
    clock["now"] = FINISHED + timedelta(minutes=3)

    again = recorder.record_success(job, RESULT, via="reconcile")
    late_error = recorder.record_failure(job, ERROR, via="webhook")

    assert (again.changed, late_error.changed) == (False, False)
    assert again.job == first.job
    assert store.get(JOB_ID) == first.job


def test_error_after_success_leaves_the_job_completed(aws, store, recorder):
    job = submitted_job(store)
    put_output(aws, job, image_bytes(2310, 1733, "PNG"))
    completed = recorder.record_success(job, RESULT, via="webhook").job

    recorded = recorder.record_failure(completed, ERROR, via="webhook")

    assert recorded.changed is False
    assert recorded.status == "COMPLETED"
    assert store.get(JOB_ID) == completed


def test_verified_success_after_a_failure_report_completes_the_job(aws, store, recorder):
    job = submitted_job(store)
    failed = recorder.record_failure(job, ERROR, via="webhook").job
    put_output(aws, job, image_bytes(2310, 1733, "PNG"), ContentType="binary/octet-stream")

    recorded = recorder.record_success(failed, RESULT, via="webhook")

    record = stored_record(store, JOB_ID)
    assert recorded.changed is True
    assert record["status"] == "COMPLETED"
    assert record["overriddenErrorCode"] == "invalidImageURL"
    assert "errorCode" not in record


def test_failure_report_for_a_job_whose_output_is_there_completes_it(aws, store, recorder):
    job = submitted_job(store)
    put_output(aws, job, image_bytes(2310, 1733, "PNG"))

    recorded = recorder.record_failure(job, ERROR, via="webhook")

    record = stored_record(store, JOB_ID)
    assert recorded.status == "COMPLETED"
    assert record["overriddenErrorCode"] == "invalidImageURL"
    assert record["lateResult"] is True
    assert "cost" not in record


def test_a_success_report_after_a_failure_with_no_output_changes_nothing(aws, store, recorder):
    job = submitted_job(store)
    failed = recorder.record_failure(job, ERROR, via="webhook").job

    with pytest.raises(OutputNotReady):
        recorder.record_success(failed, RESULT, via="webhook")

    assert store.get(JOB_ID) == failed


def test_timeout_of_a_job_whose_output_is_there_completes_it_instead(aws, store, recorder):
    job = submitted_job(store)
    put_output(aws, job, image_bytes(2310, 1733, "PNG"))

    recorded = recorder.record_timeout(job, 60)

    record = stored_record(store, JOB_ID)
    assert recorded.status == "COMPLETED"
    assert record["lateResult"] is True
    assert record["resultVia"] == "reconcile"


def test_timeout_moves_a_submitted_job_to_timed_out(store, recorder, clock):
    job = submitted_job(store)

    recorded = recorder.record_timeout(job, 4 * 3600)

    record = stored_record(store, JOB_ID)
    assert recorded.changed is True
    assert record["status"] == "TIMED_OUT"
    assert record["errorCode"] == "timedOut"
    assert "14400 seconds" in record["errorMessage"]
    assert record["completedAt"] == iso(FINISHED)


def test_timeout_never_overrides_a_finished_job(aws, store, recorder):
    job = submitted_job(store)
    put_output(aws, job, image_bytes(2310, 1733, "PNG"))
    completed = recorder.record_success(job, RESULT, via="webhook").job

    recorded = recorder.record_timeout(job, 60)

    assert recorded.changed is False
    assert store.get(JOB_ID) == completed


def test_late_success_completes_a_timed_out_job_and_says_it_came_late(aws, store, recorder, clock):
    job = submitted_job(store)
    timed_out = recorder.record_timeout(job, 60).job
    clock["now"] = FINISHED + timedelta(hours=1)
    put_output(aws, job, image_bytes(2310, 1733, "PNG"))

    recorded = recorder.record_success(timed_out, RESULT, via="webhook")

    record = stored_record(store, JOB_ID)
    assert recorded.changed is True
    assert record["status"] == "COMPLETED"
    assert record["lateResult"] is True
    assert record["imageUUID"] == RESULT.image_uuid
    assert record["completedAt"] == iso(FINISHED + timedelta(hours=1))
    assert record["totalSeconds"] == Decimal("3697.75")
    assert "errorCode" not in record
    assert "errorMessage" not in record


def test_error_after_timeout_leaves_the_job_timed_out(store, recorder):
    job = submitted_job(store)
    timed_out = recorder.record_timeout(job, 60).job

    recorded = recorder.record_failure(timed_out, ERROR, via="webhook")

    assert recorded.changed is False
    assert store.get(JOB_ID) == timed_out


def test_success_for_a_job_still_claimed_completes_it_with_durations_from_creation(aws, store, recorder, clock):
    job = job_fields()
    seed_job(store, job, JobStatus.CLAIMED, now=SUBMITTED)
    put_output(aws, job, image_bytes(2310, 1733, "PNG"))

    recorder.record_success(store.get(JOB_ID), RESULT, via="webhook")

    record = stored_record(store, JOB_ID)
    assert record["status"] == "COMPLETED"
    assert record["providerSeconds"] == Decimal("95.25")


def test_a_job_rejected_after_its_claim_is_completed_by_its_verified_output(aws, store, recorder):
    # The submit function died after Runware accepted the task; the user then deleted the source,
    # so the retry rejected the claimed job. Runware still ran (and billed) the task.
    job = job_fields()
    seed_job(store, job, JobStatus.CLAIMED, now=SUBMITTED)
    rejected = move_job(
        store,
        JOB_ID,
        JobStatus.REJECTED,
        {"errorCode": "sourceDeleted", "errorMessage": "deleted", "rejectedAfterClaim": True},
    )
    put_output(aws, job, image_bytes(2310, 1733, "PNG"))

    recorded = recorder.record_success(rejected, RESULT, via="webhook")

    record = stored_record(store, JOB_ID)
    assert recorded.status == "COMPLETED"
    assert record["overriddenErrorCode"] == "sourceDeleted"


def test_a_job_rejected_before_any_claim_is_never_completed(aws, store, recorder):
    job = job_fields()
    seed_job(store, {**job, "errorCode": "notAnImage", "errorMessage": "text"}, JobStatus.REJECTED, now=SUBMITTED)
    put_output(aws, job, image_bytes(2310, 1733, "PNG"))

    recorded = recorder.record_success(store.get(JOB_ID), RESULT, via="webhook")

    assert (recorded.changed, store.get(JOB_ID).status) == (False, "REJECTED")
