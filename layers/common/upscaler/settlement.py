"""Settling one submitted job from what getResponse said of it: the rules that the recovery checks
and the safety-net pass share (one place, so the two can never disagree).

- Succeeded: record the success (the output's bytes must be in the bucket and check out).
- Failed, and Runware no longer knows the task: its output may still be in the bucket (paid);
  a verified output completes the job, otherwise it waits like a task still processing.
- Failed with an error: record the failure (a verified output overrides it).
- Anything else (processing, or not mentioned): Runware will say later.
A job still open past the maximum age is TIMED_OUT, unless its output is there (then COMPLETED).
How long getResponse remembers a finished task is not documented, hence the bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from upscaler.clock import parse_iso, utc_now
from upscaler.job_record import Job
from upscaler.jobs import JobStore
from upscaler.results import OutputNotReady, Recorded, ResultRecorder
from upscaler.runware_answers import Failed, PollOutcome, Succeeded

# What a hostile or malformed getResponse item can raise while being read; anything else is a real fault.
UNREADABLE_ITEM_ERRORS = (ValueError, TypeError, KeyError, AttributeError, ArithmeticError, RecursionError)


@dataclass(frozen=True)
class Settled:
    """What became of one job: the write made (or the repeat found), or None when it stays open."""

    recorded: Recorded | None
    output_not_ready: bool = False  # Runware said it succeeded, but its output is not in the bucket yet

    @property
    def still_open(self) -> bool:
        return self.recorded is None or self.recorded.job.is_open


class Settler:
    def __init__(self, jobs: JobStore, recorder: ResultRecorder, *, max_age_seconds: int) -> None:
        self.jobs = jobs
        self.recorder = recorder
        self.max_age_seconds = max_age_seconds

    def settle(self, job: Job, outcome: PollOutcome | None, now: datetime | None = None) -> Settled:
        """Record what `outcome` says of `job`; time it out when it stays open past the maximum age."""
        output_not_ready = False
        try:
            match outcome:
                case Failed() if outcome.not_found:
                    # Runware no longer knows the task: the bucket may still hold its (paid) output.
                    found = self.recorder.record_output_if_present(job, via="reconcile")
                    if found is not None:
                        return Settled(found)
                case Failed(error=error):
                    return Settled(self.recorder.record_failure(job, error, via="reconcile"))
                case Succeeded(result=result):
                    return Settled(self.recorder.record_success(job, result, via="reconcile"))
                case _:
                    pass  # not done yet, or not mentioned: Runware will say later
        except OutputNotReady:
            output_not_ready = True
        if self.too_old(job, now):
            # record_timeout completes the job instead when its output is in the bucket.
            return Settled(self.recorder.record_timeout(job, self.max_age_seconds), output_not_ready)
        return Settled(None, output_not_ready)

    def late_output(self, job: Job) -> Recorded | None:
        """A timed-out (or failed) job whose output arrived after all: complete it from the output alone."""
        return self.recorder.record_output_if_present(job, via="reconcile")

    def count_unreadable(self, job: Job, problem: Exception) -> None:
        self.jobs.count_malformed_reports(job.job_id, 1, f"getResponse item: {type(problem).__name__}: {problem}")

    def too_old(self, job: Job, now: datetime | None = None) -> bool:
        return ((now or utc_now()) - submitted_at(job)).total_seconds() >= self.max_age_seconds


def submitted_at(job: Job) -> datetime:
    """When Runware was given the job (its creation, for a record that lacks the submission time)."""
    return parse_iso(str(job.submitted_at or job.created_at))
