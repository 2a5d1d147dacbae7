"""Recovering a paid result that never reached the bucket: the streaming copy (memory bounded by one
part, whatever the image size), the decision rules, and ResultRecorder's use of them on moto."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import JOBS_TABLE, OUTPUT_BUCKET
from tests.contract.runware_contract import by_name
from tests.job_records import stored_record
from tests.unit.test_results import JOB_ID, submitted_job
from upscaler.job_record import Job
from upscaler.jobs import TIME_OUT, JobStore
from upscaler.outputs import OutputInvalid, OutputNotReady
from upscaler.result_recovery import (
    FETCH_CHUNK_BYTES,
    RecoveryPending,
    ResultGone,
    ResultRecovery,
    Step,
    is_runware_url,
    next_step,
    second_task_uuid,
)
from upscaler.results import ResultRecorder
from upscaler.runware_answers import Failed, TaskError, TaskResult, read_poll, read_webhook
from upscaler.storage import S3_MIN_PART_BYTES, ObjectStore

API_URL = "https://api.runware.ai/v1"
IMAGE_URL = "https://im.runware.ai/image/ws/2/ii/2af4c8a9-5865-46b2-a4e3-b011d3dcd03e.png"
PART = S3_MIN_PART_BYTES
MiB = 1024 * 1024


# --- the streaming copy ---------------------------------------------------------------------------


class PartRecorder:
    """An S3 client that keeps no bytes: it records the size of every body it is handed."""

    def __init__(self) -> None:
        self.bodies: list[int] = []
        self.calls: list[str] = []

    def create_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("create")
        return {"UploadId": "u1"}

    def upload_part(self, *, Body: bytes, PartNumber: int, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(f"part{PartNumber}")
        self.bodies.append(len(Body))
        return {"ETag": f'"{PartNumber}"'}

    def put_object(self, *, Body: bytes, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("put")
        self.bodies.append(len(Body))
        return {}

    def complete_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("complete")
        return {}

    def abort_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("abort")
        return {}


class ChunkedBody(httpx.SyncByteStream):
    """A response body of `total` bytes made on the fly in `size` pieces, counting the largest."""

    def __init__(self, total: int, size: int = 1 * MiB) -> None:
        self.total = total
        self.size = size
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        while self.sent < self.total:
            piece = min(self.size, self.total - self.sent)
            self.sent += piece
            yield b"\xab" * piece


def image_server(status: int = 200, body: httpx.SyncByteStream | bytes = b"", headers: dict[str, str] | None = None):
    """Runware's result host as httpx sees it, answering every GET with one response."""
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, stream=body, headers=headers)

    client = httpx.Client(transport=httpx.MockTransport(answer))
    return client, requests


def recovery_for(objects: ObjectStore, client: httpx.Client, **extra: Any) -> ResultRecovery:
    return ResultRecovery(objects, lambda: client, API_URL, part_bytes=PART, **extra)


def a_job(**fields: Any) -> Job:
    return Job(job_id=JOB_ID, source_bucket="in", source_key="k", output_bucket=OUTPUT_BUCKET, **fields)


def test_a_large_result_is_streamed_in_parts_never_held_whole():
    s3 = PartRecorder()
    body = ChunkedBody(total=23 * MiB)  # 4.6 parts of 5 MiB
    client, _ = image_server(body=body)

    written = recovery_for(ObjectStore(s3), client).copy_result(a_job(), IMAGE_URL)

    assert written == 23 * MiB and body.sent == 23 * MiB
    assert s3.calls == ["create", "part1", "part2", "part3", "part4", "part5", "complete"]
    assert s3.bodies == [PART, PART, PART, PART, 23 * MiB - 4 * PART]
    assert max(s3.bodies) <= PART  # the most any request held


def test_each_read_of_the_body_is_at_most_one_chunk(monkeypatch):
    reads: list[int] = []
    real_iter_bytes = httpx.Response.iter_bytes

    def counted(self: httpx.Response, chunk_size: int | None = None) -> Iterator[bytes]:
        for chunk in real_iter_bytes(self, chunk_size):
            reads.append(len(chunk))
            yield chunk

    monkeypatch.setattr(httpx.Response, "iter_bytes", counted)
    client, _ = image_server(body=ChunkedBody(total=7 * MiB, size=3 * MiB))
    recovery_for(ObjectStore(PartRecorder()), client).copy_result(a_job(), IMAGE_URL)
    assert sum(reads) == 7 * MiB
    assert max(reads) <= FETCH_CHUNK_BYTES


