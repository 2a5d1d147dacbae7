"""The uploads `watch --until-idle` waits for: inbox objects of the watched window (or the keys named),
each until it has a finished job.

A job is the upload's when it names the same key and was created after the object was last
modified (S3 keeps LastModified to the second, so a second of slack). Folder placeholders get no
job (the submit function ignores them) and are not waited for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from upscale_cli.target import Target
from upscaler.clock import parse_iso
from upscaler.job_record import TERMINAL_STATUSES, job_id_for

CLOCK_SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class Upload:
    key: str
    modified: datetime
    version_id: str | None = None  # None (or "null") in a bucket without versioning

    def job_id(self, bucket: str) -> str | None:
        """The id of this upload's own job, found by key (an ended job is in no index)."""
        if not self.version_id or self.version_id == "null":
            return None
        return job_id_for(bucket, self.key, self.version_id)


def inbox_uploads(target: Target, since: datetime, keys: list[str] | None = None) -> list[Upload]:
    """Inbox objects modified at or after `since` (all of the named `keys` that exist, whenever modified)."""
    s3 = target.client("s3")
    uploads: list[Upload] = []
    if keys:
        for key in keys:
            head = _head(s3, target.inbox_bucket, key)
            if head is not None:
                uploads.append(Upload(key, head["LastModified"], head.get("VersionId")))
        return uploads
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=target.inbox_bucket, Prefix=target.inbox_prefix)
    for page in pages:
        for item in page.get("Versions", []):
            if not item.get("IsLatest") or (item["Key"].endswith("/") and not item.get("Size")):
                continue
            if item["LastModified"] >= since:
                uploads.append(Upload(item["Key"], item["LastModified"], item.get("VersionId")))
    return uploads


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return s3.head_object(Bucket=bucket, Key=key)  # type: ignore[no-any-return]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def unfinished(uploads: list[Upload], jobs: dict[str, dict[str, Any]]) -> list[Upload]:
    """The uploads without a finished job of their own among `jobs`."""
    finished: dict[str, list[datetime]] = {}
    for job in jobs.values():
        if job.get("status") in TERMINAL_STATUSES and job.get("sourceKey") and job.get("createdAt"):
            finished.setdefault(job["sourceKey"], []).append(parse_iso(job["createdAt"]))
    return [
        upload
        for upload in uploads
        if not any(created >= upload.modified - CLOCK_SLACK for created in finished.get(upload.key, []))
    ]
