"""The job store: one DynamoDB item per source object version, moved through its states by
conditional writes so that duplicates and races can never produce a second job or undo an ending.

`TRANSITIONS` is the state machine, and the only place that says which status may follow which:
each row names the statuses a job may be in (none: it must not exist yet), the status it moves to,
and any further condition, and the store writes exactly that condition. Every write of a job's
status goes through a row. The one other write, counting unreadable reports on a job, leaves its
status alone.

CLAIMED (being submitted) -> SUBMITTED -> COMPLETED | FAILED | TIMED_OUT; REJECTED is written
directly for input that is never sent. A verified output completes a job that had failed or timed
out, and one rejected after its claim (Runware may have accepted, and billed, it already). A
SUBMITTED job whose result was lost on its way to the bucket is sent again once (SUBMITTED ->
SUBMITTED, under a new task UUID).

The open-jobs index (upscaler.open_jobs) follows the same rows: a transition into an open status
from none (or from a terminal one) sets the job's index keys, and every transition into a terminal
status removes them, in the same write. No other code writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from upscaler.clock import iso, parse_iso, utc_now
from upscaler.conditional_writes import ConditionalWrite, write_all
from upscaler.job_record import (
    OPEN_STATUSES,
    TERMINAL_STATUSES,
    Job,
    JobStatus,
    attribute_name,
    to_attribute_values,
)
from upscaler.open_jobs import INDEX_FIELDS, index_keys
from upscaler.parallel import ThreadHandoff

# Most keys of one BatchGetItem request (DynamoDB's limit).
BATCH_GET_KEYS = 100
# What is kept of why a webhook body was unreadable.
MAX_PROBLEM_CHARS = 300

CLAIMED, SUBMITTED, COMPLETED = JobStatus.CLAIMED, JobStatus.SUBMITTED, JobStatus.COMPLETED
FAILED, REJECTED, TIMED_OUT = JobStatus.FAILED, JobStatus.REJECTED, JobStatus.TIMED_OUT


@dataclass(frozen=True)
class Transition:
    name: str
    before: frozenset[JobStatus]  # the statuses the job may be in; empty: it must not exist yet
    after: JobStatus
    # A further condition on the item, as written (attribute names as in the table).
    also: str | None = None

    @property
    def creates(self) -> bool:
        return not self.before

    @property
    def opens(self) -> bool:
        """Whether the job enters the open-jobs index by this move (it was not open before)."""
        return self.after in OPEN_STATUSES and not self.before & OPEN_STATUSES

    @property
    def ends(self) -> bool:
        """Whether the job leaves the open-jobs index by this move (its new status is terminal)."""
        return self.after in TERMINAL_STATUSES


def _row(name: str, before: set[JobStatus], after: JobStatus, also: str | None = None) -> Transition:
    return Transition(name, frozenset(before), after, also)


CLAIM = _row("claim", set(), CLAIMED)
REJECT = _row("reject", set(), REJECTED)
# The source was deleted or replaced before a retried claim was sent.
REJECT_CLAIMED = _row("rejectClaimed", {CLAIMED}, REJECTED)
# Runware refused the account: the job waits, with the reason noted.
WAIT_FOR_ACCOUNT = _row("waitForAccount", {CLAIMED}, CLAIMED)
SUBMIT = _row("submit", {CLAIMED}, SUBMITTED)
# Runware refused the task itself when it was sent.
FAIL_SUBMISSION = _row("failSubmission", {CLAIMED}, FAILED)
# Runware reported the task failed (webhook or getResponse), and no verified output exists.
FAIL = _row("fail", {CLAIMED, SUBMITTED}, FAILED)
TIME_OUT = _row("timeOut", {SUBMITTED}, TIMED_OUT)
# A verified output in the bucket: whatever was reported before, the job completes.
COMPLETE = _row("complete", {CLAIMED, SUBMITTED, FAILED, TIMED_OUT}, COMPLETED)
COMPLETE_REJECTED = _row("completeRejected", {REJECTED}, COMPLETED, "rejectedAfterClaim = :true")
# Runware made the result but it never reached the bucket and can no longer be fetched: the job is
# sent again, once only (no earlier resubmission), under a task UUID of its own.
RESUBMIT = _row("resubmit", {SUBMITTED}, SUBMITTED, "attribute_not_exists(resubmissions)")

TRANSITIONS = (
    CLAIM,
    REJECT,
    REJECT_CLAIMED,
    WAIT_FOR_ACCOUNT,
    SUBMIT,
    FAIL_SUBMISSION,
    FAIL,
    TIME_OUT,
    COMPLETE,
    COMPLETE_REJECTED,
    RESUBMIT,
)


def completion_for(job: Job) -> Transition | None:
    """The transition by which a verified output completes this job, or None when nothing may."""
    if job.status in COMPLETE.before:
        return COMPLETE
    if job.status is REJECTED and job.rejected_after_claim:
        return COMPLETE_REJECTED
    return None


class TransitionRefused(Exception):
    """The job was not in a state that allows this change (a duplicate, a race, or a regression)."""

    def __init__(self, job_id: str, current: Job | None) -> None:
        self.job_id = job_id
        self.current = current
        status = current.status if current else "missing"
        super().__init__(f"job {job_id} is {status}")


class JobStore:
    def __init__(
        self,
        dynamodb_client: Any,
        table_name: str,
        retention_days: int = 90,
        on_terminal: Callable[[Job], None] | None = None,
        handoff: ThreadHandoff | None = None,
    ) -> None:
        self._db = dynamodb_client
        self.table_name = table_name
        self.retention_days = retention_days
        # Told of each job right after the write that made it terminal (completion events).
        self.on_terminal = on_terminal
        # Gives the threads of create_all and move_all the caller's trace context (upscaler.parallel).
        self.handoff = handoff

    def get(self, job_id: str) -> Job | None:
        response = self._db.get_item(TableName=self.table_name, Key=_key(job_id), ConsistentRead=True)
        item = response.get("Item")
        return Job.from_item(item) if item else None

    def create(self, job: Job, transition: Transition, now: datetime | None = None) -> Job:
        """Write a new job by a creating transition; refused if any job already exists under that id."""
        written = self._new(job, transition, now or utc_now())
        try:
            self._db.put_item(**self._create_request(written), ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except ClientError as error:
            raise _refused(job.job_id, error) from None
        self._ended(written)
        return written

    def create_all(self, jobs: Sequence[tuple[Job, Transition]], now: datetime | None = None) -> list[Exception | None]:
        """create() for each (job, transition), the writes made at once (upscaler.conditional_writes).

        Per job, in order: None when it was written, TransitionRefused (with the job that exists)
        when there was one, or the error its write met.
        """
        moment = now or utc_now()
        writes = [
            ConditionalWrite(key=job.job_id, alone=partial(self.create, job, transition, moment))
            for job, transition in jobs
        ]
        return write_all(writes, handoff=self.handoff)

    def _new(self, job: Job, transition: Transition, moment: datetime) -> Job:
        if not transition.creates:
            raise ValueError(f"{transition.name} moves an existing job; it cannot create one")
        opened = index_keys(job.job_id, moment) if transition.opens else dict.fromkeys(INDEX_FIELDS)
        return job.but(
            status=transition.after,
            created_at=iso(moment),
            updated_at=iso(moment),
            expires_at=int(moment.timestamp()) + self.retention_days * 86400,
            **opened,
        )

    def _create_request(self, job: Job) -> dict[str, Any]:
        return {
            "TableName": self.table_name,
            "Item": job.to_item(),
            "ConditionExpression": "attribute_not_exists(jobId)",
        }

    def move(
        self,
        job_id: str,
        transition: Transition,
        changes: Mapping[str, Any] | None = None,
        *,
        remove: tuple[str, ...] = (),
        increment: str | None = None,
        now: datetime | None = None,
    ) -> Job:
        """Move a job by `transition`, setting `changes` (Job field -> value; None values are left
        alone), removing the fields in `remove`, adding one to the field `increment`; returns the
        job as written, or raises TransitionRefused with the job as it is."""
        request = self._move_request(job_id, transition, changes, remove, increment, now or utc_now())
        try:
            response = self._db.update_item(
                **request, ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD"
            )
        except ClientError as error:
            raise _refused(job_id, error) from None
        updated = Job.from_item(response["Attributes"])
        self._ended(updated)
        return updated

    def move_all(
        self,
        moves: Sequence[tuple[str, Mapping[str, Any]]],
        transition: Transition,
        *,
        remove: tuple[str, ...] = (),
        increment: str | None = None,
        now: datetime | None = None,
    ) -> list[Exception | None]:
        """move() for each (job id, changes), the writes made at once (upscaler.conditional_writes).

        Per job, in order: None when it moved, TransitionRefused (with the job as it is) when its
        status did not allow it, or the error its write met. A move to a terminal status (whose
        completion event follows each write) is made with move().
        """
        if transition.after in TERMINAL_STATUSES:
            raise ValueError(f"move_all cannot end jobs ({transition.name}): use move()")
        moment = now or utc_now()
        writes = [
            ConditionalWrite(
                key=job_id,
                alone=partial(self.move, job_id, transition, changes, remove=remove, increment=increment, now=moment),
            )
            for job_id, changes in moves
        ]
        return write_all(writes, handoff=self.handoff)

    def _move_request(
        self,
        job_id: str,
        transition: Transition,
        changes: Mapping[str, Any] | None,
        remove: tuple[str, ...],
        increment: str | None,
        moment: datetime,
    ) -> dict[str, Any]:
        """The UpdateItem of one transition: its condition, as the table says."""
        if transition.creates:
            raise ValueError(f"{transition.name} creates a job; use create()")
        changes = {**(changes or {}), **(index_keys(job_id, moment) if transition.opens else {})}
        if transition.ends:
            remove = (*remove, *(name for name in INDEX_FIELDS if name not in remove))
        values = {attribute_name(name): value for name, value in changes.items() if value is not None}
        values.update({attribute_name("status"): transition.after.value, attribute_name("updated_at"): iso(moment)})
        names: dict[str, str] = {}
        placeholders: dict[str, Any] = {}
        sets: list[str] = []
        for index, (name, value) in enumerate(values.items()):
            names[f"#f{index}"] = name
            placeholders[f":v{index}"] = value
            sets.append(f"#f{index} = :v{index}")
        if increment:
            names["#inc"] = attribute_name(increment)
            placeholders[":zero"] = 0
            placeholders[":one"] = 1
            sets.append("#inc = if_not_exists(#inc, :zero) + :one")
        before = sorted(status.value for status in transition.before)
        for index, status in enumerate(before):
            placeholders[f":from{index}"] = status
        names["#status"] = "status"
        expression = "SET " + ", ".join(sets)
        if remove:
            for index, name in enumerate(remove):
                names[f"#r{index}"] = attribute_name(name)
            expression += " REMOVE " + ", ".join(f"#r{index}" for index in range(len(remove)))
        allowed = ", ".join(f":from{index}" for index in range(len(before)))
        condition = f"attribute_exists(jobId) AND #status IN ({allowed})"
        if transition.also:
            condition += f" AND {transition.also}"
            if ":true" in transition.also:
                placeholders[":true"] = True
        return {
            "TableName": self.table_name,
            "Key": _key(job_id),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_attribute_values(placeholders),
        }

    def _ended(self, job: Job) -> None:
        if self.on_terminal is not None and job.status in TERMINAL_STATUSES:
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
                    "#count": attribute_name("malformed_reports"),
                    "#problem": attribute_name("last_malformed_report"),
                    "#at": attribute_name("last_malformed_report_at"),
                },
                ExpressionAttributeValues=to_attribute_values(
                    {":count": count, ":problem": problem[:MAX_PROBLEM_CHARS], ":at": iso(now or utc_now())}
                ),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get_many(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """The jobs that exist among `job_ids`, by key (strongly consistent), in one request per
        BATCH_GET_KEYS; keys DynamoDB leaves unprocessed are asked again."""
        found: dict[str, Job] = {}
        unique = list(dict.fromkeys(job_ids))
        for start in range(0, len(unique), BATCH_GET_KEYS):
            wanted: dict[str, Any] = {
                self.table_name: {"Keys": [_key(job_id) for job_id in unique[start : start + BATCH_GET_KEYS]],
                                  "ConsistentRead": True}
            }  # fmt: skip
            while wanted:
                response = self._db.batch_get_item(RequestItems=wanted)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    job = Job.from_item(item)
                    found[job.job_id] = job
                wanted = response.get("UnprocessedKeys") or {}
        return found

    def index_open_job(self, job: Job) -> bool:
        """Give an open job written before the open-jobs index existed its index keys (opened when it
        was created); False when it has them already or is no longer open. Migration only: every
        job written since gets them from its transitions."""
        opened = parse_iso(str(job.created_at)) if job.created_at else utc_now()
        keys = index_keys(job.job_id, opened)
        statuses = sorted(status.value for status in OPEN_STATUSES)
        names = {f"#k{index}": attribute_name(name) for index, name in enumerate(keys)}
        names["#status"] = attribute_name("status")
        values = {f":k{index}": value for index, value in enumerate(keys.values())}
        values.update({f":open{index}": status for index, status in enumerate(statuses)})
        try:
            self._db.update_item(
                TableName=self.table_name,
                Key=_key(job.job_id),
                UpdateExpression="SET " + ", ".join(f"#k{index} = :k{index}" for index in range(len(keys))),
                ConditionExpression=(
                    f"attribute_exists(jobId) AND attribute_not_exists(#k0) AND #status IN "
                    f"({', '.join(f':open{index}' for index in range(len(statuses)))})"
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_attribute_values(values),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def in_legacy_index(self, index_name: str, status: JobStatus) -> Iterator[Job]:
        """Jobs of one status in the status index of earlier versions (status, createdAt; projection
        ALL), oldest first: read only while a deployment migrates to the open-jobs index."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": index_name,
            "KeyConditionExpression": "#status = :status",
            "ExpressionAttributeNames": {"#status": attribute_name("status")},
            "ExpressionAttributeValues": {":status": {"S": status.value}},
        }
        while True:
            response = self._db.query(**kwargs)
            for item in response.get("Items", []):
                yield Job.from_item(item)
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
    return TransitionRefused(job_id, Job.from_item(item) if item else None)