def test_a_small_result_is_one_put():
    s3 = PartRecorder()
    client, _ = image_server(body=b"x" * 1000)
    recovery_for(ObjectStore(s3), client).copy_result(a_job(), IMAGE_URL)
    assert s3.calls == ["put"] and s3.bodies == [1000]


def test_a_body_that_breaks_off_aborts_the_multipart_upload():
    class Broken(ChunkedBody):
        def __iter__(self) -> Iterator[bytes]:
            yield from super().__iter__()
            raise httpx.ReadError("connection reset")

    s3 = PartRecorder()
    client, _ = image_server(body=Broken(total=12 * MiB))
    with pytest.raises(RecoveryPending):
        recovery_for(ObjectStore(s3), client).copy_result(a_job(), IMAGE_URL)
    assert s3.calls[-1] == "abort" and "complete" not in s3.calls


def test_a_result_larger_than_any_image_is_refused_while_streaming():
    s3 = PartRecorder()
    client, _ = image_server(body=ChunkedBody(total=12 * MiB))
    with pytest.raises(OutputInvalid) as refused:
        recovery_for(ObjectStore(s3), client, max_bytes=11 * MiB).copy_result(a_job(), IMAGE_URL)
    assert refused.value.code == "outputTooLarge"
    assert s3.calls[-1] == "abort"


def test_streamed_parts_make_the_object_on_moto(aws):
    client, _ = image_server(body=ChunkedBody(total=11 * MiB))
    recovery_for(ObjectStore(aws.s3), client).copy_result(a_job(), IMAGE_URL)
    stored = aws.s3.get_object(Bucket=OUTPUT_BUCKET, Key=f"staging/{JOB_ID}")["Body"].read()
    assert stored == b"\xab" * (11 * MiB)


@pytest.mark.parametrize("status", [403, 404, 410])
def test_a_url_that_no_longer_holds_the_result_is_gone(status):
    client, _ = image_server(status=status)
    with pytest.raises(ResultGone):
        recovery_for(ObjectStore(PartRecorder()), client).copy_result(a_job(), IMAGE_URL)


@pytest.mark.parametrize("status", [500, 503, 302])
def test_a_url_that_may_answer_later_leaves_the_job_for_later(status):
    client, _ = image_server(status=status, headers={"Location": "https://elsewhere.example/x"})
    with pytest.raises(RecoveryPending):
        recovery_for(ObjectStore(PartRecorder()), client).copy_result(a_job(), IMAGE_URL)


def test_a_url_off_runwares_domain_is_never_fetched():
    client, requests = image_server(body=b"x")
    with pytest.raises(ResultGone):
        recovery_for(ObjectStore(PartRecorder()), client).copy_result(a_job(), "http://169.254.169.254/latest/")
    assert requests == []


@pytest.mark.parametrize(
    ("url", "api", "allowed"),
    [
        (IMAGE_URL, API_URL, True),
        ("https://api.runware.ai/x.png", API_URL, True),
        ("http://im.runware.ai/x.png", API_URL, False),
        ("https://runware.ai.evil.example/x.png", API_URL, False),
        ("https://evilrunware.ai/x.png", API_URL, False),
        ("http://127.0.0.1:8080/images/a.png", "http://127.0.0.1:8080/v1", True),
        ("http://127.0.0.2:8080/images/a.png", "http://127.0.0.1:8080/v1", False),
    ],
)
def test_only_runwares_hosts_are_result_hosts(url, api, allowed):
    assert is_runware_url(url, api) is allowed


# --- the decision rules ---------------------------------------------------------------------------


def test_a_known_result_url_is_fetched_first():
    assert next_step(a_job(), IMAGE_URL) is Step.FETCH
    assert next_step(a_job(resubmissions=1), IMAGE_URL) is Step.FETCH


def test_without_a_url_the_job_is_sent_again_once_only():
    assert next_step(a_job(), None) is Step.RESUBMIT
    assert next_step(a_job(resubmissions=1), None) is Step.GIVE_UP


def test_the_second_task_uuid_is_a_v4_derived_from_the_job():
    second = second_task_uuid(JOB_ID)
    assert uuid.UUID(second).version == 4 and second != JOB_ID
    assert second == second_task_uuid(JOB_ID)  # every retry names the same task: no third bill
    assert second != second_task_uuid(str(uuid.uuid4()))


