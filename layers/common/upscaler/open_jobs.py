"""The open-jobs index: a sparse, write-sharded index of the jobs not yet terminal.

A job carries `openShard` (a shard number derived from its id) and `openSince` (when it opened)
from the write that creates it open until the write that ends it, which removes both; the job
store writes them on those transitions and nowhere else (upscaler.jobs). DynamoDB keeps an item
in an index only while it has the index's key attributes (a sparse index), so the index holds the
open jobs and nothing else: a finished job costs it nothing, and is found by its key.

Sizing ("Throughput capacity" and "Best practices for designing and using partition keys" in the
DynamoDB developer guide): one partition key value takes at most 1,000 write units per second,
and a throttled index throttles the table's writes. A job writes the index three times, each an
item well under 1 KB (one write unit): a put when it is claimed, an update of the projected status
when it is submitted, a delete when it ends. The shard comes from a hash of the job id, so the
jobs spread evenly; OPEN_SHARDS is chosen so that a pipeline as fast as the account's API Gateway
quota lets webhooks arrive (10,000 requests per second, "Amazon API Gateway quotas") stays under
the partition ceiling: 10,000 x 3 / 32 = 938 write units per second per shard. The sort key is the
opening instant, so each shard is read oldest first.

OPEN_SHARDS may be raised (readers query every shard up to it) but never lowered while jobs are
open: a job keeps the shard it was given.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from upscaler.clock import iso
from upscaler.job_record import JobStatus, attribute_name

OPEN_INDEX = "openJobs"
OPEN_SHARDS = 32
# The fields the store sets when a job opens and removes when it ends.
INDEX_FIELDS = ("open_shard", "open_since")
# What the index projects besides its keys and the table's key: enough to pick jobs without reading them.
PROJECTED_FIELDS = ("status",)


def open_shard(job_id: str, shards: int = OPEN_SHARDS) -> int:
    """The job's shard: a hash of its id, so any id (not only a UUID) spreads evenly."""
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4], "big") % shards


def index_keys(job_id: str, opened: datetime) -> dict[str, Any]:
    """The Job fields that put a job in the index, as of the instant it opened."""
    return {"open_shard": open_shard(job_id), "open_since": iso(opened)}


@dataclass(frozen=True)
class OpenJob:
    """A job as the index shows it: its key, status and when it opened."""

    job_id: str
    status: JobStatus
    open_since: str
    shard: int


class OpenJobs:
    """Reads the open-jobs index: one query per shard, never a scan."""

    def __init__(self, dynamodb_client: Any, table_name: str, shards: int = OPEN_SHARDS) -> None:
        self._db = dynamodb_client
        self.table_name = table_name
        self.shards = shards

    def in_shard(
        self,
        shard: int,
        *,
        opened_before: datetime | None = None,
        status: JobStatus | None = None,
        newest_first: bool = False,
        page_size: int | None = None,
    ) -> Iterator[OpenJob]:
        """One shard's open jobs, oldest first (every page, read as iterated)."""
        names = {"#shard": attribute_name("open_shard")}
        values: dict[str, Any] = {":shard": {"N": str(shard)}}
        condition = "#shard = :shard"
        if opened_before is not None:
            names["#since"] = attribute_name("open_since")
            condition += " AND #since < :before"
            values[":before"] = {"S": iso(opened_before)}
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": OPEN_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not newest_first,
        }
        if status is not None:
            names["#status"] = attribute_name("status")
            values[":status"] = {"S": status.value}
            kwargs["FilterExpression"] = "#status = :status"
        if page_size is not None:
            kwargs["Limit"] = page_size
        while True:
            page = self._db.query(**kwargs)
            for item in page.get("Items", []):
                found = _open_job(item)
                if found is not None:
                    yield found
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def oldest(
        self, *, opened_before: datetime | None = None, status: JobStatus | None = None, page_size: int = 100
    ) -> Iterator[OpenJob]:
        """Open jobs across every shard, oldest first (each shard's pages read only as far as needed)."""
        streams = [
            self.in_shard(shard, opened_before=opened_before, status=status, page_size=page_size)
            for shard in range(self.shards)
        ]
        yield from heapq.merge(*streams, key=lambda job: job.open_since)

    def newest(self, *, status: JobStatus | None = None, page_size: int = 100) -> Iterator[OpenJob]:
        """Open jobs across every shard, newest first."""
        streams = [
            self.in_shard(shard, status=status, newest_first=True, page_size=page_size) for shard in range(self.shards)
        ]
        yield from heapq.merge(*streams, key=lambda job: job.open_since, reverse=True)

    def oldest_open_since(self) -> str | None:
        """When the oldest open job opened (one single-item query per shard); None when none is open."""
        firsts = [next(self.in_shard(shard, page_size=1), None) for shard in range(self.shards)]
        found = [job.open_since for job in firsts if job is not None]
        return min(found) if found else None

    def count_by_status(self) -> dict[JobStatus, int]:
        """Open jobs per status, reading the index's small items (keys and status only)."""
        counts: dict[JobStatus, int] = {}
        for shard in range(self.shards):
            for job in self.in_shard(shard, page_size=1000):
                counts[job.status] = counts.get(job.status, 0) + 1
        return counts


def _open_job(item: dict[str, Any]) -> OpenJob | None:
    try:
        return OpenJob(
            job_id=item["jobId"]["S"],
            status=JobStatus(item[attribute_name("status")]["S"]),
            open_since=item[attribute_name("open_since")]["S"],
            shard=int(item[attribute_name("open_shard")]["N"]),
        )
    except (KeyError, ValueError):  # an item written by hand or by a newer version: not ours to read
        return None
