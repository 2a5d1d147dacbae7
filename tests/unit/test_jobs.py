"""The job store on (moto's) DynamoDB: create-once, guarded transitions, and status lookups through the index."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import JOBS_TABLE
from upscaler.jobs import (
    STATUS_INDEX,
    TERMINAL_STATUSES,
    JobStatus,
    JobStore,
    TransitionRefused,
    iso,
    job_id_for,
    parse_iso,
    seconds_between,
)
from upscaler.models import is_uuid4

# The allowed moves: open jobs may finish in any way; the only move out of an ending is a late success.
OPEN = frozenset({JobStatus.CLAIMED, JobStatus.SUBMITTED})
MAY_COMPLETE = OPEN | {JobStatus.TIMED_OUT}


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


def new_job(**fields: Any) -> dict[str, Any]:
    return {"jobId": str(uuid.uuid4()), "sourceKey": "inbox/a.jpg", **fields}


# --- job ids ------------------------------------------------------------------------------------


def test_job_id_is_a_uuid4_derived_from_the_object_version():
    job_id = job_id_for("bucket", "inbox/a.jpg", "v1")
    assert is_uuid4(job_id)
    assert uuid.UUID(job_id).version == 4
    assert job_id == job_id_for("bucket", "inbox/a.jpg", "v1")
    others = {
        job_id_for("bucket", "inbox/a.jpg", "v2"),
        job_id_for("bucket", "inbox/a.png", "v1"),
        job_id_for("other", "inbox/a.jpg", "v1"),
        job_id_for("bucket", "inbox/a.jpgv", "1"),  # the separator keeps parts apart
    }
    assert job_id not in others
    assert len(others) == 4


# --- create -------------------------------------------------------------------------------------


def test_create_and_read_back(store):
    moment = datetime(2026, 5, 14, 9, 30, 0, 123000, tzinfo=UTC)
    job = new_job(sourceSize=1234, cost=Decimal("0.0031"), ratio=1.5, enhance=True, missing=None)
    store.create(job, JobStatus.CLAIMED, now=moment)
    item = store.get(job["jobId"])
    assert item == {
        "jobId": job["jobId"],
        "sourceKey": "inbox/a.jpg",
        "sourceSize": 1234,
        "cost": Decimal("0.0031"),
        "ratio": Decimal("1.5"),
        "enhance": True,
        "status": "CLAIMED",
        "createdAt": "2026-05-14T09:30:00.123Z",
        "updatedAt": "2026-05-14T09:30:00.123Z",
        "expiresAt": int(moment.timestamp()) + 30 * 86400,
    }
    assert type(item["sourceSize"]) is int


def test_get_of_an_unknown_job_is_none(store):
    assert store.get(str(uuid.uuid4())) is None


def test_second_create_is_refused_with_the_current_item(store):
    job = new_job()
    store.create(job, JobStatus.CLAIMED)
    store.transition(job["jobId"], {JobStatus.CLAIMED}, JobStatus.SUBMITTED)
    with pytest.raises(TransitionRefused) as caught:
        store.create({**job, "sourceKey": "other"}, JobStatus.REJECTED)
    assert caught.value.job_id == job["jobId"]
    assert caught.value.current is not None
    assert caught.value.current["status"] == "SUBMITTED"
    assert caught.value.current["sourceKey"] == "inbox/a.jpg"
    assert store.get(job["jobId"])["status"] == "SUBMITTED"


# --- transitions --------------------------------------------------------------------------------


def test_transition_sets_fields_counts_and_removes(store):
    job = new_job(errorCode="old")
    store.create(job, JobStatus.CLAIMED)
    later = datetime(2030, 1, 1, tzinfo=UTC)
    item = store.transition(
        job["jobId"],
        {JobStatus.CLAIMED},
        JobStatus.SUBMITTED,
        {"submittedAt": iso(later), "ignored": None},
        remove=("errorCode",),
        increment="submitAttempts",
        now=later,
    )
    assert item["status"] == "SUBMITTED"
    assert item["submittedAt"] == item["updatedAt"] == "2030-01-01T00:00:00.000Z"
    assert item["submitAttempts"] == 1
    assert "errorCode" not in item and "ignored" not in item
    assert store.get(job["jobId"]) == item
    again = store.transition(job["jobId"], {JobStatus.SUBMITTED}, JobStatus.SUBMITTED, increment="submitAttempts")
    assert again["submitAttempts"] == 2


def test_transition_of_a_missing_job_is_refused(store):
    with pytest.raises(TransitionRefused) as caught:
        store.transition(str(uuid.uuid4()), OPEN, JobStatus.COMPLETED)
    assert caught.value.current is None
    assert "missing" in str(caught.value)


def test_transition_from_a_status_not_allowed_is_refused_and_changes_nothing(store):
    job = new_job()
    store.create(job, JobStatus.CLAIMED)
    before = store.get(job["jobId"])
    with pytest.raises(TransitionRefused) as caught:
        store.transition(job["jobId"], {JobStatus.SUBMITTED}, JobStatus.COMPLETED, {"cost": Decimal("1")})
    assert caught.value.current == before
    assert store.get(job["jobId"]) == before


REGRESSIONS = [
    (ending, to)
    for ending in sorted(TERMINAL_STATUSES)
    for to in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.TIMED_OUT, JobStatus.SUBMITTED)
    if (ending, to) != (JobStatus.TIMED_OUT, JobStatus.COMPLETED)  # the one allowed move, tested below
]


def test_no_regression_out_of_a_terminal_state(store):
    # One moto world for the whole matrix: each pair gets its own job.
    for ending, to in REGRESSIONS:
        job = new_job()
        store.create(job, ending)
        allowed = MAY_COMPLETE if to == JobStatus.COMPLETED else OPEN
        with pytest.raises(TransitionRefused) as caught:
            store.transition(job["jobId"], allowed, to, {"errorCode": "late"})
        assert caught.value.current["status"] == ending, (ending, to)
        item = store.get(job["jobId"])
        assert item["status"] == ending, (ending, to)
        assert "errorCode" not in item, (ending, to)
    assert len(REGRESSIONS) == 15


def test_timed_out_job_may_still_complete(store):
    job = new_job()
    store.create(job, JobStatus.SUBMITTED)
    store.transition(job["jobId"], {JobStatus.SUBMITTED}, JobStatus.TIMED_OUT)
    item = store.transition(job["jobId"], MAY_COMPLETE, JobStatus.COMPLETED, {"imageUUID": "img"})
    assert item["status"] == "COMPLETED"
    assert item["imageUUID"] == "img"
    with pytest.raises(TransitionRefused):
        store.transition(job["jobId"], MAY_COMPLETE, JobStatus.COMPLETED, {"imageUUID": "again"})


def test_only_one_of_two_racing_transitions_wins(store):
    job = new_job()
    store.create(job, JobStatus.SUBMITTED)
    store.transition(job["jobId"], OPEN, JobStatus.COMPLETED, {"imageUUID": "first"})
    with pytest.raises(TransitionRefused):
        store.transition(job["jobId"], OPEN, JobStatus.FAILED, {"errorCode": "x"})
    assert store.get(job["jobId"])["imageUUID"] == "first"


# --- finding jobs by status ---------------------------------------------------------------------


def seed(store: JobStore, start: datetime, statuses: list[JobStatus]) -> list[str]:
    ids = []
    for minutes, status in enumerate(statuses):
        job = new_job(order=minutes)
        store.create(job, status, now=start + timedelta(minutes=minutes))
        ids.append(job["jobId"])
    return ids


def test_find_by_status_queries_the_index_oldest_first(aws):
    recording = RecordingClient(aws.dynamodb)
    store = JobStore(recording, JOBS_TABLE)
    start = datetime(2026, 5, 14, 8, 0, tzinfo=UTC)
    ids = seed(store, start, [JobStatus.SUBMITTED, JobStatus.COMPLETED, JobStatus.SUBMITTED, JobStatus.SUBMITTED])
    recording.calls.clear()
    found = list(store.find_by_status(JobStatus.SUBMITTED))
    assert [job["jobId"] for job in found] == [ids[0], ids[2], ids[3]]
    assert all(job["status"] == "SUBMITTED" for job in found)
    assert recording.calls == ["query"]
    assert "scan" not in recording.calls
    newest = list(store.find_by_status(JobStatus.SUBMITTED, newest_first=True))
    assert [job["jobId"] for job in newest] == [ids[3], ids[2], ids[0]]


def test_find_by_status_uses_the_status_index(aws, monkeypatch):
    store = JobStore(aws.dynamodb, JOBS_TABLE)
    seen: list[dict[str, Any]] = []
    original = aws.dynamodb.query

    def query(**kwargs: Any) -> Any:
        seen.append(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(aws.dynamodb, "query", query)
    list(store.find_by_status(JobStatus.SUBMITTED))
    assert seen[0]["IndexName"] == STATUS_INDEX == "jobsByStatus"


def test_find_by_status_created_before(store):
    start = datetime(2026, 5, 14, 8, 0, tzinfo=UTC)
    ids = seed(store, start, [JobStatus.SUBMITTED] * 5)
    cutoff = start + timedelta(minutes=2)
    found = [job["jobId"] for job in store.find_by_status(JobStatus.SUBMITTED, created_before=cutoff)]
    assert found == ids[:2]  # strictly before the cutoff
    assert list(store.find_by_status(JobStatus.SUBMITTED, created_before=start)) == []


def test_find_by_status_limit_and_pagination(aws):
    recording = RecordingClient(aws.dynamodb)
    store = JobStore(recording, JOBS_TABLE)
    start = datetime(2026, 5, 14, 8, 0, tzinfo=UTC)
    ids = seed(store, start, [JobStatus.SUBMITTED] * 7)
    recording.calls.clear()
    assert [job["jobId"] for job in store.find_by_status(JobStatus.SUBMITTED, limit=3)] == ids[:3]
    assert recording.calls == ["query"]
    assert [job["jobId"] for job in store.find_by_status(JobStatus.SUBMITTED, limit=100)] == ids
    assert "scan" not in recording.calls


def test_find_by_status_follows_pages(aws, monkeypatch):
    store = JobStore(aws.dynamodb, JOBS_TABLE)
    start = datetime(2026, 5, 14, 8, 0, tzinfo=UTC)
    ids = seed(store, start, [JobStatus.SUBMITTED] * 5)
    original = aws.dynamodb.query
    pages: list[int] = []

    def two_at_a_time(**kwargs: Any) -> Any:
        response = original(**{**kwargs, "Limit": 2})
        pages.append(len(response["Items"]))
        return response

    monkeypatch.setattr(aws.dynamodb, "query", two_at_a_time)
    assert [job["jobId"] for job in store.find_by_status(JobStatus.SUBMITTED)] == ids
    assert len(pages) >= 3


# --- time helpers -------------------------------------------------------------------------------


def test_iso_round_trip_and_durations():
    moment = datetime(2026, 5, 14, 9, 30, 1, 250000, tzinfo=UTC)
    text = iso(moment)
    assert text == "2026-05-14T09:30:01.250Z"
    assert parse_iso(text) == moment
    assert iso(moment.astimezone(tz=None)) == text
    assert seconds_between("2026-05-14T09:30:00.000Z", "2026-05-14T09:31:01.500Z") == 61.5
    assert seconds_between(None, text) is None
    assert seconds_between(text, "") is None