# --- ResultRecorder with recovery, on moto ----------------------------------------------------------


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


class Resends:
    """Stands in for Runware's side of a resubmission: records what was sent, answers as told."""

    def __init__(self, refusal: TaskError | None = None) -> None:
        self.sent: list[tuple[str, str]] = []
        self.refusal = refusal

    def send_again(self, job: Job, task_uuid: str) -> TaskError | None:
        self.sent.append((job.job_id, task_uuid))
        return self.refusal


UPLOAD_FAILED = TaskError("uploadFailed", "Failed to upload the result to uploadEndpoint.", None, JOB_ID, "upscale")


@pytest.fixture
def store(aws):
    return JobStore(aws.dynamodb, JOBS_TABLE)


def recorder_with(aws, store, body: bytes | None, status: int = 200, resender: Resends | None = None):
    client, requests = image_server(status=status, body=body or b"")
    recovery = ResultRecovery(ObjectStore(aws.s3), lambda: client, API_URL, resender=resender)
    return ResultRecorder(ObjectStore(aws.s3), store, recovery=recovery), requests


def test_upload_failed_with_a_result_url_completes_from_it(aws, store):
    job = submitted_job(store)
    recorder, requests = recorder_with(aws, store, png(2309, 1732))
    error = TaskError(**{**UPLOAD_FAILED.__dict__, "image_url": IMAGE_URL})

    recorded = recorder.record_failure(job, error, via="webhook")

    assert recorded.status == "COMPLETED", recorded
    record = stored_record(store, JOB_ID)
    assert (record["recoveredFrom"], record["overriddenErrorCode"]) == ("imageURL", "uploadFailed")
    assert record["outputContentType"] == "image/png" and [str(r.url) for r in requests] == [IMAGE_URL]
    assert not aws.s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="staging/").get("Contents")  # published


def test_a_success_with_nothing_staged_completes_from_its_result_url(aws, store):
    job = submitted_job(store)
    recorder, _ = recorder_with(aws, store, png(2309, 1732))
    result = TaskResult(JOB_ID, "2af4c8a9-5865-46b2-a4e3-b011d3dcd03e", IMAGE_URL, None)
    recorded = recorder.record_success(job, result, via="webhook")
    assert recorded.status == "COMPLETED"
    record = stored_record(store, JOB_ID)
    assert record["recoveredFrom"] == "imageURL"
    assert "imageURL" not in record  # the URL is spent once the output is in the bucket


def test_upload_failed_without_a_url_sends_the_job_again_once(aws, store):
    job = submitted_job(store)
    resends = Resends()
    recorder, requests = recorder_with(aws, store, None, resender=resends)

    recorded = recorder.record_failure(job, UPLOAD_FAILED, via="reconcile")

    second = second_task_uuid(JOB_ID)
    assert (recorded.status, recorded.changed) == ("SUBMITTED", True)
    assert resends.sent == [(JOB_ID, second)] and requests == []
    record = stored_record(store, JOB_ID)
    assert (record["runwareTaskUUID"], record["resubmissions"], record["resubmittedBecause"]) == (
        second,
        1,
        "uploadFailed",
    )
    # A late report about the first task changes nothing: the second is awaited.
    again = recorder.record_failure(recorded.job, UPLOAD_FAILED, via="webhook")
    assert (again.status, again.changed) == ("SUBMITTED", False)
    # The second task's own failure ends the job: it is never sent a third time.
    second_failed = TaskError("uploadFailed", "again", None, second, "upscale")
    final = recorder.record_failure(recorded.job, second_failed, via="reconcile")
    assert final.status == "FAILED" and len(resends.sent) == 1


def test_a_gone_result_url_sends_the_job_again(aws, store):
    job = submitted_job(store)
    resends = Resends()
    recorder, requests = recorder_with(aws, store, b"", status=404, resender=resends)
    error = TaskError(**{**UPLOAD_FAILED.__dict__, "image_url": IMAGE_URL})
    assert recorder.record_failure(job, error, via="reconcile").status == "SUBMITTED"
    assert len(requests) == 1 and resends.sent == [(JOB_ID, second_task_uuid(JOB_ID))]


