"""ReconcileFunction (scheduled): jobs whose webhook never came are finished by polling Runware.

Every run also resumes intake after a pause once its wait is over (upscaler.intake_pause) and
reports IntakePaused (1, every minute while paused; SpendLimitReached too while the pause is the
daily spend limit's); the one-minute schedule does only that.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from upscaler.intake_pause import PauseReason, ResumeReport
from upscaler.job_metrics import add_reconcile_metrics
from upscaler.wiring import build_intake_resumer, build_reconciler, deadline_for

# The input of the one-minute schedule (template.yaml, IntakeResumeSchedule): resume intake only.
RESUME_INTAKE_ONLY = "resume-intake"

logger = Logger()
tracer = Tracer(patch_modules=["botocore", "httpx"])  # the calls this function makes; patching all costs cold start
metrics = Metrics()
reconciler = build_reconciler()
intake_resumer = build_intake_resumer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("run") == RESUME_INTAKE_ONLY:
        return resume_intake().as_log()
    try:
        resume_intake()
    except Exception:  # the one-minute schedule tries again; the jobs' reconciliation goes on
        logger.exception("resuming intake failed")
    report = reconciler.run(deadline=deadline_for(context))
    counts = report.counts()
    # A quiet run (nothing stale) is the usual case every few minutes: keep it out of INFO logs.
    log = logger.info if report.examined or report.runware_unavailable else logger.debug
    log("reconcile run", extra={**counts, "runwareUnavailable": report.runware_unavailable})
    add_reconcile_metrics(metrics, report)
    return counts


def resume_intake() -> ResumeReport:
    """Half-open the intake pause once its wait is over; the metric the IntakePaused alarm watches."""
    resumed = intake_resumer.run()
    if resumed.paused:
        # Only while paused: a metric published as 0 every minute would bill as a custom metric for
        # nothing; the alarm treats the missing data as not breaching.
        metrics.add_metric(name="IntakePaused", unit=MetricUnit.Count, value=1)
        if resumed.pause is not None and resumed.pause.reason is PauseReason.SPEND_LIMIT_REACHED:
            # The SpendLimitReached alarm's metric: the day's limit holds intake back.
            metrics.add_metric(name="SpendLimitReached", unit=MetricUnit.Count, value=1)
        logger.info("intake paused", extra=resumed.as_log())
    return resumed
