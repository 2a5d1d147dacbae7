"""ReconcileFunction (scheduled): jobs whose webhook never came are finished by polling Runware."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from upscaler.job_metrics import add_result_metrics
from upscaler.runtime import build_reconciler, deadline_for

logger = Logger()
tracer = Tracer()
metrics = Metrics()
reconciler = build_reconciler()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = reconciler.run(deadline=deadline_for(context))
    counts = report.counts()
    logger.info("reconcile run", extra={**counts, "runwareUnavailable": report.runware_unavailable})
    add_result_metrics(metrics, report.recorded)
    return counts
