"""A batch from the ingestion queue -> one Runware request, and the messages to deliver again.

The event source mapping hands the submit function up to SubmitBatchSize queue messages; their
sources go to Runware together, and only the messages whose own sources could not be submitted are
reported back as failures (ReportBatchItemFailures), so one bad upload never retries its
neighbours and alone reaches the dead-letter queue after maxReceiveCount receives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from upscaler.source_events import SourceObject, queue_messages

if TYPE_CHECKING:
    from upscaler.submission import SubmitOutcome, Submitter


class MessageNotSubmitted(Exception):
    """Raised for a batch record whose sources must be delivered again."""


@dataclass
class BatchResult:
    outcomes: list[SubmitOutcome] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # message id -> why it is delivered again

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
    result = BatchResult(failed=dict.fromkeys(unreadable, "the message names no S3 object this function reads"))
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
    return result