def test_a_refused_resubmission_fails_the_job_with_runwares_error(aws, store):
    job = submitted_job(store)
    refusal = TaskError("invalidParameter", "inputs.image could not be fetched", "inputs.image")
    recorder, _ = recorder_with(aws, store, None, resender=Resends(refusal))
    recorded = recorder.record_failure(job, UPLOAD_FAILED, via="reconcile")
    assert recorded.status == "FAILED"
    assert stored_record(store, JOB_ID)["errorCode"] == "invalidParameter"


def test_without_a_resender_nothing_is_recorded_and_the_report_is_asked_again(aws, store):
    job = submitted_job(store)
    recorder, _ = recorder_with(aws, store, None)
    with pytest.raises(OutputNotReady):  # the webhook answers 503; the reconcile function sends it again
        recorder.record_failure(job, UPLOAD_FAILED, via="webhook")
    assert stored_record(store, JOB_ID)["status"] == "SUBMITTED"


def test_a_result_url_that_fails_for_now_fails_no_job(aws, store):
    job = submitted_job(store)
    resends = Resends()
    recorder, _ = recorder_with(aws, store, b"", status=503, resender=resends)
    error = TaskError(**{**UPLOAD_FAILED.__dict__, "image_url": IMAGE_URL})
    with pytest.raises(RecoveryPending):
        recorder.record_failure(job, error, via="webhook")
    assert stored_record(store, JOB_ID)["status"] == "SUBMITTED" and resends.sent == []


def test_a_timed_out_job_still_completes_from_a_late_success_url(aws, store):
    job = submitted_job(store)
    timed_out = store.move(job.job_id, TIME_OUT, {"error_code": "timedOut"})
    recorder, _ = recorder_with(aws, store, png(2309, 1732))
    result = TaskResult(JOB_ID, None, IMAGE_URL, None)
    assert recorder.record_success(timed_out, result, via="reconcile").status == "COMPLETED"


def test_a_success_without_a_result_url_is_waited_for_not_sent_again(aws, store):
    job = submitted_job(store)
    resends = Resends()
    recorder, _ = recorder_with(aws, store, None, resender=resends)
    with pytest.raises(OutputNotReady):
        recorder.record_success(
            job, TaskResult(JOB_ID, "2af4c8a9-5865-46b2-a4e3-b011d3dcd03e", None, None), via="reconcile"
        )
    assert resends.sent == [] and stored_record(store, JOB_ID)["status"] == "SUBMITTED"


def test_a_success_whose_result_url_is_gone_is_sent_again(aws, store):
    job = submitted_job(store)
    resends = Resends()
    recorder, _ = recorder_with(aws, store, b"", status=410, resender=resends)
    recorded = recorder.record_success(job, TaskResult(JOB_ID, None, IMAGE_URL, None), via="reconcile")
    assert recorded.status == "SUBMITTED" and resends.sent == [(JOB_ID, second_task_uuid(JOB_ID))]
    assert stored_record(store, JOB_ID)["resubmittedBecause"] == "outputMissing"


# --- Runware's answers as the contract holds them -----------------------------------------------------

CONTRACT_TASK = "3f1c6a2e-8b4d-4c1e-9a7f-2d5b6c8e9f01"  # the taskUUID of the contract's fixtures


def test_a_polled_upload_failure_with_its_result_url_completes_from_it(aws, store):
    fixture = by_name("getResponse/upload-failed-image-url")
    job = submitted_job(store, job_id=CONTRACT_TASK)
    recorder, requests = recorder_with(aws, store, png(2309, 1732))
    [outcome] = read_poll(fixture.http_status, fixture.body_bytes(), [CONTRACT_TASK]).outcomes.values()
    assert isinstance(outcome, Failed)

    assert recorder.record_failure(job, outcome.error, via="reconcile").status == "COMPLETED"
    assert [str(request.url) for request in requests] == [outcome.error.image_url]


def test_an_upload_failure_webhook_without_a_url_sends_the_job_again(aws, store):
    fixture = by_name("webhook/upload-failed")
    job = submitted_job(store, job_id=CONTRACT_TASK)
    resends = Resends()
    recorder, requests = recorder_with(aws, store, None, resender=resends)
    [report] = read_webhook(fixture.body, CONTRACT_TASK).reports
    assert isinstance(report, Failed)

    assert recorder.record_failure(job, report.error, via="reconcile").status == "SUBMITTED"
    assert resends.sent == [(CONTRACT_TASK, second_task_uuid(CONTRACT_TASK))] and requests == []
