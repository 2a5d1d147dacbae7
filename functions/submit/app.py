"""SubmitFunction: a batch from the ingestion queue becomes one request of async upscale tasks.

While Runware is unavailable or refuses the account, intake waits instead (upscaler.intake_pause):
the batch is handed back without spending receive counts.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from upscaler.ingestion import all_failed
from upscaler.job_metrics import add_submit_metrics
from upscaler.job_record import JobStatus
from upscaler.parallel import in_handler_trace
from upscaler.source_events import as_queue_batch
from upscaler.wiring import build_intake, build_submitter, deadline_for

logger = Logger()
QUIET_STATUSES = frozenset({JobStatus.SUBMITTED, JobStatus.COMPLETED})
tracer = Tracer(patch_modules=["botocore", "httpx"])  # the calls this function makes; patching all costs cold start
metrics = Metrics()


# Sources are validated and claimed in worker threads; without tracing there is nothing to hand over.
submitter = build_submitter(handoff=None if tracer.disabled else in_handler_trace)
intake = build_intake(submitter)
# Every message failing is reported like any other partial failure, not raised as an error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event = dict(as_queue_batch(event))  # a plain S3 notification as the queue would have delivered it
    try:
        batch = intake.take(event, function_name=context.function_name, deadline=deadline_for(context))
    except Exception as error:
        # Not an outage or a refusal of the account (those pause intake): retry them all.
        logger.exception("batch not submitted; every message will be received again")
        metrics.add_metric(name="SubmitBatchesFailed", unit=MetricUnit.Count, value=1)
        batch = all_failed(event, f"{type(error).__name__}: {error}")
    for outcome in batch.outcomes:
        # A source sent or completed as asked is in its job record; a line each is DEBUG (CloudWatch
        # Logs bills every byte), what went otherwise is INFO. Not asdict(outcome) as extra: its
        # "message" key would collide with LogRecord.message.
        log = logger.debug if outcome.status in QUIET_STATUSES else logger.info
        log(
            "source processed",
            extra={
                "jobId": outcome.job_id,
                "sourceKey": outcome.source_key,
                "status": outcome.status,
                "errorCode": outcome.code,
                "errorMessage": outcome.message,
            },
        )
    if batch.outcomes:
        logger.info("batch processed", extra={"sources": dict(Counter(str(o.status) for o in batch.outcomes))})
    for message_id, reason in batch.failed.items():
        logger.warning("message not submitted", extra={"messageId": message_id, "reason": reason})
    for message_id, reason in batch.dead_lettered.items():
        logger.warning("message sent to the dead-letter queue", extra={"messageId": message_id, "reason": reason})
    if batch.handed_back and batch.gate is not None and batch.gate.pause is not None:
        pause = batch.gate.pause
        logger.warning(
            "intake paused: messages handed back",
            extra={
                "handedBack": len(batch.handed_back),
                "pauseReason": str(pause.reason),
                "nextProbeAt": pause.next_probe_at.isoformat(),
            },
        )
        metrics.add_metric(name="MessagesHandedBack", unit=MetricUnit.Count, value=len(batch.handed_back))
    add_submit_metrics(metrics, batch.outcomes)

    def check(record: SQSRecord) -> None:
        batch.check_record(record.message_id)

    return process_partial_response(event, record_handler=check, processor=processor, context=context)
