"""Sources S3 will not let the submit function read end REJECTED on their first delivery, with a reason."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.stub import Stubber

from tests.conftest import INBOX_BUCKET, REGION
from tests.unit.queue_events import queued
from tests.unit.test_submission import jpeg, make_submitter, runware, sleeps, submit, submitter, upload
from upscaler.job_record import JobStatus
from upscaler.source_rules import unreadable_source
from upscaler.storage import ObjectStore, SourceUnreadable

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


KMS_KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
DENIED_KMS = (
    "User: arn:aws:sts::111122223333:assumed-role/submit/fn is not authorized to perform: kms:Decrypt on "
    f"resource: {KMS_KEY} because no identity-based policy allows the kms:Decrypt action"
)

# S3's answer to the ranged GET (code, status, message, modeled fields), the HEAD that follows if any,
# and the rejection it makes: code and a fragment of its reason.
ERROR_SHAPES = {
    "glacier": (
        (
            "InvalidObjectState",
            403,
            "The operation is not valid for the object's storage class",
            {"StorageClass": "GLACIER"},
        ),
        None,
        "sourceArchived",
        "archived in S3 Glacier Flexible Retrieval (GLACIER)",
    ),
    "intelligent-tiering archive": (
        ("InvalidObjectState", 403, "", {"StorageClass": "INTELLIGENT_TIERING", "AccessTier": "ARCHIVE_ACCESS"}),
        None,
        "sourceArchived",
        "S3 Intelligent-Tiering (INTELLIGENT_TIERING, Archive Access tier)",
    ),
    "sse-c": (
        (
            "InvalidRequest",
            400,
            "The object was stored using a form of Server Side Encryption. The correct parameters must be "
            "provided to retrieve the object.",
            {},
        ),
        None,
        "sourceCustomerKey",
        "customer-provided key (SSE-C), which is not supported",
    ),
    "kms not granted": (("AccessDenied", 403, DENIED_KMS, {}), None, "sourceKmsKeyNotGranted", KMS_KEY),
    "kms disabled": (
        ("KMS.DisabledException", 400, "key is disabled", {}),
        {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": KMS_KEY, "ContentLength": 5},
        "sourceKmsKeyUnusable",
        f"the KMS key {KMS_KEY} (SSE-KMS), which is disabled",
    ),
    "access denied": (
        ("AccessDenied", 403, "Access Denied", {}),
        "refused",
        "sourceAccessDenied",
        "its role needs s3:GetObject on it",
    ),
}


@pytest.mark.parametrize("shape", ERROR_SHAPES, ids=list(ERROR_SHAPES))
def test_each_refusal_of_the_get_is_a_rejection_with_what_to_do(shape):
    (code, status, message, modeled), head, rejection_code, fragment = ERROR_SHAPES[shape]
    client = botocore.session.get_session().create_client(
        "s3", region_name=REGION, aws_access_key_id="k", aws_secret_access_key="s"
    )
    stub = Stubber(client)
    stub.add_client_error("get_object", code, message, http_status_code=status, modeled_fields=modeled or None)
    if head == "refused":
        stub.add_client_error("head_object", "403", "Forbidden", http_status_code=403)
    elif head is not None:
        stub.add_response("head_object", head)
    with stub, pytest.raises(SourceUnreadable) as refused:
        ObjectStore(client).read_current("inbox", "inbox/a.jpg")
    stub.assert_no_pending_responses()
    rejection = unreadable_source(refused.value)
    assert rejection.code == rejection_code
    assert fragment in rejection.message
    assert f"(S3: {code}" in rejection.message
