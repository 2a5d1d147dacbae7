"""Jobs written together on moto's DynamoDB: each a conditional write of its own, made at once, each
job ending as its own write ends it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import JOBS_TABLE
from tests.job_records import seed_job
from tests.unit.test_jobs import RecordingClient
from upscaler.conditional_writes import MAX_PARALLEL_WRITES, ConditionalWrite, write_all
from upscaler.job_record import Job, JobStatus
from upscaler.jobs import CLAIM, COMPLETE, REJECT, SUBMIT, JobStore, Transition, TransitionRefused

BARRIER_SECONDS = 5.0


@pytest.fixture
def recorded(aws) -> RecordingClient:
    return RecordingClient(aws.dynamodb)


@pytest.fixture
def store(recorded) -> JobStore:
    return JobStore(recorded, JOBS_TABLE, retention_days=30)


def new_job(**fields: Any) -> dict[str, Any]:
    return {"jobId": str(uuid.uuid4()), "sourceBucket": "inbox", "sourceKey": "inbox/a.jpg", **fields}


def claims(*jobs: dict[str, Any]) -> list[tuple[Job, Transition]]:
    return [(Job.from_record(job), CLAIM) for job in jobs]


def test_new_jobs_are_created_each_by_its_own_conditional_put(store, recorded):
    jobs = [new_job() for _ in range(5)]
    assert store.create_all(claims(*jobs)) == [None] * 5
    assert recorded.calls == ["put_item"] * 5
    assert [store.get(job["jobId"]).status for job in jobs] == ["CLAIMED"] * 5


def test_the_writes_are_in_flight_at_the_same_time(store, aws):
    jobs = [new_job() for _ in range(3)]
    all_writing = threading.Barrier(3, timeout=BARRIER_SECONDS)

    def wait(**_: Any) -> None:  # returns None, so the call goes on; one after another, the barrier breaks
        all_writing.wait()

    aws.dynamodb.meta.events.register("before-call.dynamodb.PutItem", wait)
    assert store.create_all(claims(*jobs)) == [None] * 3


def test_no_more_writes_are_in_flight_than_the_pool_holds():
    lock = threading.Lock()
    running, most = [0], [0]
    release = threading.Event()

    def slow() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            if running[0] == MAX_PARALLEL_WRITES:
                release.set()
        release.wait(BARRIER_SECONDS)
        with lock:
            running[0] -= 1

    writes = [ConditionalWrite(key=str(index), alone=slow) for index in range(MAX_PARALLEL_WRITES + 5)]
    assert write_all(writes) == [None] * len(writes)
    assert most[0] == MAX_PARALLEL_WRITES


def test_a_job_that_exists_is_refused_with_it_and_the_others_written(store, recorded):
    existing = new_job()
    seed_job(store, existing, JobStatus.SUBMITTED)
    recorded.calls.clear()
    fresh = [new_job(), new_job()]
    results = store.create_all(claims(fresh[0], {**existing, "sourceKey": "other"}, fresh[1]))
    assert results[0] is None and results[2] is None
    refused = results[1]
    assert isinstance(refused, TransitionRefused)
    assert refused.current is not None
    assert (refused.current.status, refused.current.source_key) == ("SUBMITTED", "inbox/a.jpg")
    assert recorded.calls == ["put_item"] * 3
    assert [store.get(job["jobId"]).status for job in fresh] == ["CLAIMED", "CLAIMED"]
    assert store.get(existing["jobId"]).source_key == "inbox/a.jpg"  # not overwritten


def test_a_job_named_twice_is_written_after_its_first_write_ended(store, aws):
    job = new_job()
    order: list[str] = []
    lock = threading.Lock()

    def note(params: dict[str, Any], **_: Any) -> None:
        with lock:
            order.append(params["Item"]["jobId"]["S"])

    aws.dynamodb.meta.events.register("before-parameter-build.dynamodb.PutItem", note)
    other = new_job()
    results = store.create_all(claims(job, other, job))
    assert results[:2] == [None, None]
    assert isinstance(results[2], TransitionRefused)  # refused by the first write, never racing it
    assert order[-1] == job["jobId"] and sorted(order[:2]) == sorted([job["jobId"], other["jobId"]])


def test_a_write_that_fails_outright_is_its_outcome_alone(store, aws):
    failing = new_job()

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if params["Item"]["jobId"]["S"] == failing["jobId"]:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "try again"}}, "PutItem")

    aws.dynamodb.meta.events.register("before-parameter-build.dynamodb.PutItem", refuse)
    fresh = new_job()
    results = store.create_all(claims(fresh, failing))
    assert results[0] is None
    assert isinstance(results[1], ClientError)
    assert store.get(fresh["jobId"]).status == "CLAIMED"
    assert store.get(failing["jobId"]) is None


def test_rejections_written_together_each_end_their_job(aws):
    ended: list[str] = []
    lock = threading.Lock()

    def end(job: Job) -> None:
        with lock:
            ended.append(job.job_id)

    store = JobStore(aws.dynamodb, JOBS_TABLE, on_terminal=end)
    jobs = [new_job(errorCode="notAnImage") for _ in range(2)]
    assert store.create_all([(Job.from_record(job), REJECT) for job in jobs]) == [None, None]
    assert sorted(ended) == sorted(job["jobId"] for job in jobs)  # after each write, once each


def test_moves_together_change_only_jobs_in_an_allowed_status(store, recorded):
    claimed = [new_job() for _ in range(2)]
    done = new_job()
    store.create_all(claims(*claimed))
    seed_job(store, done, JobStatus.COMPLETED)
    recorded.calls.clear()
    moves = [(job["jobId"], {"submit_request_ms": 12}) for job in (claimed[0], done, claimed[1])]
    results = store.move_all(moves, SUBMIT, increment="submit_attempts")
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], TransitionRefused)
    assert results[1].current is not None and results[1].current.status == "COMPLETED"
    assert recorded.calls == ["update_item"] * 3
    for job in claimed:
        moved = store.get(job["jobId"])
        assert (moved.status, moved.submit_request_ms, moved.submit_attempts) == ("SUBMITTED", 12, 1)
    assert store.get(done["jobId"]).status == "COMPLETED"


def test_moves_together_never_end_a_job(store):
    with pytest.raises(ValueError, match="cannot end jobs"):
        store.move_all([("x", {})], COMPLETE)


def test_each_write_runs_under_the_callers_handoff(aws):
    """The store's handoff wraps every write made in a worker thread (the trace context)."""
    handed: list[str] = []
    lock = threading.Lock()

    def handoff(work: Callable[[], Any]) -> Callable[[], Any]:
        with lock:
            handed.append(threading.current_thread().name)  # called in the caller's thread
        return work

    store = JobStore(aws.dynamodb, JOBS_TABLE, handoff=handoff)
    assert store.create_all(claims(new_job(), new_job(), new_job())) == [None] * 3
    assert handed == [threading.current_thread().name] * 3
