"""Recording what Runware reports, for the webhook and the reconciler alike (one code path).

A success is recorded only once the output object is really in the bucket; its size, type and
dimensions are read from S3, not taken on trust. Terminal states never regress, except that a
late success may still complete a job that had timed out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from upscaler.image_header import UnreadableImage
from upscaler.jobs import JobStatus, JobStore, TransitionRefused, iso, seconds_between, utc_now
from upscaler.models import OUTPUT_CONTENT_TYPES, TaskError, TaskResult
from upscaler.storage import ObjectMissing, ObjectStore

OUTPUT_FORMAT_OF = {"JPEG": "JPG", "PNG": "PNG", "WEBP": "WEBP"}
OPEN_STATUSES = frozenset({JobStatus.CLAIMED, JobStatus.SUBMITTED})
MAY_COMPLETE = OPEN_STATUSES | {JobStatus.TIMED_OUT}
_ERROR_FIELDS = ("errorCode", "errorMessage", "errorParameter")


class OutputNotReady(Exception):
    """Runware reported success but the output object is not in the bucket yet: ask again later."""


@dataclass(frozen=True)
class Recorded:
    job_id: str
    status: str
    changed: bool  # False when the job was already final and this report was a repeat
    job: dict[str, Any]


class ResultRecorder:
    def __init__(self, objects: ObjectStore, jobs: JobStore) -> None:
        self.objects = objects
        self.jobs = jobs

    def record_success(self, job: dict[str, Any], result: TaskResult, *, via: str) -> Recorded:
        if JobStatus(job["status"]) not in MAY_COMPLETE:
            return Recorded(job["jobId"], job["status"], False, job)
        try:
            output = self.objects.head(job["outputBucket"], job["outputKey"])
        except ObjectMissing:
            raise OutputNotReady(f"s3://{job['outputBucket']}/{job['outputKey']} is not there yet") from None
        try:
            header = self.objects.read_header(output)
        except UnreadableImage as error:
            return self._finish_failed(
                job, TaskError("outputUnreadable", f"the uploaded output is not a readable image: {error}"), via=via
            )
        # The bytes decide the type and format recorded, whatever was asked for.
        expected_type = header.content_type if header.supported else OUTPUT_CONTENT_TYPES[str(job["outputFormat"])]
        etag = output.etag
        if output.content_type != expected_type:
            # Runware's PUT carries no reliable Content-Type (it is not part of the signed URL).
            etag = self.objects.set_content_type(output, expected_type)
        now = utc_now()
        changes = {
            "imageUUID": result.image_uuid,
            "imageURL": result.image_url,
            "cost": result.cost,
            "outputSize": output.size,
            "outputContentType": expected_type,
            "outputETag": etag,
            "outputFormat": OUTPUT_FORMAT_OF.get(header.format, job.get("outputFormat")),
            "outputWidth": header.width,
            "outputHeight": header.height,
            "completedAt": iso(now),
            "resultVia": via,
            "lateResult": True if job["status"] == JobStatus.TIMED_OUT else None,
            **_durations(job, now),
        }
        # A late success replaces the timeout: the record keeps lateResult, not the timeout's error.
        return self._move(job, MAY_COMPLETE, JobStatus.COMPLETED, changes, now, remove=_ERROR_FIELDS)

    def record_failure(self, job: dict[str, Any], error: TaskError, *, via: str) -> Recorded:
        if JobStatus(job["status"]) not in OPEN_STATUSES:
            return Recorded(job["jobId"], job["status"], False, job)
        return self._finish_failed(job, error, via=via)

    def record_timeout(self, job: dict[str, Any], max_age_seconds: int) -> Recorded:
        now = utc_now()
        changes = {
            "errorCode": "timedOut",
            "errorMessage": f"no result from Runware within {max_age_seconds} seconds",
            "completedAt": iso(now),
            **_durations(job, now),
        }
        return self._move(job, {JobStatus.SUBMITTED}, JobStatus.TIMED_OUT, changes, now)

    def _finish_failed(self, job: dict[str, Any], error: TaskError, *, via: str) -> Recorded:
        now = utc_now()
        changes = {
            "errorCode": error.code,
            "errorMessage": error.message,
            "errorParameter": error.parameter,
            "completedAt": iso(now),
            "resultVia": via,
            **_durations(job, now),
        }
        return self._move(job, OPEN_STATUSES, JobStatus.FAILED, changes, now)

    def _move(
        self,
        job: dict[str, Any],
        allowed: frozenset[JobStatus] | set[JobStatus],
        to: JobStatus,
        changes: dict[str, Any],
        now: datetime,
        remove: tuple[str, ...] = (),
    ) -> Recorded:
        try:
            updated = self.jobs.transition(
                job["jobId"], allowed, to, changes, remove=remove, increment="resultReports", now=now
            )
        except TransitionRefused as refused:
            current = refused.current or job
            return Recorded(job["jobId"], str(current.get("status")), False, current)
        return Recorded(job["jobId"], to.value, True, updated)


def _durations(job: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Seconds from upload to submission, in the provider, and in all (upload to result)."""
    finished = iso(now)
    submitted = job.get("submittedAt") or job.get("createdAt")
    uploaded = job.get("eventTime") or job.get("createdAt")
    return {
        "uploadToSubmitSeconds": _decimal(seconds_between(uploaded, submitted)),
        "providerSeconds": _decimal(seconds_between(submitted, finished)),
        "totalSeconds": _decimal(seconds_between(uploaded, finished)),
    }


def _decimal(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))
