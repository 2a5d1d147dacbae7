"""Completion events: one EventBridge event per terminal transition of a job.

Sent by the job store right after the conditional write that made the job terminal, so a
duplicate webhook, a redelivered upload or a second reconcile run (whose writes are refused)
sends nothing. Delivery is at least once: EventBridge itself may deliver an event twice, and a
late success (TIMED_OUT -> COMPLETED) sends a second event for the same job. Consumers
de-duplicate on `detail.jobId` plus `detail.status`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from upscaler.job_record import Job

logger = logging.getLogger(__name__)

EVENT_SOURCE = "s3-upscale"
DETAIL_TYPES = {
    "COMPLETED": "Upscale Job Completed",
    "FAILED": "Upscale Job Failed",
    "REJECTED": "Upscale Job Rejected",
    "TIMED_OUT": "Upscale Job Timed Out",
}
# The job record's fields a downstream system may see (not the TTL, attempt counters or Runware's
# own short-lived result URL).
PUBLIC_FIELDS = (
    "jobId",
    "status",
    "sourceBucket",
    "sourceKey",
    "sourceVersionId",
    "sourceETag",
    "sourceSize",
    "sourceContentType",
    "inputFormat",
    "inputWidth",
    "inputHeight",
    "targetMegapixels",
    "enhanceDetails",
    "realism",
    "outputFormat",
    "outputQuality",
    "outputBucket",
    "outputKey",
    "outputSize",
    "outputContentType",
    "outputETag",
    "outputWidth",
    "outputHeight",
    "imageUUID",
    "cost",
    "errorCode",
    "errorMessage",
    "errorParameter",
    "resultVia",
    "reusedOutputOf",
    "lateResult",
    "eventTime",
    "createdAt",
    "submittedAt",
    "completedAt",
    "uploadToSubmitSeconds",
    "providerSeconds",
    "totalSeconds",
)
SEND_ATTEMPTS = 3


def completion_detail(job: Job) -> dict[str, Any]:
    record = job.to_record()
    return {name: _json_value(record[name]) for name in PUBLIC_FIELDS if record.get(name) is not None}


def completion_entry(job: Job, bus_name: str) -> dict[str, Any]:
    """The PutEvents entry for a job that has just become terminal."""
    return {
        "Source": EVENT_SOURCE,
        "DetailType": DETAIL_TYPES[str(job.status)],
        "Detail": json.dumps(completion_detail(job), separators=(",", ":")),
        "EventBusName": bus_name,
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class CompletionEventPublisher:
    """Sends a job's completion event; never raises, because the write it reports has happened and
    failing the caller would not bring the event back (a retried write is refused)."""

    def __init__(
        self,
        events_client: Callable[[], Any],
        bus_name: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = events_client
        self._client_instance: Any = None
        # Jobs end in several threads of one invocation at once (the submit path's transitions):
        # one client is made, by the first, and shared (boto3 clients are thread-safe; making one
        # from the default session is not).
        self._client_lock = threading.Lock()
        self.bus_name = bus_name
        self._sleep = sleep

    def __call__(self, job: Job) -> None:
        entry = completion_entry(job, self.bus_name)
        reason = ""
        for attempt in range(SEND_ATTEMPTS):
            try:
                response = self._events().put_events(Entries=[entry])
            except (BotoCoreError, ClientError) as error:
                reason = f"{type(error).__name__}: {error}"
            else:
                if not response.get("FailedEntryCount"):
                    return
                failed = (response.get("Entries") or [{}])[0]
                reason = f"{failed.get('ErrorCode')}: {failed.get('ErrorMessage')}"
            if attempt + 1 < SEND_ATTEMPTS:
                self._sleep(0.2 * 2**attempt)
        logger.error(
            "completion event not sent",
            extra={"jobId": job.job_id, "status": str(job.status), "reason": reason},
        )

    def _events(self) -> Any:
        # Made on first use: most invocations of the submit function end no job.
        with self._client_lock:
            if self._client_instance is None:
                self._client_instance = self._client()
            return self._client_instance
