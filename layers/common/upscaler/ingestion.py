"""A batch from the ingestion queue -> one Runware request, and what becomes of each message.

The event source mapping hands the submit function up to SubmitBatchSize queue messages; their
sources go to Runware together, and only the messages whose own sources could not be submitted are
reported back as failures (ReportBatchItemFailures), so one bad upload never retries its
neighbours and alone reaches the dead-letter queue after maxReceiveCount receives.

Two kinds of message never spend receives (Intake):
- a message that can never be read (not JSON, not an S3 or EventBridge event) goes to the
  dead-letter queue on its first receive: sent there, then reported processed;
- when the batch fails as a whole because Runware is unavailable or refuses the account, intake
  pauses (upscaler.intake_pause) and every readable message is handed back: a copy is sent to the
  ingestion queue (receive count 0, held back until the next probe) and the original is reported
  processed. Batches that arrive while intake is paused are handed back without calling Runware.
  The messages of sources beyond the day's spend limit (upscaler.spend_limit) are handed back the
  same way, and intake pauses until the next UTC day or a higher limit.
A copy is sent before its original is reported processed, so a crash in between leaves two
deliveries of one upload, never none; the job's claim makes them one job.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from upscaler.intake_pause import Gate, IntakeBreaker, PauseReason
from upscaler.source_events import SourceObject, queue_messages

if TYPE_CHECKING:
    from upscaler.spend_limit import SpendLimit
    from upscaler.submission import SubmitOutcome, Submitter

logger = logging.getLogger(__name__)

SQS_BATCH_MAX = 10  # entries of one SendMessageBatch ("Amazon SQS quotas")
# Outcomes that mean Runware took the request and answered it: a probe that ends so closes the breaker.
ANSWERED_BY_RUNWARE = frozenset({"SUBMITTED", "FAILED", "COMPLETED"})
UNREADABLE = "the message names no S3 object this function reads"


class MessageNotSubmitted(Exception):
    """Raised for a batch record whose sources must be delivered again."""


@dataclass
class BatchResult:
    outcomes: list[SubmitOutcome] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # message id -> why it is delivered again
    handed_back: list[str] = field(default_factory=list)  # message ids sent back as fresh copies
    dead_lettered: dict[str, str] = field(default_factory=dict)  # message id -> why it can never be read
    over_limit: list[str] = field(default_factory=list)  # message ids beyond the day's spend limit: they wait
    gate: Gate | None = None  # the intake pause as this batch ended (None: no breaker)

    def check_record(self, message_id: str) -> None:
        """Raise for a message the batch did not finish with, so Powertools reports it as failed."""
        reason = self.failed.get(message_id)
        if reason is not None:
            raise MessageNotSubmitted(reason)


def message_ids(event: Mapping[str, Any]) -> list[str]:
    records = event.get("Records")
    return [str(record.get("messageId", "")) for record in records] if isinstance(records, list) else []


def all_failed(event: Mapping[str, Any], reason: str) -> BatchResult:
    """Every message of the batch delivered again: what an error about the whole request means."""
    return BatchResult(failed=dict.fromkeys(message_ids(event), reason))


def submit_batch(submitter: Submitter, event: Mapping[str, Any], *, deadline: float | None = None) -> BatchResult:
    messages, unreadable = queue_messages(event)
    result = BatchResult(failed=dict.fromkeys(unreadable, UNREADABLE))
    owners: dict[tuple[str, str, str], list[str]] = {}
    sources: list[SourceObject] = []
    for message in messages:
        for source in message.sources:
            # Two messages for one version (a duplicate delivery) make one task: Runware refuses a
            # request that repeats a taskUUID.
            if source.identity not in owners:
                owners[source.identity] = []
                sources.append(source)
            owners[source.identity].append(message.message_id)
    report = submitter.submit_sources(sources, deadline=deadline)
    result.outcomes = report.outcomes
    for source, reason in report.retry:
        for message_id in owners[source.identity]:
            result.failed[message_id] = reason
    waiting = dict.fromkeys(message_id for source in report.over_limit for message_id in owners[source.identity])
    # A message with a source to retry is received again anyway; its sources beyond the limit with it.
    result.over_limit = [message_id for message_id in waiting if message_id not in result.failed]
    return result


class QueueCopies:
    """Sends SQS messages of a batch (as Lambda delivered them) to a queue again, body and attributes."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs

    def send(self, queue_url: str, records: Sequence[Mapping[str, Any]], *, delay_seconds: int = 0) -> list[str]:
        """The ids of the records whose copy SQS did not take (they must not be reported processed)."""
        refused: list[str] = []
        for start in range(0, len(records), SQS_BATCH_MAX):
            chunk = records[start : start + SQS_BATCH_MAX]
            entries = [
                {
                    "Id": str(index),
                    "MessageBody": str(record.get("body", "")),
                    "DelaySeconds": delay_seconds,
                    **({"MessageAttributes": attributes} if (attributes := _attributes(record)) else {}),
                }
                for index, record in enumerate(chunk)
            ]
            try:
                response = self._sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            except Exception:
                logger.exception("sending %d message copies to %s failed", len(chunk), queue_url)
                refused.extend(str(record.get("messageId", "")) for record in chunk)
                continue
            for failure in response.get("Failed", []):
                refused.append(str(chunk[int(failure["Id"])].get("messageId", "")))
        return refused


@dataclass(frozen=True)
class IntakeQueues:
    ingest_url: str
    dead_letter_url: str


class Intake:
    """The submit function's whole batch: dead letters for unreadable messages, the intake pause
    before and after the submission, and the hand-back of messages while intake waits."""

    def __init__(
        self,
        submitter: Submitter,
        breaker: IntakeBreaker,
        copies: QueueCopies,
        queues: IntakeQueues,
        spend_limit: SpendLimit | None = None,
    ) -> None:
        self.submitter = submitter
        self.breaker = breaker
        self.copies = copies
        self.queues = queues
        # What intake pauses for when the day's limit is reached (None: no limit, no pause for it).
        self.spend_limit = spend_limit

    def take(self, event: Mapping[str, Any], *, function_name: str, deadline: float | None = None) -> BatchResult:
        from upscaler.runware import RunwareUnavailable
        from upscaler.submission import AccountRefused

        records = _records(event)
        unreadable = set(queue_messages(event)[1])
        readable = [record for record in records if str(record.get("messageId", "")) not in unreadable]
        result = BatchResult()
        self._dead_letter([record for record in records if str(record.get("messageId", "")) in unreadable], result)
        if not readable:
            return result
        gate = result.gate = self.breaker.gate()
        if gate.open:
            self._hand_back(readable, gate, result)
            return result
        batch = {"Records": readable}
        try:
            submitted = submit_batch(self.submitter, batch, deadline=deadline)
        except (RunwareUnavailable, AccountRefused) as error:
            reason = (
                PauseReason.RUNWARE_UNAVAILABLE
                if isinstance(error, RunwareUnavailable)
                else PauseReason.ACCOUNT_REFUSED
            )
            queue_arn = str(readable[0].get("eventSourceARN", ""))
            gate = result.gate = self.breaker.trip(
                gate, reason, f"{type(error).__name__}: {error}", function_name=function_name, queue_arn=queue_arn
            )
            self._hand_back(readable, gate, result)
            return result
        result.outcomes, result.failed = submitted.outcomes, {**result.failed, **submitted.failed}
        if submitted.over_limit:
            waiting = [record for record in readable if str(record.get("messageId", "")) in submitted.over_limit]
            result.gate = self._pause_for_limit(gate, waiting, function_name)
            self._hand_back(waiting, result.gate, result)
            return result
        if gate.probe and any(outcome.status in ANSWERED_BY_RUNWARE for outcome in submitted.outcomes):
            self.breaker.close(gate)
            result.gate = Gate(None, gate.now)
        return result

    def _pause_for_limit(self, gate: Gate, waiting: list[Mapping[str, Any]], function_name: str) -> Gate:
        """The day's limit is reached: intake waits (the next UTC day, or a higher limit)."""
        limit = self.spend_limit
        if limit is None:  # a counter without a pause: wait as for an outage, on the back-off
            return self.breaker.trip(
                gate,
                PauseReason.SPEND_LIMIT_REACHED,
                "daily spend limit reached",
                function_name=function_name,
                queue_arn=str(waiting[0].get("eventSourceARN", "")),
            )
        return self.breaker.trip(
            gate,
            PauseReason.SPEND_LIMIT_REACHED,
            f"{limit.limit.describe()} reached",
            function_name=function_name,
            queue_arn=str(waiting[0].get("eventSourceARN", "")),
            # Not Runware: the resumer looks every minute whether the limit was raised, so copies
            # come back after the shortest wait, not one that doubles.
            wait_seconds=self.breaker.store.backoff.first_seconds,
            resume_state=limit.limit.as_text(),
            on_start=limit.reached,
        )

    def _dead_letter(self, records: list[Mapping[str, Any]], result: BatchResult) -> None:
        if not records:
            return
        refused = set(self.copies.send(self.queues.dead_letter_url, records))
        for record in records:
            message_id = str(record.get("messageId", ""))
            if message_id in refused:  # received again, and dead-lettered by the redrive policy in the end
                result.failed[message_id] = UNREADABLE
            else:
                result.dead_lettered[message_id] = UNREADABLE

    def _hand_back(self, records: list[Mapping[str, Any]], gate: Gate, result: BatchResult) -> None:
        refused = set(self.copies.send(self.queues.ingest_url, records, delay_seconds=gate.hand_back_delay()))
        reason = str(gate.pause.reason) if gate.pause else "intake paused"
        for record in records:
            message_id = str(record.get("messageId", ""))
            if message_id in refused:
                result.failed[message_id] = f"{reason}; its copy could not be sent"
            else:
                result.handed_back.append(message_id)


def _records(event: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    records = event.get("Records")
    return [record for record in records if isinstance(record, Mapping)] if isinstance(records, list) else []


def _attributes(record: Mapping[str, Any]) -> dict[str, Any]:
    """A message's attributes from Lambda's event shape back into SendMessage's."""
    attributes: dict[str, Any] = {}
    given = record.get("messageAttributes")
    for name, value in given.items() if isinstance(given, Mapping) else []:
        if not isinstance(value, Mapping) or not value.get("dataType"):
            continue
        if value.get("stringValue") is not None:
            attributes[name] = {"DataType": value["dataType"], "StringValue": value["stringValue"]}
        elif value.get("binaryValue") is not None:
            import base64

            attributes[name] = {"DataType": value["dataType"], "BinaryValue": base64.b64decode(value["binaryValue"])}
    return attributes
