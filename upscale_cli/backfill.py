"""Backfill: enqueue the objects already in a bucket/prefix, as if each had just been uploaded.

Each current object version without a job yet becomes one message on the ingestion queue, shaped
as an S3 notification (eventName `ObjectCreated:Backfill`), so it takes the same path as an upload:
the job id derives from bucket, key and version. Objects that already have a job (the id the
message would make is in the jobs table) are counted, not sent, so running the backfill again
sends nothing; folder placeholders are ignored, as the submit function ignores them. A dry run
with the stack's settings also says what the new objects would cost (upscale_cli.backfill_estimate).
In a bucket
without versioning the identity is the ETag, so an object first seen through its upload event may
be processed once more by a backfill.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import quote_plus

from upscale_cli.backfill_estimate import BackfillEstimate, estimate
from upscaler.job_record import job_id_for
from upscaler.settings import Settings
from upscaler.source_events import SourceObject, source_objects
from upscaler.storage import ObjectStore

SQS_BATCH = 10  # SendMessageBatch takes at most 10 entries
GET_BATCH = 100  # BatchGetItem reads at most 100 items per request


@dataclass
class BackfillReport:
    bucket: str
    prefix: str
    dry_run: bool
    objects: int = 0  # current object versions found under the prefix, folder placeholders included
    bytes: int = 0
    new: int = 0  # without a job: what the backfill sends (or, in a dry run, would send)
    have_jobs: int = 0  # a job exists for this version already: not sent
    have_jobs_by_status: dict[str, int] = field(default_factory=dict)
    enqueued: int = 0
    skipped_folders: int = 0  # zero-byte keys ending in '/', which consoles create as folders: ignored
    estimate: BackfillEstimate | None = None  # a dry run's, when given the stack's settings

    @property
    def ignored(self) -> int:
        return self.skipped_folders


class BackfillFailed(RuntimeError):
    """SQS refused some messages twice."""


# A page of new sources added to a dry run's estimate (upscale_cli.backfill_estimate.estimate).
Estimating = Callable[[list[SourceObject]], object]


def backfill(
    s3: Any,
    sqs: Any,
    dynamodb: Any,
    *,
    bucket: str,
    prefix: str,
    queue_url: str,
    jobs_table: str,
    dry_run: bool,
    settings: Settings | None = None,
) -> BackfillReport:
    """Enqueue (or, in a dry run, count) the objects under the prefix that have no job; a dry run with
    the stack's settings also estimates what the new ones would cost."""
    report = BackfillReport(bucket=bucket, prefix=prefix, dry_run=dry_run)
    estimating: Estimating | None = None
    if dry_run and settings is not None:
        report.estimate = BackfillEstimate()
        estimating = partial(estimate, settings, ObjectStore(s3), into=report.estimate)
    candidates: list[dict[str, Any]] = []
    for version in current_versions(s3, bucket, prefix):
        report.objects += 1
        report.bytes += int(version.get("Size", 0))
        if version["Key"].endswith("/") and not version.get("Size"):
            report.skipped_folders += 1
            continue
        candidates.append(version)
        if len(candidates) == GET_BATCH:
            _handle(
                report, sqs, dynamodb, candidates, queue_url=queue_url, jobs_table=jobs_table, estimating=estimating
            )
            candidates = []
    if candidates:
        _handle(report, sqs, dynamodb, candidates, queue_url=queue_url, jobs_table=jobs_table, estimating=estimating)
    return report


def _handle(
    report: BackfillReport,
    sqs: Any,
    dynamodb: Any,
    versions: list[dict[str, Any]],
    *,
    queue_url: str,
    jobs_table: str,
    estimating: Estimating | None,
) -> None:
    named = [source_of(report.bucket, version) for version in versions]
    existing = existing_jobs(dynamodb, jobs_table, [source.job_id for source in named])
    new = [
        (source.source, version)
        for source, version in zip(named, versions, strict=True)
        if source.job_id not in existing
    ]
    report.have_jobs += len(versions) - len(new)
    for status in existing.values():
        report.have_jobs_by_status[status] = report.have_jobs_by_status.get(status, 0) + 1
    report.new += len(new)
    if report.dry_run:
        if estimating is not None:
            estimating([source for source, _ in new])
        return
    versions_to_send = [version for _, version in new]
    for start in range(0, len(versions_to_send), SQS_BATCH):
        report.enqueued += _send(sqs, queue_url, report.bucket, versions_to_send[start : start + SQS_BATCH])


@dataclass(frozen=True)
class BackfillSource:
    """An object version as the backfill's message names it, and the job id that message makes."""

    job_id: str
    source: SourceObject


def source_of(bucket: str, version: dict[str, Any]) -> BackfillSource:
    """The source the backfill's message for this version names (the submit function's reading of it)."""
    [source] = source_objects(notification_for(bucket, version))
    return BackfillSource(job_id_for(*source.identity), source)


def existing_jobs(dynamodb: Any, table: str, job_ids: list[str]) -> dict[str, str]:
    """Which of these job ids have an item, and its status (BatchGetItem, at most 100 keys, unprocessed
    keys asked again)."""
    found: dict[str, str] = {}
    request: dict[str, Any] = {
        table: {
            "Keys": [{"jobId": {"S": job_id}} for job_id in job_ids],
            "ProjectionExpression": "jobId, #status",
            "ExpressionAttributeNames": {"#status": "status"},
        }
    }
    while request.get(table, {}).get("Keys"):
        response = dynamodb.batch_get_item(RequestItems=request)
        for item in response.get("Responses", {}).get(table, []):
            found[item["jobId"]["S"]] = item.get("status", {}).get("S", "UNKNOWN")
        request = response.get("UnprocessedKeys") or {}
        if request:
            time.sleep(0.2)  # DynamoDB returns unprocessed keys when throttled: ask again after a pause
    return found


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
