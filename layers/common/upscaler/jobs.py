"""The job store: one DynamoDB item per source object version, moved through its states by
conditional writes so that duplicates and races can never produce a second job or undo an ending.

States: CLAIMED (being submitted) -> SUBMITTED -> COMPLETED | FAILED | TIMED_OUT; REJECTED is
written directly for input that is never sent. The only move out of a terminal state is
TIMED_OUT -> COMPLETED, so a late success is still recorded.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from upscaler.conditional_writes import ConditionalWrite, write_all

STATUS_INDEX = "jobsByStatus"
# What is kept of why a webhook body was unreadable.
MAX_PROBLEM_CHARS = 300


class JobStatus(StrEnum):
    CLAIMED = "CLAIMED"
    SUBMITTED = "SUBMITTED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    TIMED_OUT = "TIMED_OUT"


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.REJECTED, JobStatus.TIMED_OUT})

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def job_id_for(bucket: str, key: str, version: str) -> str:
    """The job id (and Runware taskUUID) of one source object version.

    Derived, not random: every delivery of the same S3 event, and every retry after a crash, names
    the same job, so the table's primary key alone enforces one job per version. The hash is
    shaped as a UUID v4 because Runware requires that format.
    """
    digest = hashlib.sha256(f"{bucket}\x00{key}\x00{version}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class TransitionRefused(Exception):
    """The job was not in a state that allows this change (a duplicate, a race, or a regression)."""

    def __init__(self, job_id: str, current: Mapping[str, Any] | None) -> None:
        self.job_id = job_id
        self.current = dict(current) if current else None
        status = self.current.get("status") if self.current else "missing"
        super().__init__(f"job {job_id} is {status}")


class JobStore:
    def __init__(
        self,
        dynamodb_client: Any,
        table_name: str,
        retention_days: int = 90,
        on_terminal: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> None:
        self._db = dynamodb_client
        self.table_name = table_name
        self.retention_days = retention_days
        # Told of each job right after the write that made it terminal (completion events).
        self.on_terminal = on_terminal

    def get(self, job_id: str) -> dict[str, Any] | None:
        response = self._db.get_item(TableName=self.table_name, Key=_key(job_id), ConsistentRead=True)
        item = response.get("Item")
        return from_dynamodb_item(item) if item else None

    def create(self, job: Mapping[str, Any], status: JobStatus, now: datetime | None = None) -> None:
        """Write a new job item; refused if any job already exists under that id."""
        item = self._new_item(job, status, now or utc_now())
        try:
            self._db.put_item(**self._create_request(item), ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as error:
            raise _refused(job["jobId"], error) from None
        self._ended(item, status)

    def create_all(
        self, jobs: Sequence[tuple[Mapping[str, Any], JobStatus]], now: datetime | None = None
    ) -> list[Exception | None]:
        """create() for each (job, status), in one request per MAX_TRANSACTION_ITEMS jobs instead of one each.

        Per job, in order: None when it was written, TransitionRefused (with the job that exists)
        when there was one, or the error its write met (see upscaler.conditional_writes).
        """
        moment = now or utc_now()
        writes = []
        for job, status in jobs:
            item = self._new_item(job, status, moment)
            writes.append(
                ConditionalWrite(
                    key=str(job["jobId"]),
                    action={"Put": {**self._create_request(item), "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
                    alone=partial(self.create, job, status, moment),
                    refused=partial(_refusal, str(job["jobId"])),
                    written=partial(self._ended, item, status),
                )
            )
        return write_all(self._db, writes)

    def _new_item(self, job: Mapping[str, Any], status: JobStatus, moment: datetime) -> dict[str, Any]:
        return {
            **job,
            "status": status.value,
            "createdAt": iso(moment),
            "updatedAt": iso(moment),
            "expiresAt": int(moment.timestamp()) + self.retention_days * 86400,
        }

    def _create_request(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "TableName": self.table_name,
            "Item": _to_dynamo(item),
            "ConditionExpression": "attribute_not_exists(jobId)",
        }

    def transition(
        self,
        job_id: str,
        allowed_from: frozenset[JobStatus] | set[JobStatus],
        to: JobStatus,
        changes: Mapping[str, Any] | None = None,
        *,
        remove: tuple[str, ...] = (),
        increment: str | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Move a job to `to` if it is currently in one of `allowed_from`; returns the new item."""
        request = self._transition_request(job_id, allowed_from, to, changes, remove, increment, now or utc_now())
        try:
            response = self._db.update_item(
                **request, ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD"
            )
        except ClientError as error:
            raise _refused(job_id, error) from None
        updated = from_dynamodb_item(response["Attributes"])
        self._ended(updated, to)
        return updated

    def transition_all(
        self,
        moves: Sequence[tuple[str, Mapping[str, Any]]],
        allowed_from: frozenset[JobStatus] | set[JobStatus],
        to: JobStatus,
        *,
        remove: tuple[str, ...] = (),
        increment: str | None = None,
        now: datetime | None = None,
    ) -> list[Exception | None]:
        """transition() for each (job id, changes), in one request per MAX_TRANSACTION_ITEMS jobs.

        Per job, in order: None when it moved, TransitionRefused (with the job as it is) when it was
        not in `allowed_from`, or the error its write met. A transaction cannot return the items it
        wrote, so a move to a terminal status (whose completion event needs the whole job) is refused
        here: use transition().
        """
        if to in TERMINAL_STATUSES:
            raise ValueError(f"transition_all cannot end jobs ({to}): use transition()")
        moment = now or utc_now()
        writes = []
        for job_id, changes in moves:
            request = self._transition_request(job_id, allowed_from, to, changes, remove, increment, moment)
            move = partial(self.transition, job_id, allowed_from, to, changes, remove=remove, increment=increment)
            writes.append(
                ConditionalWrite(
                    key=job_id,
                    action={"Update": {**request, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
                    alone=partial(move, now=moment),
                    refused=partial(_refusal, job_id),
                    written=_nothing,
                )
            )
        return write_all(self._db, writes)

    def _transition_request(
        self,
        job_id: str,
        allowed_from: frozenset[JobStatus] | set[JobStatus],
        to: JobStatus,
        changes: Mapping[str, Any] | None,
        remove: tuple[str, ...],
        increment: str | None,
        moment: datetime,
    ) -> dict[str, Any]:
        """The UpdateItem (or transaction Update) that moves one job, conditional on its status."""
        values: dict[str, Any] = {k: v for k, v in (changes or {}).items() if v is not None}
        values.update({"status": to.value, "updatedAt": iso(moment)})
        names: dict[str, str] = {}
        placeholders: dict[str, Any] = {}
        sets: list[str] = []
        for index, (name, value) in enumerate(values.items()):
            names[f"#f{index}"] = name
            placeholders[f":v{index}"] = value
            sets.append(f"#f{index} = :v{index}")
        if increment:
            names["#inc"] = increment
            placeholders[":zero"] = 0
            placeholders[":one"] = 1
            sets.append("#inc = if_not_exists(#inc, :zero) + :one")
        allowed = sorted(status.value for status in allowed_from)
        for index, status in enumerate(allowed):
            placeholders[f":from{index}"] = status
        names["#status"] = "status"
        expression = "SET " + ", ".join(sets)
        if remove:
            for index, name in enumerate(remove):
                names[f"#r{index}"] = name
            expression += " REMOVE " + ", ".join(f"#r{index}" for index in range(len(remove)))
        condition = "#status IN (" + ", ".join(f":from{i}" for i in range(len(allowed))) + ")"
        return {
            "TableName": self.table_name,
            "Key": _key(job_id),
            "UpdateExpression": expression,
            "ConditionExpression": f"attribute_exists(jobId) AND {condition}",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": _to_dynamo(placeholders),
        }

    def _ended(self, job: Mapping[str, Any], status: JobStatus) -> None:
        if self.on_terminal is not None and status in TERMINAL_STATUSES:
            self.on_terminal(job)

    def count_malformed_reports(self, job_id: str, count: int, problem: str, now: datetime | None = None) -> bool:
        """Add `count` to the job's malformedReports and note the last problem; the status is left alone.
        False when there is no such job."""
        try:
            self._db.update_item(
                TableName=self.table_name,
                Key=_key(job_id),
                UpdateExpression="SET #problem = :problem, #at = :at ADD #count :count",
                ConditionExpression="attribute_exists(jobId)",
                ExpressionAttributeNames={
                    "#count": "malformedReports",
                    "#problem": "lastMalformedReport",
                    "#at": "lastMalformedReportAt",
                },
                ExpressionAttributeValues=_to_dynamo(
                    {":count": count, ":problem": problem[:MAX_PROBLEM_CHARS], ":at": iso(now or utc_now())}
                ),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def find_by_status(
        self,
        status: JobStatus,
        *,
        created_before: datetime | None = None,
        created_after: datetime | None = None,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Jobs in one status through the status index (a query, never a scan), oldest first."""
        if created_before is not None and created_after is not None:
            raise ValueError("give created_before or created_after, not both")
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": "#status = :status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":status": {"S": status.value}},
            "ScanIndexForward": not newest_first,
        }
        if created_before is not None:
            kwargs["KeyConditionExpression"] += " AND createdAt < :before"
            kwargs["ExpressionAttributeValues"][":before"] = {"S": iso(created_before)}
        if created_after is not None:
            kwargs["KeyConditionExpression"] += " AND createdAt > :after"
            kwargs["ExpressionAttributeValues"][":after"] = {"S": iso(created_after)}
        returned = 0
        while True:
            if limit is not None:
                kwargs["Limit"] = max(1, limit - returned)
            response = self._db.query(**kwargs)
            for item in response.get("Items", []):
                yield from_dynamodb_item(item)
                returned += 1
                if limit is not None and returned >= limit:
                    return
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _key(job_id: str) -> dict[str, Any]:
    return {"jobId": {"S": job_id}}


def _refused(job_id: str, error: ClientError) -> Exception:
    if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
        return error
    return _refusal(job_id, error.response.get("Item"))


def _refusal(job_id: str, item: Mapping[str, Any] | None) -> TransitionRefused:
    """A failed condition, with the job as it is (an item in DynamoDB's JSON) when DynamoDB returned it."""
    return TransitionRefused(job_id, from_dynamodb_item(item) if item else None)


def _nothing() -> None:
    """Nothing follows a move that ends no job."""


def _to_dynamo(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(_storable(value)) for name, value in values.items() if value is not None}


def _storable(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items() if v is not None}
    return value


def from_dynamodb_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _plain(_deserializer.deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    # Whole numbers back as int so callers compare and print them naturally; cost stays Decimal.
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((parse_iso(end) - parse_iso(start)).total_seconds(), 3)
