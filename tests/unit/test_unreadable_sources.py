"""Sources S3 will not let the submit function read end REJECTED on their first delivery, with a reason."""

from __future__ import annotations

from tests.conftest import INBOX_BUCKET
from tests.unit.queue_events import queued
from tests.unit.test_submission import jpeg, make_submitter, runware, sleeps, submit, submitter, upload
from upscaler.job_record import JobStatus

__all__ = ["make_submitter", "runware", "sleeps", "submitter"]  # fixtures the tests below use


def test_an_archived_source_is_rejected_at_once_with_how_to_restore_it(aws, submitter, runware):
    record = upload(aws, "inbox/cold.jpg", jpeg())
    # Moved to an archive after the upload event (a lifecycle rule): the GET answers InvalidObjectState.
    aws.s3.copy_object(
        Bucket=INBOX_BUCKET,
        Key="inbox/cold.jpg",
        CopySource={"Bucket": INBOX_BUCKET, "Key": "inbox/cold.jpg"},
        StorageClass="DEEP_ARCHIVE",
    )
    versions = aws.s3.list_object_versions(Bucket=INBOX_BUCKET, Prefix="inbox/cold.jpg")["Versions"]
    current = next(version for version in versions if version["IsLatest"])
    record["s3"]["object"]["versionId"] = current["VersionId"]
    [outcome] = submit(submitter, queued(record))
    assert (outcome.status, outcome.code) == (JobStatus.REJECTED, "sourceArchived")
    assert "S3 Glacier Deep Archive (DEEP_ARCHIVE)" in outcome.message
    assert "aws s3api restore-object" in outcome.message
    assert runware.requests == []
    job = submitter.jobs.get(outcome.job_id)
    assert (job.status, job.error_code, job.error_message) == ("REJECTED", "sourceArchived", outcome.message)
