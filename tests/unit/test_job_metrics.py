"""upscaler.job_metrics: which CloudWatch metrics each function's outcomes add (Powertools' metric set)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aws_lambda_powertools import Metrics

from upscaler.job_metrics import (
    add_reconcile_metrics,
    add_recovery_metrics,
    add_result_metrics,
    add_submit_metrics,
    add_webhook_metrics,
)
from upscaler.job_record import Job
from upscaler.reconciliation import ReconcileReport
from upscaler.recovery import RecoveryReport
from upscaler.results import Recorded
from upscaler.submission import DUPLICATE, IGNORED, SubmitOutcome
from upscaler.webhook import WebhookReply


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    metrics = Metrics(namespace="S3UpscaleTest")
    metrics.clear_metrics()  # Powertools shares one metric set between instances
    yield metrics
    metrics.clear_metrics()


def added(metrics: Metrics) -> dict[str, float]:
    return {name: sum(value["Value"]) for name, value in metrics.metric_set.items()}


def units(metrics: Metrics) -> dict[str, str]:
    return {name: value["Unit"] for name, value in metrics.metric_set.items()}


def outcome(status: str) -> SubmitOutcome:
    return SubmitOutcome("job", "inbox/a.jpg", status)


def recorded(status: str, changed: bool = True, **job: object) -> Recorded:
    return Recorded(
        "job", status, changed, Job.from_record({"jobId": "job", "sourceBucket": "b", "sourceKey": "k", **job})
    )


def test_each_submit_outcome_counts_under_its_own_name(metrics):
    statuses = ["SUBMITTED", "SUBMITTED", "REJECTED", "FAILED", DUPLICATE, IGNORED, "COMPLETED"]
    add_submit_metrics(metrics, [outcome(status) for status in statuses])
    assert added(metrics) == {
        "JobsSubmitted": 2,
        "JobsRejected": 1,
        "JobsFailed": 1,
        "DuplicateDeliveries": 1,
        "SourcesIgnored": 1,
    }  # a job already COMPLETED when its submission ended adds nothing
    assert set(units(metrics).values()) == {"Count"}


def test_no_outcome_adds_no_metric(metrics):
    add_submit_metrics(metrics, [])
    assert added(metrics) == {}


def test_a_completion_adds_its_cost_and_end_to_end_latency(metrics):
    add_result_metrics(metrics, [recorded("COMPLETED", cost="0.0048", totalSeconds=12.5)])
    assert added(metrics) == {"JobsCompleted": 1, "CostUSD": 0.0048, "EndToEndLatency": 12.5}
    assert units(metrics) == {"JobsCompleted": "Count", "CostUSD": "None", "EndToEndLatency": "Seconds"}


def test_a_completion_without_cost_or_timing_counts_only_itself(metrics):
    add_result_metrics(metrics, [recorded("COMPLETED")])
    assert added(metrics) == {"JobsCompleted": 1}


def test_failures_time_outs_and_repeats(metrics):
    add_result_metrics(
        metrics,
        [recorded("FAILED", cost="1"), recorded("TIMED_OUT"), recorded("COMPLETED", changed=False, cost="2")],
    )
    # Cost is counted on completions only, and a repeated report adds nothing but itself.
    assert added(metrics) == {"JobsFailed": 1, "JobsTimedOut": 1, "RepeatedReports": 1}


def test_webhook_answers_by_class_then_malformed_reports_then_what_was_recorded(metrics):
    add_webhook_metrics(metrics, WebhookReply(200, {}, recorded=[recorded("COMPLETED")]))
    add_webhook_metrics(metrics, WebhookReply(401, {}))
    add_webhook_metrics(metrics, WebhookReply(400, {}, malformed=2))
    assert added(metrics) == {"WebhookAnswers2xx": 1, "WebhookAnswers4xx": 2, "MalformedReports": 2, "JobsCompleted": 1}


def test_a_quiet_safety_net_run_adds_only_the_oldest_open_job_age(metrics):
    # Every run reports it, 0 when nothing is open: its alarm counts a missing value as the pass stopping.
    add_reconcile_metrics(metrics, ReconcileReport())
    assert added(metrics) == {"OldestOpenJobAgeSeconds": 0}


def test_a_safety_net_run_counts_the_jobs_it_examined_indexed_and_recorded(metrics):
    report = ReconcileReport(
        examined=3, recorded=[recorded("TIMED_OUT")], oldest_open_age_seconds=5400.0, indexed_from_legacy=2
    )
    add_reconcile_metrics(metrics, report)
    assert added(metrics) == {
        "StaleJobsExamined": 3,
        "JobsIndexedFromLegacy": 2,
        "OldestOpenJobAgeSeconds": 5400,
        "JobsTimedOut": 1,
    }


def test_a_batch_of_checks_counts_the_jobs_polled_the_failures_and_what_it_recorded(metrics):
    report = RecoveryReport(polled=25, recorded=[recorded("COMPLETED")], failed_message_ids=["m-1"])
    add_recovery_metrics(metrics, report)
    assert added(metrics)["RecoveryJobsPolled"] == 25
    assert added(metrics)["RecoveryChecksFailed"] == 1 and added(metrics)["JobsCompleted"] == 1


def test_a_batch_of_checks_not_yet_due_adds_nothing(metrics):
    add_recovery_metrics(metrics, RecoveryReport(checks=10, not_due=10))
    assert added(metrics) == {}
