"""RecoverFunction (the recovery checks queue): each submitted job is looked at when its check is due."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from upscaler.job_metrics import add_recovery_metrics
from upscaler.parallel import in_handler_trace
from upscaler.recovery import check_messages
from upscaler.wiring import build_recoverer, deadline_for

logger = Logger()
tracer = Tracer(patch_modules=["botocore", "httpx"])  # the calls this function makes; patching all costs cold start
metrics = Metrics()
# Jobs are settled in worker threads; without tracing there is nothing to hand over.
recoverer = build_recoverer(handoff=None if tracer.disabled else in_handler_trace)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = recoverer.run(check_messages(event), deadline=deadline_for(context))
    counts = report.counts()
    log = logger.info if report.polled or report.runware_unavailable or report.failed_message_ids else logger.debug
    log("recovery checks", extra={**counts, "runwareUnavailable": report.runware_unavailable})
    add_recovery_metrics(metrics, report)
    # Only the messages whose job could not be dealt with are received again.
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in report.failed_message_ids]}
