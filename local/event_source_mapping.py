"""Lambda's SQS event source mapping, played against a moto queue for a real handler.

As Lambda does: up to MaximumConcurrency pollers; each receives up to BatchSize messages, waiting
up to MaximumBatchingWindowInSeconds for a batch to fill; invokes the function with the SQS event
shape; deletes what succeeded. With ReportBatchItemFailures only the messages the function names
in `batchItemFailures` stay; an error (or a response naming an unknown message) keeps the whole
batch. What stays is received again once its visibility timeout ends, which the queue's redrive
policy (in moto, as in SQS) turns into a move to the dead-letter queue after maxReceiveCount
receives. Locally a failed message becomes visible again after `redelivery_seconds` instead of the
queue's visibility timeout of minutes, the same as time passing faster.

The mapping also exists in moto's Lambda (`register_mapping`), so the functions find it with
ListEventSourceMappings and switch it with UpdateEventSourceMapping as they do in AWS; the pollers
read its State (`MappingState`) and receive nothing while it is not Enabled or Enabling, which is how
a paused intake stops taking work. moto would also invoke a function itself on every send to a
mapped queue (in a container); that hook is taken off, since the pollers here are the mapping.
"""

from __future__ import annotations

import io
import json
import logging
import math
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("local.event_source_mapping")

SQS_RECEIVE_MAX = 10  # SQS returns at most 10 messages per ReceiveMessage
# The mapping states in which Lambda delivers batches (API reference, EventSourceMappingConfiguration).
DELIVERING_STATES = frozenset({"Enabled", "Enabling"})
LOCAL_ROLE_NAME = "local-function-role"


@dataclass(frozen=True)
class MappingSettings:
    queue_url: str
    queue_arn: str
    batch_size: int
    batching_window_seconds: float
    maximum_concurrency: int
    report_batch_item_failures: bool
    region: str


