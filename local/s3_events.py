"""S3 event notifications with every field real S3 sends.

moto's notifications leave out `versionId` and `sequencer`, which the pipeline relies on to tell
uploads of the same key apart; this adds them, from the stored object and a per-process counter.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

_sequence = itertools.count(1)
_lock = threading.Lock()
_installed = False


def add_missing_event_fields() -> None:
    global _installed
    if _installed:
        return
    from moto.s3 import notifications

    original = notifications._get_s3_event

    def complete_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event = original(event_name, bucket, key, notification_id)
        with _lock:
            sequencer = f"{next(_sequence):016X}"
        for record in event["Records"]:
            obj = record["s3"]["object"]
            obj["sequencer"] = sequencer
            if bucket.is_versioned and getattr(key, "version_id", None) not in (None, "null"):
                obj["versionId"] = key.version_id
        return event

    notifications._get_s3_event = complete_event
    _installed = True
