"""The open-jobs index: only open jobs are in it, the transitions that end a job take it out, the
shards spread the jobs, and readers query it (never scan) oldest first across shards."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import JOBS_TABLE
from tests.job_records import move_job, seed_job
from upscaler.job_record import OPEN_STATUSES, JobStatus, job_id_for
from upscaler.jobs import CLAIM, REJECT, TRANSITIONS, JobStore
from upscaler.open_jobs import OPEN_INDEX, OPEN_SHARDS, OpenJobs, open_shard

START = datetime(2026, 5, 14, 8, 0, tzinfo=UTC)


@pytest.fixture
def store(aws) -> JobStore:
    return JobStore(aws.dynamodb, JOBS_TABLE)


@pytest.fixture
def index(aws) -> OpenJobs:
    return OpenJobs(aws.dynamodb, JOBS_TABLE)


def seed(store: JobStore, statuses: list[JobStatus], start: datetime = START) -> list[str]:
    ids = []
    for minutes, status in enumerate(statuses):
        record = {"jobId": str(uuid.uuid4()), "sourceBucket": "b", "sourceKey": f"inbox/{minutes}.jpg"}
        ids.append(seed_job(store, record, status, now=start + timedelta(minutes=minutes)).job_id)
    return ids


def test_an_open_job_is_in_the_index_and_a_terminal_one_is_not(store, index):
    ids = seed(store, list(JobStatus))
    in_index = {job.job_id: job.status for job in index.oldest()}
    expected = {job_id: status for job_id, status in zip(ids, JobStatus, strict=True) if status in OPEN_STATUSES}
    assert in_index == expected
    for job_id, status in zip(ids, JobStatus, strict=True):
        job = store.get(job_id)
        assert (job.open_shard is not None) == (status in OPEN_STATUSES), status
        assert (job.open_since is not None) == (status in OPEN_STATUSES), status


def test_every_transition_into_a_terminal_status_removes_the_index_keys(store, index):
    for transition in TRANSITIONS:
        if transition.creates or not transition.ends:
            continue
        for before in transition.before - {JobStatus.REJECTED}:  # a REJECTED job was never open
            job_id = seed(store, [before])[0]
            move_job(store, job_id, transition.after)
            job = store.get(job_id)
            assert job.status is transition.after
            assert job.open_shard is None and job.open_since is None, f"{transition.name} from {before}"
    assert list(index.oldest()) == []


def test_a_claim_opens_with_its_instant_and_keeps_it_when_submitted(store):
    [job_id] = seed(store, [JobStatus.SUBMITTED])
    job = store.get(job_id)
    assert job.open_since == "2026-05-14T08:00:00.000Z"
    assert job.open_shard == open_shard(job_id)
    assert CLAIM.opens and not REJECT.opens


def test_the_shards_spread_job_ids_evenly():
    ids = [job_id_for("inbox", f"inbox/{n}.jpg", f"v{n}") for n in range(OPEN_SHARDS * 200)]
    per_shard = Counter(open_shard(job_id) for job_id in ids)
    assert set(per_shard) == set(range(OPEN_SHARDS))
    # 200 expected per shard: none far from it (a hot shard would be the old single partition again).
    assert max(per_shard.values()) < 200 * 1.35 and min(per_shard.values()) > 200 * 0.65


def test_the_shard_count_keeps_each_shard_under_the_partition_write_ceiling():
    webhooks_per_second = 10_000  # API Gateway's account-level default: jobs cannot end faster
    index_writes_per_job = 3  # put on claim, status update on submit, delete on end
    assert webhooks_per_second * index_writes_per_job / OPEN_SHARDS <= 1_000


def test_oldest_merges_the_shards_oldest_first_with_queries_only(aws, store):
    ids = seed(store, [JobStatus.SUBMITTED, JobStatus.CLAIMED, JobStatus.COMPLETED, JobStatus.SUBMITTED])
    calls: list[dict[str, Any]] = []
    original = aws.dynamodb.query

    def query(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(**kwargs)

    aws.dynamodb.query = query  # type: ignore[method-assign]
    reader = OpenJobs(aws.dynamodb, JOBS_TABLE)
    assert [job.job_id for job in reader.oldest()] == [ids[0], ids[1], ids[3]]
    assert [job.job_id for job in reader.newest()] == [ids[3], ids[1], ids[0]]
    assert [job.job_id for job in reader.oldest(status=JobStatus.SUBMITTED)] == [ids[0], ids[3]]
    cutoff = START + timedelta(minutes=2)
    assert [job.job_id for job in reader.oldest(opened_before=cutoff)] == [ids[0], ids[1]]
    assert {call["IndexName"] for call in calls} == {OPEN_INDEX}
    assert {int(call["ExpressionAttributeValues"][":shard"]["N"]) for call in calls} == set(range(OPEN_SHARDS))


def test_a_shard_is_read_page_by_page(store, index):
    ids = seed(store, [JobStatus.SUBMITTED] * 40)
    shard = open_shard(ids[0])
    mine = [job_id for job_id in ids if open_shard(job_id) == shard]
    assert [job.job_id for job in index.in_shard(shard, page_size=1)] == mine


def test_the_oldest_open_job_and_the_counts(store, index):
    assert index.oldest_open_since() is None
    seed(store, [JobStatus.COMPLETED, JobStatus.CLAIMED, JobStatus.SUBMITTED, JobStatus.SUBMITTED])
    assert index.oldest_open_since() == "2026-05-14T08:01:00.000Z"
    assert index.count_by_status() == {JobStatus.CLAIMED: 1, JobStatus.SUBMITTED: 2}
