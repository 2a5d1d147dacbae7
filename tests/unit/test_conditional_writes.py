"""Jobs written together (TransactWriteItems) on moto's DynamoDB: each job ends as its own
conditional write would have ended it, in as few requests as the rules allow."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import JOBS_TABLE
from tests.job_records import seed_job
from tests.unit.test_jobs import RecordingClient
from upscaler.conditional_writes import MAX_TRANSACTION_ITEMS, cancellation_reasons
from upscaler.job_record import Job, JobStatus
from upscaler.jobs import CLAIM, COMPLETE, REJECT, SUBMIT, JobStore, Transition, TransitionRefused


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


def test_new_jobs_are_created_in_one_transaction(store, recorded):
    jobs = [new_job() for _ in range(5)]
    assert store.create_all(claims(*jobs)) == [None] * 5
    assert recorded.calls == ["transact_write_items"]
    assert [store.get(job["jobId"]).status for job in jobs] == ["CLAIMED"] * 5


def test_a_job_that_exists_is_refused_with_it_and_the_others_written_in_a_second_transaction(store, recorded):
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
    assert recorded.calls == ["transact_write_items", "transact_write_items"]
    assert [store.get(job["jobId"]).status for job in fresh] == ["CLAIMED", "CLAIMED"]
    assert store.get(existing["jobId"]).source_key == "inbox/a.jpg"  # not overwritten


def test_a_batch_of_repeats_costs_one_request(store, recorded):
    jobs = [new_job() for _ in range(3)]
    store.create_all(claims(*jobs))
    recorded.calls.clear()
    results = store.create_all(claims(*jobs))
    assert all(isinstance(result, TransitionRefused) for result in results)
    assert recorded.calls == ["transact_write_items"]


def test_one_job_is_written_alone(store, recorded):
    assert store.create_all(claims(new_job())) == [None]
    assert recorded.calls == ["put_item"]  # a transaction of one would cost twice the units


def test_a_job_named_twice_is_written_alone_after_the_transaction(store, recorded):
    job = new_job()
    results = store.create_all(claims(job, new_job(), job))
    assert results[:2] == [None, None]
    assert isinstance(results[2], TransitionRefused)
    assert recorded.calls == ["transact_write_items", "put_item"]


def test_more_jobs_than_a_transaction_holds_take_several(store, recorded):
    jobs = [new_job() for _ in range(MAX_TRANSACTION_ITEMS + 3)]
    assert store.create_all(claims(*jobs)) == [None] * len(jobs)
    assert recorded.calls == ["transact_write_items", "transact_write_items"]


def test_a_transaction_that_fails_outright_leaves_each_job_to_its_own_write(store, recorded, aws):
    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "try again"}}, "TransactWriteItems")

    aws.dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", refuse)
    existing = new_job()
    seed_job(store, existing, JobStatus.CLAIMED)
    recorded.calls.clear()
    fresh = new_job()
    results = store.create_all(claims(fresh, existing))
    assert results[0] is None
    assert isinstance(results[1], TransitionRefused)
    assert recorded.calls == ["transact_write_items", "put_item", "put_item"]


def test_a_conflicting_job_is_settled_by_its_own_write_and_the_rolled_back_ones_together(store, recorded, aws):
    jobs = [new_job() for _ in range(3)]
    conflicted = jobs[1]["jobId"]

    def cancel_once(params: dict[str, Any], **_: Any) -> None:
        ids = [action["Put"]["Item"]["jobId"]["S"] for action in params["TransactItems"]]
        if conflicted in ids:
            reasons = [{"Code": "TransactionConflict" if i == conflicted else "None"} for i in ids]
            error = {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"}
            raise ClientError({"Error": error, "CancellationReasons": reasons}, "TransactWriteItems")

    aws.dynamodb.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems", cancel_once)
    assert store.create_all(claims(*jobs)) == [None] * 3
    assert recorded.calls == ["transact_write_items", "transact_write_items", "put_item"]


def test_rejections_written_together_each_end_their_job(aws):
    ended: list[str] = []
    store = JobStore(aws.dynamodb, JOBS_TABLE, on_terminal=lambda job: ended.append(job.job_id))
    jobs = [new_job(errorCode="notAnImage") for _ in range(2)]
    assert store.create_all([(Job.from_record(job), REJECT) for job in jobs]) == [None, None]
    assert ended == [job["jobId"] for job in jobs]  # after the write, once each


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
    assert recorded.calls == ["transact_write_items", "transact_write_items"]
    for job in claimed:
        moved = store.get(job["jobId"])
        assert (moved.status, moved.submit_request_ms, moved.submit_attempts) == ("SUBMITTED", 12, 1)
    assert store.get(done["jobId"]).status == "COMPLETED"


def test_moves_together_never_end_a_job(store):
    with pytest.raises(ValueError, match="cannot end jobs"):
        store.move_all([("x", {})], COMPLETE)


@pytest.mark.parametrize(
    "response",
    [
        {"Error": {"Code": "ValidationException"}},
        {"Error": {"Code": "TransactionCanceledException"}},
        {"Error": {"Code": "TransactionCanceledException"}, "CancellationReasons": [{"Code": "None"}]},
        {"Error": {"Code": "TransactionCanceledException"}, "CancellationReasons": "None, None"},
    ],
    ids=["another error", "no reasons", "fewer reasons than actions", "reasons not a list"],
)
def test_reasons_that_cannot_be_matched_to_the_actions_are_not_read(response):
    assert cancellation_reasons(ClientError(response, "TransactWriteItems"), 2) is None
