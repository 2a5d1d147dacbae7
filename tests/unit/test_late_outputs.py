"""The safety net's look at the staging prefix: a paid output of a job that ended without it (its
check lost) completes the job; leftovers of completed jobs are removed; the rest is left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import JOBS_TABLE, OUTPUT_BUCKET
from tests.job_records import move_job, stored_record
from tests.unit.test_reconciliation import add_job, make_reconciler, png_bytes
from upscaler.job_record import JobStatus
from upscaler.jobs import JobStore
from upscaler.late_outputs import LateOutputs
from upscaler.reconciliation import CHECK_GRACE_SECONDS
from upscaler.results import ResultRecorder
from upscaler.settlement import Settler
from upscaler.storage import ObjectStore

MAX_AGE = 3600


@pytest.fixture
def store(aws) -> JobStore:
    return JobStore(aws.dynamodb, JOBS_TABLE)


LATER = timedelta(seconds=CHECK_GRACE_SECONDS + 60)  # when the staged objects are old enough


def late_outputs(aws, store: JobStore, max_objects: int = 50) -> LateOutputs:
    objects = ObjectStore(aws.s3)
    settler = Settler(store, ResultRecorder(objects, store), max_age_seconds=MAX_AGE)
    return LateOutputs(
        objects,
        store,
        settler,
        bucket=OUTPUT_BUCKET,
        staging_prefix="staging/",
        max_objects=max_objects,
        min_age_seconds=CHECK_GRACE_SECONDS,
    )


def stage(aws, job_id: str, data: bytes | None = None) -> str:
    key = f"staging/{job_id}"
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=key, Body=data or png_bytes())
    return key


def staged_keys(aws) -> list[str]:
    return [item["Key"] for item in aws.s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="staging/").get("Contents", [])]


def test_a_late_output_of_a_timed_out_or_failed_job_completes_it_and_the_rest_is_left_alone(aws, store):
    timed_out = add_job(store, timedelta(hours=2), JobStatus.TIMED_OUT)
    failed = add_job(store, timedelta(hours=2), JobStatus.FAILED)
    open_job = add_job(store, timedelta(hours=2))
    completed = add_job(store, timedelta(hours=2))
    unknown = "00000000-0000-4000-8000-000000000000"
    bad_output = add_job(store, timedelta(hours=2), JobStatus.TIMED_OUT)
    for job_id in (timed_out, failed, open_job, completed, unknown):
        stage(aws, job_id)
    stage(aws, bad_output, b"not an image at all")
    # The completed job's output was published; a second upload to its staging URL came later.
    move_job(store, completed, JobStatus.COMPLETED)

    too_soon = late_outputs(aws, store).run()
    assert (too_soon.staged, too_soon.recorded) == (0, []), "young staged objects are their checks' business"

    report = late_outputs(aws, store).run(now=datetime.now(UTC) + LATER)

    assert report.staged == 6
    assert sorted(item.job_id for item in report.recorded) == sorted([timed_out, failed])
    for job_id in (timed_out, failed):
        record = stored_record(store, job_id)
        assert record["status"] == "COMPLETED"
        assert record["lateResult"] is True
        assert (record["outputWidth"], record["outputHeight"]) == (1600, 1200)
    assert stored_record(store, open_job)["status"] == "SUBMITTED", "an open job is its check's"
    assert stored_record(store, bad_output)["status"] == "TIMED_OUT", "bytes that are not its output change nothing"
    assert report.leftovers_removed == 1
    assert sorted(staged_keys(aws)) == sorted(f"staging/{job_id}" for job_id in (open_job, unknown, bad_output))

    again = late_outputs(aws, store).run(now=datetime.now(UTC) + LATER)
    assert again.recorded == [] and again.leftovers_removed == 0, "nothing is completed twice"


def test_a_run_looks_at_most_at_its_bound_and_every_object_is_reached_in_turn(aws, store):
    jobs = [add_job(store, timedelta(hours=2), JobStatus.TIMED_OUT) for _ in range(12)]
    for job_id in jobs:
        stage(aws, job_id)
    completed: set[str] = set()
    for _ in range(40):
        report = late_outputs(aws, store, max_objects=4).run(now=datetime.now(UTC) + LATER)
        assert report.staged <= 4
        completed |= {item.job_id for item in report.recorded}
        if len(completed) == len(jobs):
            break
    assert completed == set(jobs)


def test_the_safety_net_pass_settles_late_outputs_after_the_open_jobs(aws, store):
    from tests.unit.test_reconciliation import FakeRunware

    job_id = add_job(store, timedelta(hours=2), JobStatus.TIMED_OUT)
    stage(aws, job_id)
    reconciler = make_reconciler(aws, store, FakeRunware(), late_outputs=late_outputs(aws, store))
    reconciler.late_outputs.min_age_seconds = 0

    report = reconciler.run()

    assert [(item.job_id, item.status) for item in report.recorded] == [(job_id, "COMPLETED")]
    assert report.counts()["stagedExamined"] == 1
    assert stored_record(store, job_id)["resultVia"] == "reconcile"
