"""The job store on (moto's) DynamoDB: create-once, the transition table's guarded moves, and status
lookups through the index."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import JOBS_TABLE
from tests.job_records import seed_job
from upscaler.job_record import Job, JobStatus
from upscaler.jobs import (
    CLAIM,
    COMPLETE,
    COMPLETE_REJECTED,
    FAIL,
    REJECT,
    REJECT_CLAIMED,
    RESUBMIT,
    SUBMIT,
    TIME_OUT,
    TRANSITIONS,
    JobStore,
    TransitionRefused,
    completion_for,
)
from upscaler.open_jobs import open_shard

# The state machine as the product promises it (which status may follow which, by which move),
# written out here rather than read from the table, so that a change to the table must change this too.
EXPECTED_MOVES = {
    "claim": (set(), "CLAIMED"),
    "reject": (set(), "REJECTED"),
    "rejectClaimed": ({"CLAIMED"}, "REJECTED"),
    "waitForAccount": ({"CLAIMED"}, "CLAIMED"),
    "submit": ({"CLAIMED"}, "SUBMITTED"),
    "failSubmission": ({"CLAIMED"}, "FAILED"),
    "fail": ({"CLAIMED", "SUBMITTED"}, "FAILED"),
    "timeOut": ({"SUBMITTED"}, "TIMED_OUT"),
    "complete": ({"CLAIMED", "SUBMITTED", "FAILED", "TIMED_OUT"}, "COMPLETED"),
    "completeRejected": ({"REJECTED"}, "COMPLETED"),  # only a job rejected after its claim
    "resubmit": ({"SUBMITTED"}, "SUBMITTED"),  # only a job never sent again before
}


class RecordingClient:
    """Passes every call to the real client and remembers the operation names."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return attribute(*args, **kwargs)

        return call


@pytest.fixture
def store(aws) -> JobStore:
    return JobStore(aws.dynamodb, JOBS_TABLE, retention_days=30)


def new_job(**fields: Any) -> Job:
    return Job(job_id=str(uuid.uuid4()), source_bucket="inbox", source_key="inbox/a.jpg", **fields)


# --- the table ----------------------------------------------------------------------------------


def test_the_table_is_the_promised_state_machine():
    table = {
        transition.name: ({str(s) for s in transition.before}, str(transition.after)) for transition in TRANSITIONS
    }
    assert table == EXPECTED_MOVES
    assert len(table) == len(TRANSITIONS)


def test_completion_for_each_status():
    assert completion_for(new_job(status=JobStatus.SUBMITTED)) is COMPLETE
    assert completion_for(new_job(status=JobStatus.TIMED_OUT)) is COMPLETE
    assert completion_for(new_job(status=JobStatus.COMPLETED)) is None
    assert completion_for(new_job(status=JobStatus.REJECTED)) is None
    assert completion_for(new_job(status=JobStatus.REJECTED, rejected_after_claim=True)) is COMPLETE_REJECTED


# --- create -------------------------------------------------------------------------------------


def test_create_and_read_back(store):
    moment = datetime(2026, 5, 14, 9, 30, 0, 123000, tzinfo=UTC)
    job = new_job(source_size=1234, cost=Decimal("0.0031"), enhance_details=True)
    written = store.create(job, CLAIM, now=moment)
    read = store.get(job.job_id)
    assert read == written
    assert read == job.but(
        status=JobStatus.CLAIMED,
        created_at="2026-05-14T09:30:00.123Z",
        updated_at="2026-05-14T09:30:00.123Z",
        expires_at=int(moment.timestamp()) + 30 * 86400,
        open_shard=open_shard(job.job_id),
        open_since="2026-05-14T09:30:00.123Z",
    )
    assert type(read.source_size) is int
    assert read.to_record()["sourceSize"] == 1234


def test_get_of_an_unknown_job_is_none(store):
    assert store.get(str(uuid.uuid4())) is None


def test_second_create_is_refused_with_the_current_job(store):
    job = new_job()
    store.create(job, CLAIM)
    store.move(job.job_id, SUBMIT)
    with pytest.raises(TransitionRefused) as caught:
        store.create(job.but(source_key="other"), REJECT)
    assert caught.value.job_id == job.job_id
    assert caught.value.current is not None
    assert caught.value.current.status is JobStatus.SUBMITTED
    assert caught.value.current.source_key == "inbox/a.jpg"
    assert store.get(job.job_id).status is JobStatus.SUBMITTED


def test_only_creating_transitions_create_and_only_moves_move(store):
    with pytest.raises(ValueError, match="cannot create"):
        store.create(new_job(), SUBMIT)
    job = store.create(new_job(), CLAIM)
    with pytest.raises(ValueError, match="use create"):
        store.move(job.job_id, CLAIM)


# --- moves --------------------------------------------------------------------------------------


