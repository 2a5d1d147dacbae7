"""Source objects from the events that reach the submit function.

Accepted shapes:
- the ingestion queue's SQS batch, each message body being one of the shapes below;
- an S3 event notification (`Records` of `aws:s3` ObjectCreated records), as S3 sends it to the queue
  (or, before the queue existed, to the function);
- S3's `s3:TestEvent`, sent once when a notification is configured: no objects;
- an EventBridge `Object Created` event from `aws.s3` (a bucket with EventBridge notifications on);
- a Lambda on-failure destination record whose `requestPayload` is one of these (dead letters
  written before the ingestion queue existed).
Keys are URL-encoded with '+' for spaces in both S3 shapes (S3 notifications: AWS's documented
message structure; EventBridge: Powertools' S3EventBridgeNotificationObject decodes them the same way).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


class UnrecognisedEvent(ValueError):
    """The event holds neither S3 records, EventBridge S3 events nor SQS messages wrapping them."""


EXPECTED_EVENT = (
    "the submit function reads the ingestion queue's SQS batch (events/sqs-ingest-batch.json), or an S3 "
    "notification / EventBridge Object Created event (events/s3-put-plain.json)"
)


def as_queue_batch(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """The event as the ingestion queue delivers it: an SQS batch is returned as it is; an S3
    notification (its Records of `aws:s3`, as `sam local invoke -e` or a direct S3 -> Lambda wiring
    hands it over) or an EventBridge S3 event becomes a batch of one message per record, each
    message's body being the notification S3 would have sent the queue. The message ids are made
    up (`direct-<n>`), so a partial failure names them: there is no queue to deliver them again.
    Anything else: UnrecognisedEvent, naming the batch expected and the sample event to use.
    """
    records = event.get("Records") if isinstance(event, Mapping) else None
    if isinstance(records, list) and records and all(_is_sqs_record(record) for record in records):
        return event
    if isinstance(records, list) and records and all(_is_s3_record(record) for record in records):
        bodies: list[Mapping[str, Any]] = [{"Records": [record]} for record in records]
    elif isinstance(event, Mapping) and (event.get("source") == "aws.s3" or event.get("Event") == "s3:TestEvent"):
        bodies = [event]
    else:
        shape = f"keys {sorted(event)[:6]}" if isinstance(event, Mapping) else type(event).__name__
        raise UnrecognisedEvent(f"unrecognised event ({shape}): {EXPECTED_EVENT}")
    return {
        "Records": [
            {
                "messageId": f"direct-{index}",
                "receiptHandle": "",
                "body": json.dumps(body),
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "",
            }
            for index, body in enumerate(bodies)
        ]
    }


def _is_sqs_record(record: Any) -> bool:
    return isinstance(record, Mapping) and record.get("eventSource") == "aws:sqs"


def _is_s3_record(record: Any) -> bool:
    return isinstance(record, Mapping) and record.get("eventSource") == "aws:s3"


@dataclass(frozen=True)
class SourceObject:
    bucket: str
    key: str
    version_id: str | None
    etag: str
    size: int
    sequencer: str
    event_time: str

    @property
    def version(self) -> str:
        """What tells this upload apart from other uploads of the same key."""
        return self.version_id or f"{self.etag}:{self.sequencer}"

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.bucket, self.key, self.version)


@dataclass(frozen=True)
class QueueMessage:
    """One SQS message of a batch and the source objects its body names."""

    message_id: str
    sources: tuple[SourceObject, ...]


def source_objects(event: Mapping[str, Any]) -> list[SourceObject]:
    """Every ObjectCreated record in the event, in order, once per object version."""
    seen: set[tuple[str, str, str]] = set()
    objects: list[SourceObject] = []
    for source in _sources(event):
        if source.identity not in seen:
            seen.add(source.identity)
            objects.append(source)
    return objects


def queue_messages(event: Mapping[str, Any]) -> tuple[list[QueueMessage], list[str]]:
    """The messages of an SQS batch with their sources, and the ids of messages that name none
    readable (a malformed body fails only its own message)."""
    records = event.get("Records")
    if not isinstance(records, list):
        raise UnrecognisedEvent("the event has no Records list")
    messages: list[QueueMessage] = []
    unreadable: list[str] = []
    for record in records:
        message_id = str(record.get("messageId", ""))
        try:
            if record.get("eventSource") != "aws:sqs":
                raise UnrecognisedEvent(f"unexpected event source {record.get('eventSource')!r}")
            messages.append(QueueMessage(message_id, tuple(source_objects(_body(record)))))
        except (UnrecognisedEvent, KeyError, TypeError, ValueError):
            unreadable.append(message_id)
    return messages, unreadable


def _body(record: Mapping[str, Any]) -> Mapping[str, Any]:
    try:
        body = json.loads(record["body"])
    except (KeyError, TypeError, ValueError) as error:
        raise UnrecognisedEvent(f"SQS message body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise UnrecognisedEvent("SQS message body is not a JSON object")
    return body


def _sources(event: Mapping[str, Any]) -> Iterator[SourceObject]:
    if event.get("Event") == "s3:TestEvent":
        return
    if "requestPayload" in event:  # a Lambda destination record
        yield from _sources(event["requestPayload"])
        return
    if event.get("source") == "aws.s3" and "detail-type" in event:
        if event["detail-type"] == "Object Created":
            yield _eventbridge_source(event)
        return
    records = event.get("Records")
    if not isinstance(records, list):
        raise UnrecognisedEvent("the event has no Records list")
    for record in records:
        source = record.get("eventSource")
        if source == "aws:s3":
            if str(record.get("eventName", "")).startswith("ObjectCreated"):
                yield _notification_source(record)
        elif source == "aws:sqs":
            yield from _sources(_body(record))
        else:
            raise UnrecognisedEvent(f"unexpected event source {source!r}")


def _notification_source(record: Mapping[str, Any]) -> SourceObject:
    s3 = record["s3"]
    obj = s3["object"]
    return SourceObject(
        bucket=s3["bucket"]["name"],
        # S3 URL-encodes keys in events with '+' for spaces; a literal '+' arrives as %2B.
        key=unquote_plus(obj["key"]),
        version_id=obj.get("versionId") or None,
        etag=str(obj.get("eTag", "")).strip('"'),
        size=int(obj.get("size", 0)),
        sequencer=str(obj.get("sequencer", "")),
        event_time=str(record.get("eventTime", "")),
    )


def _eventbridge_source(event: Mapping[str, Any]) -> SourceObject:
    detail = event["detail"]
    obj = detail["object"]
    version_id = obj.get("version-id")
    return SourceObject(
        bucket=detail["bucket"]["name"],
        key=unquote_plus(obj["key"]),
        version_id=version_id if version_id and version_id != "null" else None,
        etag=str(obj.get("etag", "")).strip('"'),
        size=int(obj.get("size", 0)),
        sequencer=str(obj.get("sequencer", "")),
        event_time=str(event.get("time", "")),
    )