class EventSourceMapping:
    def __init__(
        self,
        settings: MappingSettings,
        sqs_client: Callable[[], Any],
        invoke: Callable[[dict[str, Any]], Any],
        *,
        redelivery_seconds: int = 1,
        delivering: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        self._sqs_client = sqs_client
        self._invoke = invoke
        self.redelivery_seconds = redelivery_seconds
        # Whether the mapping is switched on (Lambda's State); None: always.
        self._delivering = delivering or (lambda: True)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.in_flight = 0  # messages inside a running invocation
        self.invocations = 0
        self.messages_failed = 0  # messages left for redelivery (reported, or in a batch that raised)
        self.batch_sizes: list[int] = []
        self.peak_concurrency = 0
        self._running = 0

    def start(self) -> None:
        for index in range(self.settings.maximum_concurrency):
            thread = threading.Thread(target=self._poll, name=f"esm-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)

    # ---- one poller ---------------------------------------------------------------------------

    def _poll(self) -> None:
        sqs = self._sqs_client()
        while not self._stopping.is_set():
            try:
                if not self._delivering():
                    self._stopping.wait(PAUSED_POLL_SECONDS)
                    continue
                batch = self._receive_batch(sqs)
            except Exception:
                if self._stopping.is_set():
                    return
                logger.exception("polling %s failed", self.settings.queue_url)
                time.sleep(0.5)
                continue
            if batch:
                self._run(sqs, batch)

    def _receive_batch(self, sqs: Any) -> list[dict[str, Any]]:
        settings = self.settings
        batch: list[dict[str, Any]] = []
        window_ends: float | None = None
        while len(batch) < settings.batch_size and not self._stopping.is_set():
            if window_ends is None:
                wait = 1
            else:
                remaining = window_ends - time.monotonic()
                if remaining <= 0:
                    break
                wait = min(20, math.ceil(remaining))
            try:
                response = sqs.receive_message(
                    QueueUrl=settings.queue_url,
                    MaxNumberOfMessages=min(SQS_RECEIVE_MAX, settings.batch_size - len(batch)),
                    WaitTimeSeconds=wait,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
            except Exception:
                if not batch:
                    raise
                # What was received is invisible now: deliver it rather than leave it to the queue's
                # visibility timeout of minutes.
                logger.exception("receiving more for a batch of %d failed; delivering what it has", len(batch))
                break
            messages = response.get("Messages", [])
            if not messages:
                if window_ends is None:
                    return []
                continue
            batch.extend(messages)
            if window_ends is None:
                if settings.batching_window_seconds <= 0:
                    break
                window_ends = time.monotonic() + settings.batching_window_seconds
        return batch

    def _run(self, sqs: Any, batch: list[dict[str, Any]]) -> None:
        with self._lock:
            self.in_flight += len(batch)
            self._running += 1
            self.peak_concurrency = max(self.peak_concurrency, self._running)
            self.invocations += 1
            self.batch_sizes.append(len(batch))
        try:
            failed = self._failed_ids(batch)
            with self._lock:
                self.messages_failed += len(failed)
            self._settle(
                sqs,
                "delete_message_batch",
                [{"ReceiptHandle": m["ReceiptHandle"]} for m in batch if m["MessageId"] not in failed],
            )
            self._settle(
                sqs,
                "change_message_visibility_batch",
                [
                    {"ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self.redelivery_seconds}
                    for m in batch
                    if m["MessageId"] in failed
                ],
            )
        except Exception:
            # The runner failed, not the function: the batch reappears after its visibility timeout.
            logger.exception("handling a batch of %d failed; it will be received again", len(batch))
        finally:
            with self._lock:
                self.in_flight -= len(batch)
                self._running -= 1

    def _settle(self, sqs: Any, operation: str, entries: list[dict[str, Any]]) -> None:
        """Delete or make visible again, 10 entries to a request, trying again what failed on the
        service's side: a batch left alone would wait out the queue's visibility timeout of minutes."""
        for start in range(0, len(entries), SQS_RECEIVE_MAX):
            pending = {str(i): entry for i, entry in enumerate(entries[start : start + SQS_RECEIVE_MAX])}
            for attempt in range(SETTLE_ATTEMPTS):
                try:
                    response = getattr(sqs, operation)(
                        QueueUrl=self.settings.queue_url,
                        Entries=[{"Id": key, **entry} for key, entry in pending.items()],
                    )
                except Exception as error:
                    logger.warning("%s of %d entries failed (try %d): %s", operation, len(pending), attempt + 1, error)
                else:
                    for failure in response.get("Failed", []):
                        if failure.get("SenderFault"):
                            logger.warning("%s refused an entry: %s", operation, failure.get("Message"))
                    pending = {
                        failure["Id"]: pending[failure["Id"]]
                        for failure in response.get("Failed", [])
                        if not failure.get("SenderFault") and failure.get("Id") in pending
                    }
                if not pending:
                    break
                time.sleep(SETTLE_BACKOFF_SECONDS * 2**attempt)
            else:
                logger.error(
                    "%s gave up on %d entries: they return after the visibility timeout", operation, len(pending)
                )

    def _failed_ids(self, batch: list[dict[str, Any]]) -> set[str]:
        ids = {message["MessageId"] for message in batch}
        try:
            response = self._invoke(self.event_for(batch))
        except Exception as error:
            logger.warning("the function failed on a batch of %d: %s", len(batch), error)
            return ids
        if not self.settings.report_batch_item_failures:
            return set()
        failures = response.get("batchItemFailures") if isinstance(response, dict) else None
        named = {str(item.get("itemIdentifier", "")) for item in failures or []}
        if not named <= ids:
            logger.warning("batchItemFailures names messages not in the batch: the whole batch fails")
            return ids
        return named

    def event_for(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        """The event Lambda gives a function for a batch of SQS messages."""
        return sqs_event(batch, queue_arn=self.settings.queue_arn, region=self.settings.region)


PAUSED_POLL_SECONDS = 0.2
SETTLE_ATTEMPTS = 6
SETTLE_BACKOFF_SECONDS = 0.2


class MappingState:
    """The mapping's State in moto's Lambda, read at most every `max_age_seconds` for all pollers."""

    def __init__(self, lambda_client: Callable[[], Any], uuid: str, *, max_age_seconds: float = 0.2) -> None:
        self._lambda_client = lambda_client
        self.uuid = uuid
        self.max_age_seconds = max_age_seconds
        self._lock = threading.Lock()
        self._client: Any = None
        self._read_at = -math.inf
        self._state = "Enabled"

    def __call__(self) -> bool:
        with self._lock:
            if time.monotonic() - self._read_at >= self.max_age_seconds:
                if self._client is None:
                    self._client = self._lambda_client()
                try:
                    self._state = str(self._client.get_event_source_mapping(UUID=self.uuid)["State"])
                except Exception:
                    logger.exception("reading the state of mapping %s failed; keeping %s", self.uuid, self._state)
                self._read_at = time.monotonic()
            return self._state in DELIVERING_STATES


def register_mapping(lambda_client: Any, iam_client: Any, function_name: str, settings: MappingSettings) -> str:
    """Create the function (a placeholder package: the stack runs the real code) and its mapping in
    moto's Lambda, named as the template's, and take moto's own invoker off the queue; the UUID."""
    try:
        role = iam_client.get_role(RoleName=LOCAL_ROLE_NAME)["Role"]["Arn"]
    except iam_client.exceptions.NoSuchEntityException:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        role = iam_client.create_role(RoleName=LOCAL_ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
            "Arn"
        ]
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("app.py", "# run by the local stack from functions/, not from here\n")
    lambda_client.create_function(
        FunctionName=function_name,
        Runtime="python3.13",
        Role=role,
        Handler="app.lambda_handler",
        Code={"ZipFile": package.getvalue()},
    )
    mapping = lambda_client.create_event_source_mapping(
        FunctionName=function_name,
        EventSourceArn=settings.queue_arn,
        BatchSize=settings.batch_size,
        MaximumBatchingWindowInSeconds=int(settings.batching_window_seconds),
        Enabled=True,
    )
    detach_moto_invoker(settings.queue_arn)
    return str(mapping["UUID"])


def detach_moto_invoker(queue_arn: str) -> None:
    """moto's SQS invokes a mapped function itself on every send (moto.sqs.models.Queue); where
    moto runs in this process, the hook is removed where moto keeps it. A moto server in a process
    of its own (local.moto_process) has no such queue here: that process takes the hook off itself
    as the mapping is made."""
    from moto.sqs.models import sqs_backends

    _, _, _, region, account, name = queue_arn.split(":", 5)
    queue = sqs_backends[account][region].queues.get(name)
    if queue is not None:
        queue.lambda_event_source_mappings.clear()


def sqs_event(messages: list[dict[str, Any]], *, queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping delivers for messages from ReceiveMessage
    (received with AttributeNames and MessageAttributeNames ["All"])."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value["DataType"],
                    }
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }
