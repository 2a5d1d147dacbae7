"""Reconciliation: finish jobs whose webhook never came, by asking Runware directly.

Stale SUBMITTED jobs are found through the status index (a query, never a scan), polled with
getResponse in batches, and recorded through the same ResultRecorder as the webhook. A job still
unresolved past the maximum age becomes TIMED_OUT. Each run does a bounded amount of work.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from upscaler.jobs import JobStatus, JobStore, parse_iso, utc_now
from upscaler.models import TaskError
from upscaler.results import OutputNotReady, Recorded, ResultRecorder
from upscaler.runware import RunwareClient, RunwareUnavailable
from upscaler.webhook_payloads import MalformedPayload, report_from_item

POLL_BATCH_SIZE = 25
# Runware refusing the request itself (key, balance, permission) says nothing about the tasks.
REQUEST_REFUSED_STATUSES = frozenset({401, 402, 403})


@dataclass
class ReconcileReport:
    examined: int = 0
    recorded: list[Recorded] = field(default_factory=list)
    still_processing: int = 0
    output_not_ready: int = 0
    runware_unavailable: bool = False

    def counts(self) -> dict[str, int]:
        by_status = Counter(item.status for item in self.recorded if item.changed)
        return {
            "examined": self.examined,
            "stillProcessing": self.still_processing,
            "outputNotReady": self.output_not_ready,
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
    ) -> None:
        self.jobs = jobs
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
                response = self.runware.get_responses([job["jobId"] for job in batch], deadline=deadline)
            except RunwareUnavailable:
                report.runware_unavailable = True
                break
            if response.status_code in REQUEST_REFUSED_STATUSES:
                # Recording that error as each job's failure would end jobs that may still complete.
                report.runware_unavailable = True
                break
            for job in batch:
                self._settle(job, response.items.get(job["jobId"]), response.error_for(job["jobId"]), report)
        return report

    def _settle(
        self, job: dict[str, Any], item: dict[str, Any] | None, error: TaskError | None, report: ReconcileReport
    ) -> None:
        try:
            if error is not None and not self._runware_lost_track(error):
                report.recorded.append(self.recorder.record_failure(job, error, via="reconcile"))
                return
            if item is not None and str(item.get("status", "")).lower() not in ("processing", "pending"):
                try:
                    outcome = report_from_item(item, job["jobId"])
                except MalformedPayload:
                    outcome = None
                if isinstance(outcome, TaskError):
                    report.recorded.append(self.recorder.record_failure(job, outcome, via="reconcile"))
                    return
                if outcome is not None:
                    report.recorded.append(self.recorder.record_success(job, outcome, via="reconcile"))
                    return
        except OutputNotReady:
            report.output_not_ready += 1
        if self._too_old(job):
            report.recorded.append(self.recorder.record_timeout(job, self.max_age_seconds))
        else:
            report.still_processing += 1

    def _runware_lost_track(self, error: TaskError) -> bool:
        # A task Runware no longer knows may still finish from our side's view only by timing out.
        return "notfound" in error.code.replace("_", "").lower()

    def _too_old(self, job: dict[str, Any]) -> bool:
        started = parse_iso(job.get("submittedAt") or job["createdAt"])
        return (utc_now() - started).total_seconds() >= self.max_age_seconds