def test_move_sets_fields_counts_and_removes(store):
    job = new_job(error_code="old")
    store.create(job, CLAIM)
    later = datetime(2030, 1, 1, tzinfo=UTC)
    moved = store.move(
        job.job_id,
        SUBMIT,
        {"submitted_at": "2030-01-01T00:00:00.000Z", "image_uuid": None},
        remove=("error_code",),
        increment="submit_attempts",
        now=later,
    )
    assert moved.status is JobStatus.SUBMITTED
    assert moved.submitted_at == moved.updated_at == "2030-01-01T00:00:00.000Z"
    assert moved.submit_attempts == 1
    assert moved.error_code is None and moved.image_uuid is None
    assert store.get(job.job_id) == moved
    failed = store.move(job.job_id, FAIL, {"error_code": "x"}, increment="submit_attempts")
    assert failed.submit_attempts == 2


def test_a_change_naming_no_field_is_refused_before_writing(store):
    job = store.create(new_job(), CLAIM)
    with pytest.raises(ValueError, match="no field 'submittedAt'"):
        store.move(job.job_id, SUBMIT, {"submittedAt": "2030-01-01T00:00:00.000Z"})
    assert store.get(job.job_id).status is JobStatus.CLAIMED


def test_move_of_a_missing_job_is_refused(store):
    with pytest.raises(TransitionRefused) as caught:
        store.move(str(uuid.uuid4()), COMPLETE)
    assert caught.value.current is None
    assert "missing" in str(caught.value)


def test_move_from_a_status_not_allowed_is_refused_and_changes_nothing(store):
    job = store.create(new_job(), CLAIM)
    with pytest.raises(TransitionRefused) as caught:
        store.move(job.job_id, TIME_OUT, {"cost": Decimal("1")})
    assert caught.value.current == job
    assert store.get(job.job_id) == job


def test_every_move_is_allowed_exactly_from_its_statuses(store):
    # One moto world for the whole matrix: each (status, move) pair gets its own job.
    tried = 0
    for status in JobStatus:
        for transition in TRANSITIONS:
            if transition.creates:
                continue
            job = seed_job(store, {"jobId": str(uuid.uuid4()), "sourceBucket": "b", "sourceKey": "k"}, status)
            allowed = str(status) in EXPECTED_MOVES[transition.name][0] and transition is not COMPLETE_REJECTED
            if allowed:
                assert store.move(job.job_id, transition, {"error_code": "x"}).status is transition.after
            else:
                with pytest.raises(TransitionRefused):
                    store.move(job.job_id, transition, {"error_code": "late"})
                assert store.get(job.job_id) == job, (status, transition.name)
            tried += 1
    assert tried == len(JobStatus) * (len(TRANSITIONS) - 2)


def test_a_rejected_job_completes_only_when_rejected_after_its_claim(store):
    plain = store.create(new_job(error_code="notAnImage"), REJECT)
    with pytest.raises(TransitionRefused):
        store.move(plain.job_id, COMPLETE_REJECTED, {"image_uuid": "img"})
    claimed = store.create(new_job(), CLAIM)
    store.move(claimed.job_id, REJECT_CLAIMED, {"rejected_after_claim": True})
    completed = store.move(claimed.job_id, COMPLETE_REJECTED, {"image_uuid": "img"}, remove=("error_code",))
    assert completed.status is JobStatus.COMPLETED and completed.image_uuid == "img"


def test_timed_out_job_may_still_complete_once(store):
    job = seed_job(store, {"jobId": str(uuid.uuid4()), "sourceBucket": "b", "sourceKey": "k"}, JobStatus.TIMED_OUT)
    completed = store.move(job.job_id, COMPLETE, {"image_uuid": "img"})
    assert completed.status is JobStatus.COMPLETED
    assert completed.image_uuid == "img"
    with pytest.raises(TransitionRefused):
        store.move(job.job_id, COMPLETE, {"image_uuid": "again"})


def test_only_one_of_two_racing_moves_wins(store):
    job = seed_job(store, {"jobId": str(uuid.uuid4()), "sourceBucket": "b", "sourceKey": "k"}, JobStatus.SUBMITTED)
    store.move(job.job_id, COMPLETE, {"image_uuid": "first"})
    with pytest.raises(TransitionRefused):
        store.move(job.job_id, FAIL, {"error_code": "x"})
    assert store.get(job.job_id).image_uuid == "first"


def test_move_all_never_ends_jobs(store):
    with pytest.raises(ValueError, match="cannot end jobs"):
        store.move_all([("id", {})], COMPLETE)


def test_a_job_is_sent_again_once_only(store):
    job = seed_job(store, {"jobId": str(uuid.uuid4()), "sourceBucket": "b", "sourceKey": "k"}, JobStatus.SUBMITTED)
    again = store.move(job.job_id, RESUBMIT, {"runware_task_uuid": "second"}, increment="resubmissions")
    assert (again.status, again.task_uuid, again.resubmissions) == (JobStatus.SUBMITTED, "second", 1)
    with pytest.raises(TransitionRefused):
        store.move(job.job_id, RESUBMIT, {"runware_task_uuid": "third"}, increment="resubmissions")
    assert store.get(job.job_id) == again
