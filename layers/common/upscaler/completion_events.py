"""Completion events: one EventBridge event per terminal transition of a job.

Sent by the job store right after the conditional write that made the job terminal, so a
duplicate webhook, a redelivered upload or a second reconcile run (whose writes are refused)
sends nothing. Delivery is at least once: EventBridge itself may deliver an event twice, and a
late success (TIMED_OUT -> COMPLETED) sends a second event for the same job. Consumers
de-duplicate on `detail.jobId` plus `detail.status`.

A caller that ends many jobs at once (a recovery batch) may hold their events in `sent_together()`:
the events of the jobs ended inside the block, in its thread or in the worker threads
`upscaler.parallel.run_each` starts from it, are sent when the block ends, up to 10 to a PutEvents
request (the request's limit, "PutEvents", Amazon EventBridge API reference:
https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html). EventBridge answers
each entry in request order and an entry that failed must be sent again by the caller ("Sending
events with PutEvents", https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevents.html):
only the failed entries are retried. A held event is sent even when the block raises, since its
write has happened.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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
# PutEvents takes at most 10 entries per request (API reference, PutEvents: Entries).
PUT_EVENTS_MAX_ENTRIES = 10


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


class _HeldEvents:
    """Events held by sent_together(), from any of the block's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_publisher: dict[int, tuple[CompletionEventPublisher, list[tuple[dict[str, Any], Job]]]] = {}

    def add(self, publisher: CompletionEventPublisher, entry: dict[str, Any], job: Job) -> None:
        with self._lock:
            self.by_publisher.setdefault(id(publisher), (publisher, []))[1].append((entry, job))


_held: ContextVar[_HeldEvents | None] = ContextVar("held_completion_events", default=None)


@contextmanager
def sent_together() -> Iterator[None]:
    """Hold the completion events of the jobs ended inside the block; send them, 10 to a request, at its end."""
    held = _HeldEvents()
    token = _held.set(held)
    try:
        yield
    finally:
        _held.reset(token)
        for publisher, events in held.by_publisher.values():
            publisher.send(events)


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
        held = _held.get()
        if held is not None:
            held.add(self, entry, job)
            return
        self.send([(entry, job)])

    def send(self, events: list[tuple[dict[str, Any], Job]]) -> None:
        """Send each (entry, job), 10 to a request; those still refused after SEND_ATTEMPTS are logged."""
        for start in range(0, len(events), PUT_EVENTS_MAX_ENTRIES):
            self._send_batch(events[start : start + PUT_EVENTS_MAX_ENTRIES])

    def _send_batch(self, events: list[tuple[dict[str, Any], Job]]) -> None:
        pending = events
        reasons: list[str] = []
        for attempt in range(SEND_ATTEMPTS):
            try:
                response = self._events().put_events(Entries=[entry for entry, _ in pending])
            except (BotoCoreError, ClientError) as error:
                reasons = [f"{type(error).__name__}: {error}"] * len(pending)
            else:
                if not response.get("FailedEntryCount"):
                    return
                answers = response.get("Entries") or []
                failed = [
                    (event, answer)
                    for event, answer in zip(pending, answers, strict=False)
                    if isinstance(answer, dict) and answer.get("ErrorCode")
                ]
                if not failed and len(answers) != len(pending):
                    failed = [(event, {}) for event in pending]  # an answer that cannot be matched: all again
                pending = [event for event, _ in failed]
                reasons = [f"{answer.get('ErrorCode')}: {answer.get('ErrorMessage')}" for _, answer in failed]
                if not pending:
                    return
            if attempt + 1 < SEND_ATTEMPTS:
                self._sleep(0.2 * 2**attempt)
        for (_, job), reason in zip(pending, reasons, strict=False):
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
