"""SubmitFunction: an S3 ObjectCreated event (or its re-drive through SQS) becomes async upscale tasks."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from upscaler.job_metrics import add_submit_metrics
from upscaler.runtime import build_submitter, deadline_for

logger = Logger()
tracer = Tracer(patch_modules=["botocore", "httpx"])  # the calls this function makes; patching all costs cold start
metrics = Metrics()
submitter = build_submitter()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcomes = submitter.submit_event(event, deadline=deadline_for(context))
    for outcome in outcomes:
        # Not asdict(outcome) as extra: its "message" key would collide with LogRecord.message.
        logger.info(
            "source processed",
            extra={
                "jobId": outcome.job_id,
                "sourceKey": outcome.source_key,
                "status": outcome.status,
                "errorCode": outcome.code,
                "errorMessage": outcome.message,
            },
        )
    add_submit_metrics(metrics, outcomes)
    return {"jobs": [asdict(outcome) for outcome in outcomes]}
