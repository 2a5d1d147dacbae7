"""Reading jobs for the commands (upscale_cli/jobs_query.py): counts, newest jobs, one job, every job of a key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.cli_target import add_job, moto_target
from upscale_cli.errors import UsageError
from upscale_cli.jobs_query import JOB_ID, count_by_status, get_job, jobs_for_key, newest_jobs, source_key
from upscale_cli.target import Target
from upscaler.job_record import job_id_for

TARGET = Target("test", "inbox-bucket", "inbox/", "output-bucket", "jobs", "secret-arn")
START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def test_job_ids_are_recognised_and_keys_are_resolved_below_the_prefix():
    assert JOB_ID.match(job_id_for("b", "inbox/a.jpg", "v1"))
    assert not JOB_ID.match("inbox/a.jpg")
    assert source_key(TARGET, "a.jpg") == "inbox/a.jpg"
    assert source_key(TARGET, "inbox/a.jpg") == "inbox/a.jpg"
    assert source_key(TARGET, "s3://inbox-bucket/inbox/x/a.jpg") == "inbox/x/a.jpg"


def test_a_key_in_another_bucket_is_a_usage_error_naming_the_inbox():
    target = Target("stack test", "inbox-bucket", "inbox/", "output-bucket", "jobs", "secret-arn")
    with pytest.raises(UsageError, match=r"s3://wrong-bucket/a.jpg is not in the inbox bucket s3://inbox-bucket/"):
        source_key(target, "s3://wrong-bucket/a.jpg")


def test_counts_cover_the_open_statuses_only(aws):
    target = moto_target()
    statuses = ["COMPLETED"] * 3 + ["FAILED", "REJECTED", "SUBMITTED", "CLAIMED", "SUBMITTED"]
    for index, status in enumerate(statuses):
        add_job(target, f"inbox/{index}.png", status, START + timedelta(minutes=index))
    counts = count_by_status(target)
    assert counts == {"CLAIMED": 1, "SUBMITTED": 2}


def test_the_newest_open_jobs_across_statuses_or_of_the_chosen_ones(aws):
    target = moto_target()
    for index, status in enumerate(["SUBMITTED", "FAILED", "CLAIMED", "SUBMITTED", "REJECTED", "SUBMITTED"]):
        add_job(target, f"inbox/{index}.png", status, START + timedelta(minutes=index))
    newest = newest_jobs(target, 3)
    assert [job["sourceKey"] for job in newest] == ["inbox/5.png", "inbox/3.png", "inbox/2.png"]
    submitted = newest_jobs(target, 10, ["SUBMITTED"])
    assert [job["sourceKey"] for job in submitted] == ["inbox/5.png", "inbox/3.png", "inbox/0.png"]


def test_one_job_by_id(aws):
    target = moto_target()
    job_id = add_job(target, "inbox/a.png", "FAILED", START)
    job = get_job(target, job_id)
    assert job is not None
    assert (job["jobId"], job["status"], job["sourceKey"]) == (job_id, "FAILED", "inbox/a.png")
    assert get_job(target, job_id_for(target.inbox_bucket, "inbox/a.png", "other")) is None


def test_every_job_of_a_key_through_its_versions_newest_first(aws):
    target = moto_target()
    key = "inbox/a.png"
    versions = [aws.s3.put_object(Bucket=target.inbox_bucket, Key=key, Body=body)["VersionId"] for body in (b"1", b"2")]
    first = add_job(target, key, "COMPLETED", START, version=versions[0])
    second = add_job(target, key, "FAILED", START + timedelta(hours=1), version=versions[1])
    add_job(target, "inbox/a.png.bak", "COMPLETED", START + timedelta(hours=2))  # same prefix, another key
    assert [job["jobId"] for job in jobs_for_key(target, key)] == [second, first]


def test_the_open_jobs_of_a_key_no_longer_in_the_bucket_are_found_through_the_open_index(aws):
    target = moto_target()
    add_job(target, "inbox/gone.png", "COMPLETED", START, version="v-deleted")  # ended: found by its id only
    again = add_job(target, "inbox/gone.png", "SUBMITTED", START + timedelta(minutes=5), version="v-deleted-too")
    add_job(target, "inbox/other.png", "SUBMITTED", START)
    assert [job["jobId"] for job in jobs_for_key(target, "inbox/gone.png")] == [again]
    assert jobs_for_key(target, "inbox/never.png") == []
