"""The safety-net pass (the scheduled reconcile function): open jobs that no check can still reach.

Every submitted job has its own check (upscaler.recovery); a check ends the job by its maximum
age plus one check interval at most. A job still SUBMITTED well past that (its check message was
lost: dead-lettered, or never sent) is found here through the open-jobs index (a query per shard,
never a scan), polled with getResponse in batches, and settled by the same rules as a check
(upscaler.settlement). The deadline is checked before each job, so a run never overruns its timeout.

Each run then looks at the staging prefix for outputs of jobs that ended without them (timed out
or failed, their checks lost: upscaler.late_outputs), since no index leads to an ended job.

Each run also reports when the oldest open job opened (the OldestOpenJobAgeSeconds metric and its
alarm) and, while a deployment migrates from the status index of earlier versions, gives the open
jobs that index holds their open-jobs keys, and each submitted one a check.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from upscaler.clock import parse_iso, utc_now
from upscaler.job_record import OPEN_STATUSES, Job, JobStatus
from upscaler.jobs import JobStore
from upscaler.late_outputs import LateOutputs
from upscaler.open_jobs import OpenJob, OpenJobs
from upscaler.recovery_checks import MAX_DELAY_SECONDS, CheckQueue, CheckSchedule
from upscaler.results import Recorded
from upscaler.runware import RunwareClient, RunwareUnavailable
from upscaler.settlement import UNREADABLE_ITEM_ERRORS, Settler

POLL_BATCH_SIZE = 25
# A live check ends its job at most one check interval past the maximum age; a job still open two
# intervals past it has lost its check.
CHECK_GRACE_SECONDS = 2 * MAX_DELAY_SECONDS


@dataclass
class ReconcileReport:
    examined: int = 0
    recorded: list[Recorded] = field(default_factory=list)
    still_processing: int = 0
    output_not_ready: int = 0
    runware_unavailable: bool = False
    unreadable: int = 0
    out_of_time: bool = False
    oldest_open_age_seconds: float | None = None
    indexed_from_legacy: int = 0
    staged_examined: int = 0  # staged outputs old enough to be looked at (upscaler.late_outputs)
    staged_leftovers_removed: int = 0

    def counts(self) -> dict[str, int]:
        by_status = Counter(item.status for item in self.recorded if item.changed)
        return {
            "examined": self.examined,
            "stillProcessing": self.still_processing,
            "outputNotReady": self.output_not_ready,
            "unreadable": self.unreadable,
            "indexedFromLegacy": self.indexed_from_legacy,
            "stagedExamined": self.staged_examined,
            "stagedLeftoversRemoved": self.staged_leftovers_removed,
            **{f"now{status.title().replace('_', '')}": count for status, count in by_status.items()},
        }


class Reconciler:
    def __init__(
        self,
        jobs: JobStore,
        open_jobs: OpenJobs,
        settler: Settler,
        runware: RunwareClient,
        *,
        max_age_seconds: int,
        max_jobs: int,
        checks: CheckQueue | None = None,
        schedule: CheckSchedule | None = None,
        legacy_index: str = "",
        late_outputs: LateOutputs | None = None,
    ) -> None:
        self.jobs = jobs
        self.open_jobs = open_jobs
        self.settler = settler
        self.runware = runware
        self.max_age_seconds = max_age_seconds
        self.max_jobs = max_jobs
        self.checks = checks
        self.schedule = schedule
        # The status index of earlier versions, while it still exists (migration); empty otherwise.
        self.legacy_index = legacy_index
        # The staged outputs of ended jobs whose checks were lost (None: not looked for).
        self.late_outputs = late_outputs

    def run(self, *, deadline: float | None = None) -> ReconcileReport:
        report = ReconcileReport()
        oldest = self.open_jobs.oldest_open_since()
        if oldest is not None:
            report.oldest_open_age_seconds = max(0.0, (utc_now() - parse_iso(oldest)).total_seconds())
        if self.legacy_index:
            self._index_legacy_jobs(report, deadline)
        self._settle_open_jobs(report, deadline)
        if self.late_outputs is not None and not report.out_of_time and not _past(deadline):
            late = self.late_outputs.run(deadline=deadline)
            report.staged_examined = late.staged
            report.recorded.extend(late.recorded)
            report.staged_leftovers_removed = late.leftovers_removed
            report.out_of_time = late.out_of_time
        return report

    def _settle_open_jobs(self, report: ReconcileReport, deadline: float | None) -> None:
        cutoff = utc_now() - timedelta(seconds=self.max_age_seconds + CHECK_GRACE_SECONDS)
        candidates = self.open_jobs.oldest(opened_before=cutoff, status=JobStatus.SUBMITTED)
        for batch in _batches(itertools.islice(candidates, self.max_jobs), POLL_BATCH_SIZE):
            if _past(deadline):
                report.out_of_time = True
                break
            found = self.jobs.get_many([job.job_id for job in batch])
            jobs = [job for job in found.values() if job.status is JobStatus.SUBMITTED]
            report.examined += len(jobs)
            if not jobs:
                continue
            try:
                # A job sent again awaits its second task (job.task_uuid), not the first.
                answer = self.runware.get_responses([job.task_uuid for job in jobs], deadline=deadline)
            except RunwareUnavailable:
                report.runware_unavailable = True
                break
            if answer.account is not None:
                # Runware refused the request itself: that says nothing about the tasks.
                report.runware_unavailable = True
                break
            report.unreadable += answer.malformed
            for job in jobs:
                if _past(deadline):  # per job: one slow settle cannot carry the run past its timeout
                    report.out_of_time = True
                    return
                try:
                    settled = self.settler.settle(job, answer.outcome(job.task_uuid))
                except UNREADABLE_ITEM_ERRORS as problem:
                    report.unreadable += 1
                    self.settler.count_unreadable(job, problem)
                    continue
                if settled.recorded is not None:
                    report.recorded.append(settled.recorded)
                report.output_not_ready += int(settled.output_not_ready)
                report.still_processing += int(settled.still_open)

    def _index_legacy_jobs(self, report: ReconcileReport, deadline: float | None) -> None:
        """Open jobs written before the open-jobs index existed: give them its keys, and each
        submitted one a check (the old sweep that looked at them is gone)."""
        due: list[Job] = []
        for status in sorted(OPEN_STATUSES):
            for job in self.jobs.in_legacy_index(self.legacy_index, status):
                if _past(deadline):
                    break
                if job.open_shard is None and self.jobs.index_open_job(job):
                    report.indexed_from_legacy += 1
                    if job.status is JobStatus.SUBMITTED:
                        due.append(job)
        if due and self.checks is not None and self.schedule is not None:
            schedule = self.schedule
            self.checks.send_all([schedule.first(job.job_id, parse_iso(str(job.created_at))) for job in due])


def _batches(items: Iterator[OpenJob], size: int) -> Iterator[list[OpenJob]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline
