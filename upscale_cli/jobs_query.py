"""Reading jobs for the commands: open jobs through the open-jobs index, the others by key, never a scan."""

from __future__ import annotations

import itertools
import re
from typing import Any

from upscale_cli.errors import UsageError
from upscale_cli.target import Target
from upscaler.job_record import OPEN_STATUSES, JobStatus, job_id_for
from upscaler.jobs import JobStore
from upscaler.open_jobs import OpenJobs

JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
STATUS_ORDER = [status.value for status in JobStatus]


def count_by_status(target: Target) -> dict[str, int]:
    """Open jobs per status (CLAIMED, SUBMITTED), one query per shard of the open-jobs index. Ended
    jobs are in no index (they are read by key): the completion events count them."""
    counts = OpenJobs(target.client("dynamodb"), target.jobs_table).count_by_status()
    return {status.value: counts.get(status, 0) for status in JobStatus if status in OPEN_STATUSES}


def newest_jobs(target: Target, limit: int, statuses: list[str] | None = None) -> list[dict[str, Any]]:
    """The `limit` most recently opened jobs still open (of the given open statuses; default: all)."""
    dynamodb = target.client("dynamodb")
    wanted = {JobStatus(status) for status in statuses} if statuses else set(OPEN_STATUSES)
    ids = [job.job_id for job in itertools.islice(
        (job for job in OpenJobs(dynamodb, target.jobs_table).newest() if job.status in wanted), limit
    )]  # fmt: skip
    found = JobStore(dynamodb, target.jobs_table).get_many(ids)
    jobs = [found[job_id].to_record() for job_id in ids if job_id in found]
    return sorted(jobs, key=lambda job: job.get("createdAt", ""), reverse=True)


def get_job(target: Target, job_id: str) -> dict[str, Any] | None:
    job = JobStore(target.client("dynamodb"), target.jobs_table).get(job_id)
    return job.to_record() if job else None


def source_key(target: Target, reference: str) -> str:
    """The inbox key a user means: `s3://bucket/key`, a key with the inbox prefix, or one below it."""
    if reference.startswith("s3://"):
        bucket, _, key = reference[5:].partition("/")
        if bucket != target.inbox_bucket:
            raise UsageError(
                f"{reference} is not in the inbox bucket s3://{target.inbox_bucket}/ of {target.description}"
            )
        return key
    return reference if reference.startswith(target.inbox_prefix) else target.inbox_prefix + reference


def jobs_for_key(target: Target, key: str) -> list[dict[str, Any]]:
    """Every job of one inbox key, newest first.

    Through the job id derivation (one id per object version still in the bucket); when that finds
    none (the object is gone, or the bucket was unversioned), the open jobs of that key (an ended job
    of a deleted object is found by its id, `s3-upscale job <id>`).
    """
    store = JobStore(target.client("dynamodb"), target.jobs_table)
    found: dict[str, dict[str, Any]] = {}
    s3 = target.client("s3")
    paginator = s3.get_paginator("list_object_versions")
    try:
        for page in paginator.paginate(Bucket=target.inbox_bucket, Prefix=key):
            for version in page.get("Versions", []):
                if version["Key"] != key:
                    continue
                job = store.get(job_id_for(target.inbox_bucket, key, version["VersionId"]))
                if job:
                    found[job.job_id] = job.to_record()
    except Exception:  # no list permission, or the bucket is gone: the index query below still answers
        pass
    if found:
        return sorted(found.values(), key=lambda job: job.get("createdAt", ""), reverse=True)
    # The object is gone or the bucket unversioned: the open jobs of that key, from the open-jobs index.
    open_ids = [job.job_id for job in OpenJobs(target.client("dynamodb"), target.jobs_table).oldest()]
    for job in store.get_many(open_ids).values():
        if job.source_key == key and job.source_bucket == target.inbox_bucket:
            found.setdefault(job.job_id, job.to_record())
    return sorted(found.values(), key=lambda job: job.get("createdAt", ""), reverse=True)
