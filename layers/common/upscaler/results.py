"""Recording what Runware reports, for the webhook and the reconciler alike (one code path).

A success is recorded only once the output's bytes are in the bucket and check out; they are then
published from the staging key to the final key (`outputs.py`). Size, type and dimensions are read
from the bytes, not taken on trust. A verified output always wins: it completes a job that had
timed out or had been reported failed (the webhook token does not cover the body, so a failure
report cannot be checked), and a failure report or a timeout is only recorded when no such output
exists. Otherwise terminal states never change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from upscaler.jobs import JobStatus, JobStore, TransitionRefused, iso, seconds_between, utc_now
from upscaler.outputs import (
    DEFAULT_STAGING_PREFIX,
    OutputInvalid,
    OutputNotReady,
    OutputPublisher,
    VerifiedOutput,
)
from upscaler.runware_answers import TaskError, TaskResult
from upscaler.storage import ObjectStore

__all__ = ["OutputNotReady", "Recorded", "ResultRecorder"]

OPEN_STATUSES = frozenset({JobStatus.CLAIMED, JobStatus.SUBMITTED})
MAY_COMPLETE = OPEN_STATUSES | {JobStatus.TIMED_OUT, JobStatus.FAILED}


def may_complete(job: dict[str, Any]) -> bool:
    """Whether a verified output may still complete this job. A job rejected after its claim (its
    source deleted or replaced before a retry) may already have been accepted, and billed, by Runware."""
    status = JobStatus(job["status"])
    return status in MAY_COMPLETE or (status is JobStatus.REJECTED and bool(job.get("rejectedAfterClaim")))


_ERROR_FIELDS = ("errorCode", "errorMessage", "errorParameter", "waitingReason")


@dataclass(frozen=True)
class Recorded:
    job_id: str
    status: str
    changed: bool  # False when the job was already final and this report was a repeat
    job: dict[str, Any]


class ResultRecorder:
    def __init__(self, objects: ObjectStore, jobs: JobStore, staging_prefix: str = DEFAULT_STAGING_PREFIX) -> None:
        self.outputs = OutputPublisher(objects, staging_prefix)
        self.jobs = jobs

    def record_success(self, job: dict[str, Any], result: TaskResult, *, via: str) -> Recorded:
        if not may_complete(job):
            return Recorded(job["jobId"], job["status"], False, job)
        try:
            output = self.outputs.find(job)
        except OutputInvalid as invalid:
            if JobStatus(job["status"]) not in OPEN_STATUSES:
                return Recorded(job["jobId"], job["status"], False, job)
            return self._finish_failed(job, TaskError(invalid.code, invalid.message), via=via)
        if output is None:
            raise OutputNotReady(f"the output of job {job['jobId']} is not in s3://{job['outputBucket']} yet")
        return self._complete(job, output, result, via=via)

    def record_output_if_present(self, job: dict[str, Any], *, via: str) -> Recorded | None:
        """Complete a job from its output alone, when Runware cannot say (lost webhook, forgotten task)."""
        if not may_complete(job):
            return None
        output = self._verified_output(job)
        return None if output is None else self._complete(job, output, None, via=via)

    def record_failure(self, job: dict[str, Any], error: TaskError, *, via: str) -> Recorded:
        if JobStatus(job["status"]) not in OPEN_STATUSES:
            return Recorded(job["jobId"], job["status"], False, job)
        output = self._verified_output(job)
        if output is not None:
            return self._complete(job, output, None, via=via, overridden=error)
        return self._finish_failed(job, error, via=via)

    def record_timeout(self, job: dict[str, Any], max_age_seconds: int) -> Recorded:
        output = self._verified_output(job)
        if output is not None:
            return self._complete(job, output, None, via="reconcile")
        now = utc_now()
        changes = {
            "errorCode": "timedOut",
            "errorMessage": f"no result from Runware within {max_age_seconds} seconds",
            "completedAt": iso(now),
            **_durations(job, now),
        }
        return self._move(job, {JobStatus.SUBMITTED}, JobStatus.TIMED_OUT, changes, now)

    def _verified_output(self, job: dict[str, Any]) -> VerifiedOutput | None:
        try:
            return self.outputs.find(job)
        except OutputInvalid:
            return None

    def _complete(
        self,
        job: dict[str, Any],
        output: VerifiedOutput,
        result: TaskResult | None,
        *,
        via: str,
        overridden: TaskError | None = None,
    ) -> Recorded:
        published = self.outputs.publish(job, output)
        status = JobStatus(job["status"])
        if overridden is None and status in (JobStatus.FAILED, JobStatus.REJECTED):
            overridden = TaskError(str(job.get("errorCode", "unknownError")), str(job.get("errorMessage", "")))
        now = utc_now()
        changes = {
            "imageUUID": result.image_uuid if result else None,
            "imageURL": result.image_url if result else None,
            "cost": result.cost if result else None,
            "outputKey": published.key,
            "outputSize": published.size,
            "outputContentType": published.content_type,
            "outputETag": published.etag,
            "outputFormat": published.output_format,
            "outputWidth": published.width,
            "outputHeight": published.height,
            "completedAt": iso(now),
            "resultVia": via,
            # Found from the output alone, or after the job had timed out: Runware never said.
            "lateResult": True if result is None or status is JobStatus.TIMED_OUT else None,
            "overriddenErrorCode": overridden.code if overridden else None,
            "overriddenErrorMessage": overridden.message if overridden else None,
            **_durations(job, now),
        }
        allowed = MAY_COMPLETE | {JobStatus.REJECTED} if status is JobStatus.REJECTED else MAY_COMPLETE
        recorded = self._move(job, allowed, JobStatus.COMPLETED, changes, now, remove=_ERROR_FIELDS)
        if recorded.status == JobStatus.COMPLETED and not output.published:
            self.outputs.discard_staged(job)
        return recorded

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
