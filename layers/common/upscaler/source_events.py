"""Source objects from the events that reach the submit function.

Accepted shapes: an S3 ObjectCreated notification; the same wrapped in SQS messages (re-drive),
either as the notification itself or as a Lambda on-failure destination record whose
`requestPayload` is the original event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


class UnrecognisedEvent(ValueError):
    """The event holds neither S3 records nor SQS messages wrapping them."""


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


def source_objects(event: Mapping[str, Any]) -> list[SourceObject]:
    """Every ObjectCreated record in the event, in order, once per object version."""
    seen: set[tuple[str, str, str]] = set()
    objects: list[SourceObject] = []
    for record in _s3_records(event):
        source = _source(record)
        identity = (source.bucket, source.key, source.version)
        if identity not in seen:
            seen.add(identity)
            objects.append(source)
    return objects


def _s3_records(event: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    if event.get("Event") == "s3:TestEvent":
        return
    if "requestPayload" in event:  # a Lambda destination record
        yield from _s3_records(event["requestPayload"])
        return
    records = event.get("Records")
    if not isinstance(records, list):
        raise UnrecognisedEvent("the event has no Records list")
    for record in records:
        source = record.get("eventSource")
        if source == "aws:s3":
            if str(record.get("eventName", "")).startswith("ObjectCreated"):
                yield record
        elif source == "aws:sqs":
            try:
                body = json.loads(record["body"])
            except (KeyError, TypeError, ValueError) as error:
                raise UnrecognisedEvent(f"SQS message body is not JSON: {error}") from None
            yield from _s3_records(body)
        else:
            raise UnrecognisedEvent(f"unexpected event source {source!r}")


def _source(record: Mapping[str, Any]) -> SourceObject:
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
