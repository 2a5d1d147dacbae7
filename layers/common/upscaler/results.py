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

from upscaler.clock import iso, seconds_between, utc_now
from upscaler.job_record import Job, JobStatus
from upscaler.jobs import COMPLETE, FAIL, TIME_OUT, JobStore, Transition, TransitionRefused, completion_for
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

_ERROR_FIELDS = ("error_code", "error_message", "error_parameter", "waiting_reason")


@dataclass(frozen=True)
class Recorded:
    job_id: str
    status: str
    changed: bool  # False when the job was already final and this report was a repeat
    job: Job


class ResultRecorder:
    def __init__(self, objects: ObjectStore, jobs: JobStore, staging_prefix: str = DEFAULT_STAGING_PREFIX) -> None:
        self.outputs = OutputPublisher(objects, staging_prefix)
        self.jobs = jobs

    def record_success(self, job: Job, result: TaskResult, *, via: str) -> Recorded:
        if completion_for(job) is None:
            return _unchanged(job)
        try:
            output = self.outputs.find(job)
        except OutputInvalid as invalid:
            if not job.is_open:
                return _unchanged(job)
            return self._finish_failed(job, TaskError(invalid.code, invalid.message), via=via)
        if output is None:
            raise OutputNotReady(f"the output of job {job.job_id} is not in s3://{job.output_bucket} yet")
        return self._complete(job, output, result, via=via)

    def record_output_if_present(self, job: Job, *, via: str) -> Recorded | None:
        """Complete a job from its output alone, when Runware cannot say (lost webhook, forgotten task)."""
        if completion_for(job) is None:
            return None
        output = self._verified_output(job)
        return None if output is None else self._complete(job, output, None, via=via)

    def record_failure(self, job: Job, error: TaskError, *, via: str) -> Recorded:
        if not job.is_open:
            return _unchanged(job)
        output = self._verified_output(job)
        if output is not None:
            return self._complete(job, output, None, via=via, overridden=error)
        return self._finish_failed(job, error, via=via)

    def record_timeout(self, job: Job, max_age_seconds: int) -> Recorded:
        output = self._verified_output(job)
        if output is not None:
            return self._complete(job, output, None, via="reconcile")
        now = utc_now()
        changes = {
            "error_code": "timedOut",
            "error_message": f"no result from Runware within {max_age_seconds} seconds",
            "completed_at": iso(now),
            **_durations(job, now),
        }
        return self._move(job, TIME_OUT, changes, now)

    def _verified_output(self, job: Job) -> VerifiedOutput | None:
        try:
            return self.outputs.find(job)
        except OutputInvalid:
            return None

    def _complete(
        self,
        job: Job,
        output: VerifiedOutput,
        result: TaskResult | None,
        *,
        via: str,
        overridden: TaskError | None = None,
    ) -> Recorded:
        published = self.outputs.publish(job, output)
        if overridden is None and job.status in (JobStatus.FAILED, JobStatus.REJECTED):
            overridden = TaskError(job.error_code or "unknownError", job.error_message or "")
        now = utc_now()
        changes = {
            "image_uuid": result.image_uuid if result else None,
            "image_url": result.image_url if result else None,
            "cost": result.cost if result else None,
            "output_key": published.key,
            "output_size": published.size,
            "output_content_type": published.content_type,
            "output_etag": published.etag,
            "output_format": published.output_format,
            "output_width": published.width,
            "output_height": published.height,
            "completed_at": iso(now),
            "result_via": via,
            # Found from the output alone, or after the job had timed out: Runware never said.
            "late_result": True if result is None or job.status is JobStatus.TIMED_OUT else None,
            "overridden_error_code": overridden.code if overridden else None,
            "overridden_error_message": overridden.message if overridden else None,
            **_durations(job, now),
        }
        recorded = self._move(job, completion_for(job) or COMPLETE, changes, now, remove=_ERROR_FIELDS)
        if recorded.status == JobStatus.COMPLETED and not output.published:
            self.outputs.discard_staged(job)
        return recorded

    def _finish_failed(self, job: Job, error: TaskError, *, via: str) -> Recorded:
        now = utc_now()
        changes = {
            "error_code": error.code,
            "error_message": error.message,
            "error_parameter": error.parameter,
            "completed_at": iso(now),
            "result_via": via,
            **_durations(job, now),
        }
        return self._move(job, FAIL, changes, now)

    def _move(
        self,
        job: Job,
        transition: Transition,
        changes: dict[str, Any],
        now: datetime,
        remove: tuple[str, ...] = (),
    ) -> Recorded:
        try:
            updated = self.jobs.move(
                job.job_id, transition, changes, remove=remove, increment="result_reports", now=now
            )
        except TransitionRefused as refused:
            return _unchanged(refused.current or job)
        return Recorded(job.job_id, transition.after.value, True, updated)


def _unchanged(job: Job) -> Recorded:
    """A report that changed nothing: the job as it is."""
    return Recorded(job.job_id, str(job.status), False, job)


def _durations(job: Job, now: datetime) -> dict[str, Any]:
    """Seconds from upload to submission, in the provider, and in all (upload to result)."""
    finished = iso(now)
    submitted = job.submitted_at or job.created_at
    uploaded = job.event_time or job.created_at
    return {
        "upload_to_submit_seconds": _decimal(seconds_between(uploaded, submitted)),
        "provider_seconds": _decimal(seconds_between(submitted, finished)),
        "total_seconds": _decimal(seconds_between(uploaded, finished)),
    }


def _decimal(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))
