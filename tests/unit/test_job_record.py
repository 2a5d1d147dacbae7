"""The typed job and its one conversion to and from the table's records."""

from __future__ import annotations

from decimal import Decimal

import pytest

from upscaler.job_record import (
    ATTRIBUTE_OF,
    OPEN_STATUSES,
    TERMINAL_STATUSES,
    Job,
    JobStatus,
    attribute_name,
    record_from_item,
)

# Attribute names users read in records, events and the CLI: they must not change with the code.
PUBLISHED_NAMES = {
    "job_id": "jobId",
    "source_etag": "sourceETag",
    "source_version_id": "sourceVersionId",
    "image_uuid": "imageUUID",
    "image_url": "imageURL",
    "output_etag": "outputETag",
    "upload_to_submit_seconds": "uploadToSubmitSeconds",
    "last_malformed_report_at": "lastMalformedReportAt",
    "expires_at": "expiresAt",
}


def test_attribute_names_are_the_published_ones():
    for field_name, attribute in PUBLISHED_NAMES.items():
        assert ATTRIBUTE_OF[field_name] == attribute
    assert len(set(ATTRIBUTE_OF.values())) == len(ATTRIBUTE_OF)
    assert "extra" not in ATTRIBUTE_OF


def test_status_sets_split_every_status():
    assert {JobStatus.CLAIMED, JobStatus.SUBMITTED} == OPEN_STATUSES
    assert set(JobStatus) == OPEN_STATUSES | TERMINAL_STATUSES
    assert not OPEN_STATUSES & TERMINAL_STATUSES


def test_record_round_trip_keeps_unknown_attributes():
    record = {
        "jobId": "4f1c2a3e-0000-4000-8000-000000000000",
        "status": "SUBMITTED",
        "sourceBucket": "inbox",
        "sourceKey": "inbox/ä b+c.jpg",
        "sourceETag": '"abc"',
        "cost": Decimal("0.005"),
        "enhanceDetails": False,
        "addedByANewerVersion": {"nested": 1},
    }
    job = Job.from_record(record)
    assert job.status is JobStatus.SUBMITTED
    assert job.source_etag == '"abc"'
    assert job.enhance_details is False
    assert job.extra == {"addedByANewerVersion": {"nested": 1}}
    assert job.to_record() == record
    assert job.is_open


def test_item_round_trip_gives_plain_values():
    job = Job(
        job_id="4f1c2a3e-0000-4000-8000-000000000000",
        status=JobStatus.COMPLETED,
        source_bucket="inbox",
        source_key="inbox/a.jpg",
        source_size=1234,
        cost=Decimal("0.0031"),
        total_seconds=Decimal("12.5"),
        late_result=True,
    )
    item = job.to_item()
    assert item["status"] == {"S": "COMPLETED"}
    assert item["sourceSize"] == {"N": "1234"}
    assert "imageUUID" not in item  # empty fields are not written
    back = Job.from_item(item)
    assert back == job
    assert type(back.source_size) is int
    assert record_from_item(item)["cost"] == Decimal("0.0031")
    assert not back.is_open


def test_a_name_that_is_no_field_is_refused():
    assert attribute_name("image_uuid") == "imageUUID"
    with pytest.raises(ValueError, match="no field 'imageUUID'"):
        attribute_name("imageUUID")


def test_but_changes_only_what_it_names():
    job = Job(job_id="x", source_bucket="b", source_key="k", error_code="old")
    changed = job.but(error_code=None, status=JobStatus.CLAIMED)
    assert (changed.error_code, changed.status, changed.source_key) == (None, JobStatus.CLAIMED, "k")
    assert job.error_code == "old"
