"""CloudWatch metrics (through Powertools' embedded metric format) for what happened to jobs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from upscaler.job_record import JobStatus
from upscaler.results import Recorded

if TYPE_CHECKING:
    from upscaler.reconciliation import ReconcileReport
    from upscaler.recovery import RecoveryReport
    from upscaler.submission import SubmitOutcome
    from upscaler.webhook import WebhookReply

_SUBMIT_METRICS = {
    JobStatus.SUBMITTED: "JobsSubmitted",
    JobStatus.REJECTED: "JobsRejected",
    JobStatus.FAILED: "JobsFailed",
    "DUPLICATE": "DuplicateDeliveries",  # upscaler.submission.DUPLICATE, not imported: the webhook never submits
    "IGNORED": "SourcesIgnored",  # folder markers and foreign sources: no job
}
_RESULT_METRICS = {
    JobStatus.COMPLETED: "JobsCompleted",
    JobStatus.FAILED: "JobsFailed",
    JobStatus.TIMED_OUT: "JobsTimedOut",
}


def add_submit_metrics(metrics: Metrics, outcomes: Iterable[SubmitOutcome]) -> None:
    for outcome in outcomes:
        name = _SUBMIT_METRICS.get(outcome.status)
        if name:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def add_result_metrics(metrics: Metrics, recorded: Iterable[Recorded]) -> None:
    for item in recorded:
        if not item.changed:
            metrics.add_metric(name="RepeatedReports", unit=MetricUnit.Count, value=1)
            continue
        name = _RESULT_METRICS.get(JobStatus(item.status))
        if name:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        if item.status == JobStatus.COMPLETED:
            if item.job.cost is not None:
                metrics.add_metric(name="CostUSD", unit=MetricUnit.NoUnit, value=float(item.job.cost))
            if item.job.total_seconds is not None:
                metrics.add_metric(name="EndToEndLatency", unit=MetricUnit.Seconds, value=float(item.job.total_seconds))


def add_webhook_metrics(metrics: Metrics, reply: WebhookReply) -> None:
    """Answers by class (forged or malformed requests show as 4xx), then what was recorded."""
    metrics.add_metric(name=f"WebhookAnswers{reply.status_code // 100}xx", unit=MetricUnit.Count, value=1)
    if reply.malformed:
        metrics.add_metric(name="MalformedReports", unit=MetricUnit.Count, value=reply.malformed)
    add_result_metrics(metrics, reply.recorded)


def add_reconcile_metrics(metrics: Metrics, report: ReconcileReport) -> None:
    """Stale jobs examined, then what was recorded; a quiet run adds nothing, so it publishes nothing
    (a custom metric bills for each hour in which it receives a value, a zero included)."""
    if report.examined:
        metrics.add_metric(name="StaleJobsExamined", unit=MetricUnit.Count, value=report.examined)
    if report.indexed_from_legacy:
        metrics.add_metric(name="JobsIndexedFromLegacy", unit=MetricUnit.Count, value=report.indexed_from_legacy)
    # Published on every run, 0 when nothing is open: its alarm treats a missing value as breaching
    # (the pass itself stopped running).
    age = report.oldest_open_age_seconds or 0.0
    metrics.add_metric(name="OldestOpenJobAgeSeconds", unit=MetricUnit.Seconds, value=age)
    add_result_metrics(metrics, report.recorded)


def add_recovery_metrics(metrics: Metrics, report: RecoveryReport) -> None:
    """Checks received and jobs polled, then what was recorded; a batch of checks not yet due adds nothing."""
    if report.polled:
        metrics.add_metric(name="RecoveryJobsPolled", unit=MetricUnit.Count, value=report.polled)
    if report.failed_message_ids:
        metrics.add_metric(name="RecoveryChecksFailed", unit=MetricUnit.Count, value=len(report.failed_message_ids))
    add_result_metrics(metrics, report.recorded)
