"""Jobs for tests: put a job into any status by the store's own transitions, and read records back
as users see them (attribute names, plain values)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from upscaler.job_record import FIELD_OF, Job, JobStatus
from upscaler.jobs import CLAIM, COMPLETE, FAIL, REJECT, SUBMIT, TIME_OUT, TRANSITIONS, JobStore, Transition

# The moves after the claim that bring a new job to each status.
PATH_TO: dict[JobStatus, tuple[Transition, ...]] = {
    JobStatus.CLAIMED: (),
    JobStatus.SUBMITTED: (SUBMIT,),
    JobStatus.COMPLETED: (SUBMIT, COMPLETE),
    JobStatus.FAILED: (SUBMIT, FAIL),
    JobStatus.TIMED_OUT: (SUBMIT, TIME_OUT),
}


def seed_job(
    store: JobStore, record: Mapping[str, Any], status: JobStatus | str, *, now: datetime | None = None
) -> Job:
    """Write a job from a record (attribute names) and move it to `status` by the transition table."""
    job = Job.from_record(record)
    status = JobStatus(status)
    if status is JobStatus.REJECTED:
        return store.create(job, REJECT, now=now)
    written = store.create(job, CLAIM, now=now)
    for transition in PATH_TO[status]:
        written = store.move(job.job_id, transition, now=now)
    return written


def stored_record(store: JobStore, job_id: str) -> dict[str, Any] | None:
    """The job's record as the table holds it, or None."""
    job = store.get(job_id)
    return job.to_record() if job else None


def move_job(
    store: JobStore, job_id: str, to: JobStatus | str, changes: Mapping[str, Any] | None = None, **options: Any
) -> Job:
    """Move a job to `to` by the table's first transition that allows it from where it is, setting
    `changes` (attribute names, as in records)."""
    current = store.get(job_id)
    status = current.status if current else None
    moves = [t for t in TRANSITIONS if not t.creates and t.after == JobStatus(to)]
    # The first move allowed from where the job is; if none is, the first to `to` (the store refuses it).
    transition = next((t for t in moves if status in t.before), moves[0])
    fields = {FIELD_OF[name]: value for name, value in (changes or {}).items()}
    if "increment" in options:
        options["increment"] = FIELD_OF[options["increment"]]
    if "remove" in options:
        options["remove"] = tuple(FIELD_OF[name] for name in options["remove"])
    return store.move(job_id, transition, fields, **options)
