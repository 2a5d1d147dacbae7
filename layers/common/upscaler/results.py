"""Recording what Runware reports, for the webhook and the reconciler alike (one code path).

A success is recorded only once the output's bytes are in the bucket and check out; they are then
published from the staging key to the final key (`outputs.py`). Size, type and dimensions are read
from the bytes, not taken on trust. A verified output always wins: it completes a job that had
timed out or had been reported failed (the webhook token does not cover the body, so a failure
report cannot be checked), and a failure report or a timeout is only recorded when no such output
exists. Otherwise terminal states never change.

A paid result that did not reach the bucket (Runware's uploadFailed, or a success with nothing
staged) is recovered by `result_recovery`: copied from Runware's result URL into the staging key
and then verified and published like any staged output, or else sent again once. A job is not
failed while Runware may still hold its result; a report about a task the job no longer awaits (the
first one, after the job was sent again) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from upscaler.clock import iso, seconds_between, utc_now
from upscaler.job_record import Job, JobStatus
from upscaler.jobs import (
    COMPLETE,
    FAIL,
    RESUBMIT,
    TIME_OUT,
    JobStore,
    Transition,
    TransitionRefused,
    completion_for,
)
from upscaler.outputs import (
    DEFAULT_STAGING_PREFIX,
    OutputInvalid,
    OutputNotReady,
    OutputPublisher,
    VerifiedOutput,
)
from upscaler.result_recovery import ResultGone, ResultRecovery, Step, next_step, second_task_uuid
from upscaler.runware_answers import TaskError, TaskResult
from upscaler.storage import ObjectStore

__all__ = ["OutputNotReady", "Recorded", "ResultRecorder"]

_ERROR_FIELDS = ("error_code", "error_message", "error_parameter", "waiting_reason")
# Spent once a verified output is in the bucket: Runware's result URL (temporary, kept for its task's
# ttl) and the staging key (the staged copy is removed on completion; its key follows from the job
# id). Without them a completed item stays under 1 KB, one write unit instead of two, for source
# keys of up to about 40 characters (docs/capacity.md).
_SPENT_AT_COMPLETION = ("image_url", "staging_key")


@dataclass(frozen=True)
class Recorded:
    job_id: str
    status: str
    changed: bool  # False when the job was already final and this report was a repeat
    job: Job


class ResultRecorder:
    def __init__(
        self,
        objects: ObjectStore,
        jobs: JobStore,
        staging_prefix: str = DEFAULT_STAGING_PREFIX,
        recovery: ResultRecovery | None = None,
    ) -> None:
        self.outputs = OutputPublisher(objects, staging_prefix)
        self.jobs = jobs
        self.recovery = recovery  # None: a result that is not staged is waited for, never fetched

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
            if self.recovery is None:
                raise OutputNotReady(f"the output of job {job.job_id} is not in s3://{job.output_bucket} yet")
            return self._recover(job, result.image_url, result, None, via=via)
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
        if error.task_uuid and error.task_uuid != job.task_uuid:
            return _unchanged(job)  # about a task the job no longer awaits (it was sent again)
        output = self._verified_output(job)
        if output is not None:
            return self._complete(job, output, None, via=via, overridden=error)
        if error.upload_failed and self.recovery is not None:
            return self._recover(job, error.image_url or job.image_url, None, error, via=via)
        return self._finish_failed(job, error, via=via)

    def _recover(
        self, job: Job, image_url: str | None, result: TaskResult | None, error: TaskError | None, *, via: str
    ) -> Recorded:
        """A paid result that is not in the bucket: fetched from Runware, or the job sent again once.

        Raises OutputNotReady (RecoveryPending) when nothing can be settled now: try again later."""
        assert self.recovery is not None
        step = next_step(job, image_url)
        gone = False
        if step is Step.FETCH and image_url:
            try:
                self.recovery.copy_result(job, image_url)
            except ResultGone:
                step, gone = next_step(job, None), True
            except OutputInvalid as invalid:
                return self._finish_failed(job, TaskError(invalid.code, invalid.message), via=via)
            else:
                return self._complete_recovered(job, result, error, via=via)
        # A success with no result URL at all may still have its upload under way: it is waited for.
        lost = error is not None or gone
        if step is Step.RESUBMIT and lost and job.is_open and self.recovery.resender is not None:
            return self._resubmit(job, error, via=via)
        if step is Step.GIVE_UP and error is not None:
            return self._finish_failed(job, error, via=via)
        # A success whose output is not staged, or a resubmission that falls to the reconcile
        # function: nothing is recorded now.
        raise OutputNotReady(f"the output of job {job.job_id} is not in s3://{job.output_bucket} yet")

    def _complete_recovered(
        self, job: Job, result: TaskResult | None, error: TaskError | None, *, via: str
    ) -> Recorded:
        try:
            output = self.outputs.find(job)
        except OutputInvalid as invalid:
            return self._finish_failed(job, TaskError(invalid.code, invalid.message), via=via)
        if output is None:  # removed between the copy and the look: another report settled the job
            return _unchanged(job)
        return self._complete(job, output, result, via=via, overridden=error, recovered_from="imageURL")

    def _resubmit(self, job: Job, error: TaskError | None, *, via: str) -> Recorded:
        assert self.recovery is not None and self.recovery.resender is not None
        task_uuid = second_task_uuid(job.job_id)
        refused = self.recovery.resender.send_again(job, task_uuid)
        if refused is not None:
            return self._finish_failed(job, refused, via=via)
        now = utc_now()
        changes = {
            "runware_task_uuid": task_uuid,
            "resubmitted_at": iso(now),
            "resubmitted_because": error.code if error else "outputMissing",
        }
        try:
            updated = self.jobs.move(
                job.job_id, RESUBMIT, changes, remove=_ERROR_FIELDS, increment="resubmissions", now=now
            )
        except TransitionRefused as refused_move:
            return _unchanged(refused_move.current or job)
        return Recorded(job.job_id, RESUBMIT.after.value, True, updated)

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
        recovered_from: str | None = None,
    ) -> Recorded:
        published = self.outputs.publish(job, output)
        if overridden is None and job.status in (JobStatus.FAILED, JobStatus.REJECTED):
            overridden = TaskError(job.error_code or "unknownError", job.error_message or "")
        now = utc_now()
        changes = {
            "image_uuid": result.image_uuid if result else None,
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
            "recovered_from": recovered_from,
            # Found from the output alone, or after the job had timed out: Runware never said.
            "late_result": True if result is None or job.status is JobStatus.TIMED_OUT else None,
            "overridden_error_code": overridden.code if overridden else None,
            "overridden_error_message": overridden.message if overridden else None,
            **_durations(job, now),
        }
        recorded = self._move(
            job, completion_for(job) or COMPLETE, changes, now, remove=(*_ERROR_FIELDS, *_SPENT_AT_COMPLETION)
        )
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
