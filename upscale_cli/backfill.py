"""Backfill: enqueue the objects already in a bucket/prefix, as if each had just been uploaded.

Each current object version becomes one message on the ingestion queue, shaped as an S3
notification (eventName `ObjectCreated:Backfill`), so it takes the same path as an upload: the job
id derives from bucket, key and version, and running the backfill again (or over objects that were
already upscaled) creates no second job. In a bucket without versioning the identity is the ETag,
so an object first seen through its upload event may be processed once more by a backfill.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

SQS_BATCH = 10  # SendMessageBatch takes at most 10 entries


@dataclass
class BackfillReport:
    bucket: str
    prefix: str
    dry_run: bool
    objects: int = 0  # current object versions found under the prefix
    bytes: int = 0
    enqueued: int = 0
    skipped_folders: int = 0  # zero-byte keys ending in '/', which consoles create as folders


class BackfillFailed(RuntimeError):
    """SQS refused some messages twice."""


def backfill(s3: Any, sqs: Any, *, bucket: str, prefix: str, queue_url: str, dry_run: bool) -> BackfillReport:
    report = BackfillReport(bucket=bucket, prefix=prefix, dry_run=dry_run)
    pending: list[dict[str, Any]] = []
    for version in current_versions(s3, bucket, prefix):
        if version["Key"].endswith("/") and not version.get("Size"):
            report.skipped_folders += 1
            continue
        report.objects += 1
        report.bytes += int(version.get("Size", 0))
        if dry_run:
            continue
        pending.append(version)
        if len(pending) == SQS_BATCH:
            report.enqueued += _send(sqs, queue_url, bucket, pending)
            pending = []
    if pending:
        report.enqueued += _send(sqs, queue_url, bucket, pending)
    return report


def current_versions(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """The current version of every object under the prefix (not older versions, not deleted keys)."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            if version.get("IsLatest"):
                yield version


def notification_for(bucket: str, version: dict[str, Any]) -> dict[str, Any]:
    """An S3 notification naming this object version, keys encoded as S3 encodes them."""
    modified = version.get("LastModified")
    obj: dict[str, Any] = {
        "key": quote_plus(version["Key"], safe="/"),
        "size": int(version.get("Size", 0)),
        "eTag": str(version.get("ETag", "")).strip('"'),
        "sequencer": "",
    }
    if version.get("VersionId") not in (None, "null"):
        obj["versionId"] = version["VersionId"]
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventTime": (modified if isinstance(modified, datetime) else datetime.now(UTC)).isoformat(),
                "eventName": "ObjectCreated:Backfill",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": obj,
                },
            }
        ]
    }


def _send(sqs: Any, queue_url: str, bucket: str, versions: list[dict[str, Any]]) -> int:
    entries = {str(i): json.dumps(notification_for(bucket, v)) for i, v in enumerate(versions)}
    for _ in range(2):
        response = sqs.send_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": i, "MessageBody": body} for i, body in entries.items()]
        )
        entries = {failed["Id"]: entries[failed["Id"]] for failed in response.get("Failed", [])}
        if not entries:
            return len(versions)
    raise BackfillFailed(f"SQS refused {len(entries)} message(s) of a batch twice")
