"""Reading jobs for the commands: counts and newest jobs through the jobsByStatus index, never a scan."""

from __future__ import annotations

import re
from typing import Any

from upscale_cli.errors import UsageError
from upscale_cli.target import Target
from upscaler.job_record import JobStatus, job_id_for, record_from_item
from upscaler.jobs import STATUS_INDEX, JobStore

JOB_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
STATUS_ORDER = [status.value for status in JobStatus]


def count_by_status(target: Target) -> dict[str, int]:
    """Items per status: a COUNT query per status on the index, following every page."""
    dynamodb = target.client("dynamodb")
    counts: dict[str, int] = {}
    for status in JobStatus:
        kwargs: dict[str, Any] = {
            "TableName": target.jobs_table,
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":s": {"S": status.value}},
            "Select": "COUNT",
        }
        total = 0
        while True:
            page = dynamodb.query(**kwargs)
            total += int(page.get("Count", 0))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        counts[status.value] = total
    return counts


def newest_jobs(target: Target, limit: int, statuses: list[str] | None = None) -> list[dict[str, Any]]:
    """The `limit` most recently created jobs across the given statuses (default: all)."""
    store = JobStore(target.client("dynamodb"), target.jobs_table)
    jobs: list[dict[str, Any]] = []
    for status in statuses or STATUS_ORDER:
        jobs.extend(job.to_record() for job in store.find_by_status(JobStatus(status), newest_first=True, limit=limit))
    jobs.sort(key=lambda job: job.get("createdAt", ""), reverse=True)
    return jobs[:limit]


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
    none (the object is gone, or the bucket was unversioned), a query per status filtered on sourceKey,
    which reads the whole index.
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
    dynamodb = target.client("dynamodb")
    for status in STATUS_ORDER:
        kwargs: dict[str, Any] = {
            "TableName": target.jobs_table,
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": "#s = :s",
            "FilterExpression": "sourceKey = :k AND sourceBucket = :b",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                ":s": {"S": status},
                ":k": {"S": key},
                ":b": {"S": target.inbox_bucket},
            },
        }
        while True:
            page = dynamodb.query(**kwargs)
            for item in page.get("Items", []):
                job = record_from_item(item)
                found.setdefault(job["jobId"], job)
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted(found.values(), key=lambda job: job.get("createdAt", ""), reverse=True)
