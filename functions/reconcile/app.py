"""ReconcileFunction (scheduled): jobs whose webhook never came are finished by polling Runware."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from upscaler.job_metrics import add_reconcile_metrics
from upscaler.wiring import build_reconciler, deadline_for

logger = Logger()
tracer = Tracer(patch_modules=["botocore", "httpx"])  # the calls this function makes; patching all costs cold start
metrics = Metrics()
reconciler = build_reconciler()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = reconciler.run(deadline=deadline_for(context))
    counts = report.counts()
    # A quiet run (nothing stale) is the usual case every few minutes: keep it out of INFO logs.
    log = logger.info if report.examined or report.runware_unavailable else logger.debug
    log("reconcile run", extra={**counts, "runwareUnavailable": report.runware_unavailable})
    add_reconcile_metrics(metrics, report)
    return counts
