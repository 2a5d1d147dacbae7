"""S3 event notifications with every field real S3 sends, to SQS and to EventBridge.

moto's notifications leave out `versionId` and `sequencer`, which the pipeline relies on to tell
uploads of the same key apart; this adds them, from the stored object and a per-process counter.
Its EventBridge events carry the key unencoded, `eTag` for `etag` and a fixed sequencer; this sends
the shape of AWS's documented example instead (EventBridge event message structure), with the key
URL-encoded as in notifications (as Powertools' S3EventBridgeNotificationObject expects).
"""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

_sequence = itertools.count(1)
_lock = threading.Lock()
_installed = False
# detail.reason of an Object Created event, by the API that created the object (AWS's documentation).
_REASONS = {"Put": "PutObject", "Post": "POST Object", "Copy": "CopyObject"}


def _next_sequencer() -> str:
    with _lock:
        return f"{next(_sequence):016X}"


def add_missing_event_fields() -> None:
    global _installed
    if _installed:
        return
    from moto.s3 import notifications

    original = notifications._get_s3_event

    def complete_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event = original(event_name, bucket, key, notification_id)
        sequencer = _next_sequencer()
        for record in event["Records"]:
            obj = record["s3"]["object"]
            obj["sequencer"] = sequencer
            if bucket.is_versioned and getattr(key, "version_id", None) not in (None, "null"):
                obj["versionId"] = key.version_id
        return event

    def send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        from moto.events.models import events_backends

        detail_type = notifications._detail_type(event_name)
        version_id = getattr(key, "version_id", None) if bucket.is_versioned else None
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": "aws.s3",
            "account": account_id,
            "time": datetime.now(UTC).timestamp(),  # moto's SQS target turns this into ISO 8601
            "region": bucket.region_name,
            "resources": [bucket.arn],
            "detail": {
                "version": "0",
                "bucket": {"name": bucket.name},
                "object": {
                    "key": quote_plus(key.name, safe="/"),
                    "size": key.size,
                    "etag": key.etag.replace('"', ""),
                    **({"version-id": version_id} if version_id not in (None, "null") else {}),
                    "sequencer": _next_sequencer(),
                },
                "request-id": uuid.uuid4().hex[:16].upper(),
                "requester": account_id,
                "source-ip-address": "127.0.0.1",
                "reason": _REASONS.get(event_name.rsplit(":", 1)[-1], event_name.rsplit(":", 1)[-1]),
            },
        }
        backend = events_backends[account_id][bucket.region_name]
        for event_bus in list(backend.event_buses.values()):
            for rule in list(event_bus.rules.values()):
                rule.send_to_targets(copy.deepcopy(event), transform_input=False)

    notifications._get_s3_event = complete_event
    notifications._send_event_bridge_message = send_event_bridge_message
    _installed = True
