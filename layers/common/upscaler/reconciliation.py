"""Reconciliation: finish jobs whose webhook never came, by asking Runware and the bucket.

Stale SUBMITTED jobs are found through the status index (a query, never a scan), polled with
getResponse in batches, and recorded through the same ResultRecorder as the webhook. How long
getResponse remembers a finished task is not documented, so a task it cannot find is looked for in
the bucket: a verified output completes the job. A job still unresolved past the maximum age
becomes TIMED_OUT, unless its output is there. Each run does a bounded amount of work, and an item
that cannot be read is counted on its own job without holding back the others.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from upscaler.clock import parse_iso, utc_now
from upscaler.job_record import Job, JobStatus
from upscaler.jobs import JobStore
from upscaler.results import OutputNotReady, Recorded, ResultRecorder
from upscaler.runware import RunwareClient, RunwareUnavailable
from upscaler.runware_answers import Failed, PollOutcome, Succeeded

POLL_BATCH_SIZE = 25
# What a hostile or malformed item can raise while being read; anything else is a real fault.
UNREADABLE_ITEM_ERRORS = (ValueError, TypeError, KeyError, AttributeError, ArithmeticError, RecursionError)


@dataclass
class ReconcileReport:
    examined: int = 0
    recorded: list[Recorded] = field(default_factory=list)
    still_processing: int = 0
    output_not_ready: int = 0
    runware_unavailable: bool = False
    unreadable: int = 0
    timed_out_examined: int = 0

    def counts(self) -> dict[str, int]:
        by_status = Counter(item.status for item in self.recorded if item.changed)
        return {
            "examined": self.examined,
            "stillProcessing": self.still_processing,
            "outputNotReady": self.output_not_ready,
            "unreadable": self.unreadable,
            "timedOutExamined": self.timed_out_examined,
            **{f"now{status.title().replace('_', '')}": count for status, count in by_status.items()},
        }


class Reconciler:
    def __init__(
        self,
        jobs: JobStore,
        recorder: ResultRecorder,
        runware: RunwareClient,
        *,
        reconcile_after_seconds: int,
        max_age_seconds: int,
        max_jobs: int,
        late_output_window_seconds: int = 0,
    ) -> None:
        self.jobs = jobs
        # How long after a job's creation Runware can still upload its result (the presigned PUT's
        # lifetime): timed-out jobs that young are looked for in the bucket on every run.
        self.late_output_window_seconds = late_output_window_seconds
        self.recorder = recorder
        self.runware = runware
        self.reconcile_after_seconds = reconcile_after_seconds
        self.max_age_seconds = max_age_seconds
        self.max_jobs = max_jobs

    def run(self, *, deadline: float | None = None) -> ReconcileReport:
        report = ReconcileReport()
        cutoff = utc_now() - timedelta(seconds=self.reconcile_after_seconds)
        stale = list(self.jobs.find_by_status(JobStatus.SUBMITTED, created_before=cutoff, limit=self.max_jobs))
        report.examined = len(stale)
        for start in range(0, len(stale), POLL_BATCH_SIZE):
            if deadline is not None and time.monotonic() >= deadline:
                break
            batch = stale[start : start + POLL_BATCH_SIZE]
            try:
                # A job sent again awaits its second task (job.task_uuid), not the first.
                response = self.runware.get_responses([job.task_uuid for job in batch], deadline=deadline)
            except RunwareUnavailable:
                report.runware_unavailable = True
                break
            if response.account is not None:
                # Runware refused the request itself (key, balance, permission): that says nothing
                # about the tasks, and recording it as each job's failure would end jobs that may complete.
                report.runware_unavailable = True
                break
            report.unreadable += response.malformed
            for job in batch:
                try:
                    self._settle(job, response.outcome(job.task_uuid), report)
                except UNREADABLE_ITEM_ERRORS as problem:
                    self._count_unreadable(job, problem, report)
        self._complete_late_outputs(report, deadline)
        return report

    def _complete_late_outputs(self, report: ReconcileReport, deadline: float | None) -> None:
        """A task can finish after its job timed out, and its webhook can be lost: its output, still
        uploadable while the presigned PUT lives, completes the job (no Runware call needed)."""
        window = self.max_age_seconds + self.late_output_window_seconds
        if self.late_output_window_seconds <= 0:
            return
        since = utc_now() - timedelta(seconds=window)
        just_timed_out = {item.job_id for item in report.recorded}  # looked for a moment ago
        for job in self.jobs.find_by_status(JobStatus.TIMED_OUT, created_after=since, limit=self.max_jobs):
            if deadline is not None and time.monotonic() >= deadline:
                return
            if job.job_id in just_timed_out:
                continue
            report.timed_out_examined += 1
            found = self.recorder.record_output_if_present(job, via="reconcile")
            if found is not None:
                report.recorded.append(found)

    def _settle(self, job: Job, outcome: PollOutcome | None, report: ReconcileReport) -> None:
        try:
            match outcome:
                case Failed() if outcome.not_found:
                    # Runware no longer knows the task: the bucket may still hold its (paid) output.
                    found = self.recorder.record_output_if_present(job, via="reconcile")
                    if found is not None:
                        report.recorded.append(found)
                        return
                case Failed(error=error):
                    report.recorded.append(self.recorder.record_failure(job, error, via="reconcile"))
                    return
                case Succeeded(result=result):
                    report.recorded.append(self.recorder.record_success(job, result, via="reconcile"))
                    return
                case _:
                    pass  # not done yet, or not mentioned: Runware will say later
        except OutputNotReady:
            report.output_not_ready += 1
        if self._too_old(job):
            # record_timeout completes the job instead when its output is in the bucket.
            report.recorded.append(self.recorder.record_timeout(job, self.max_age_seconds))
        else:
            report.still_processing += 1

    def _count_unreadable(self, job: Job, problem: Exception, report: ReconcileReport) -> None:
        report.unreadable += 1
        self.jobs.count_malformed_reports(job.job_id, 1, f"getResponse item: {type(problem).__name__}: {problem}")

    def _too_old(self, job: Job) -> bool:
        started = parse_iso(str(job.submitted_at or job.created_at))
        return (utc_now() - started).total_seconds() >= self.max_age_seconds
