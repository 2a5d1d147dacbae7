"""upscaler.storage: the S3 client's endpoint, and what ObjectStore makes of S3's answers.

create_s3_client() names the regional S3 endpoint of the region's partition (no network: the
client is only built and URLs only signed, which botocore does locally). ObjectStore's reads,
copies and deletes run against botocore's Stubber (answers S3 gives that moto does not) or moto.
"""

from __future__ import annotations

import io
from urllib.parse import parse_qs, parse_qsl, urlsplit

import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from tests.conftest import INBOX_BUCKET, OUTPUT_BUCKET, REGION
from upscaler.storage import (
    CustomerKeyEncrypted,
    KmsKeyRefused,
    ObjectArchived,
    ObjectDeleted,
    ObjectInfo,
    ObjectMissing,
    ObjectStore,
    ReadDenied,
    create_s3_client,
)


@pytest.fixture
def region_env(environment, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)

    def set_region(region: str) -> None:
        monkeypatch.setenv("AWS_REGION", region)
        monkeypatch.setenv("AWS_DEFAULT_REGION", region)

    return set_region


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [
        ("us-east-1", "https://s3.us-east-1.amazonaws.com"),  # regional, not the global s3.amazonaws.com
        ("eu-west-1", "https://s3.eu-west-1.amazonaws.com"),
        ("cn-north-1", "https://s3.cn-north-1.amazonaws.com.cn"),
        ("cn-northwest-1", "https://s3.cn-northwest-1.amazonaws.com.cn"),
        ("us-gov-west-1", "https://s3.us-gov-west-1.amazonaws.com"),
        ("eusc-de-east-1", "https://s3.eusc-de-east-1.amazonaws.eu"),
        # Regions newer than the installed botocore: the partition comes from its region pattern.
        ("cn-south-7", "https://s3.cn-south-7.amazonaws.com.cn"),
        ("us-gov-central-9", "https://s3.us-gov-central-9.amazonaws.com"),
    ],
)
def test_client_and_presigned_urls_use_the_partitions_regional_endpoint(region_env, region, endpoint):
    region_env(region)
    s3 = create_s3_client()
    assert s3.meta.endpoint_url == endpoint
    host = urlsplit(endpoint).netloc
    for method, params in (("get_object", {"VersionId": "v1"}), ("put_object", {})):
        url = s3.generate_presigned_url(method, Params={"Bucket": "photos", "Key": "a.png", **params}, ExpiresIn=60)
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("https", f"photos.{host}")  # virtual-hosted, same partition
        credential = dict(parse_qsl(parts.query))["X-Amz-Credential"].split("/")
        assert credential[2:4] == [region, "s3"]


def test_a_region_of_no_known_partition_falls_back_to_the_commercial_one(region_env):
    region_env("zz-nowhere-1")
    assert create_s3_client().meta.endpoint_url == "https://s3.zz-nowhere-1.amazonaws.com"


def test_a_custom_s3_endpoint_wins_and_is_path_style(region_env, monkeypatch):
    region_env("cn-north-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:4566")
    s3 = create_s3_client()
    assert s3.meta.endpoint_url == "http://127.0.0.1:4566"
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": "a.png"}, ExpiresIn=60)
    assert url.startswith("http://127.0.0.1:4566/photos/a.png?")


# --- S3's answers to the one ranged GET ---------------------------------------------------------


def stubbed_store() -> tuple[ObjectStore, Stubber]:
    client = botocore.session.get_session().create_client(
        "s3", region_name=REGION, aws_access_key_id="k", aws_secret_access_key="s"
    )
    return ObjectStore(client), Stubber(client)


def test_a_404_that_says_delete_marker_is_a_delete_without_a_second_call():
    store, stub = stubbed_store()
    stub.add_client_error(
        "get_object",
        "NoSuchKey",
        http_status_code=404,
        response_meta={"HTTPHeaders": {"x-amz-delete-marker": "true", "x-amz-version-id": "dm1"}},
    )
    with stub, pytest.raises(ObjectDeleted):
        store.read_current("b", "k", event_version_id="v1")
    stub.assert_no_pending_responses()


def test_a_whole_object_answer_to_a_range_gives_its_size():
    store, stub = stubbed_store()
    body = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
    stub.add_response(
        "get_object",
        {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentLength": len(body), "ETag": '"e"'},
    )
    with stub:
        current = store.read_current("b", "k")
    assert (current.info.size, current.info.version_id, current.info.etag) == (len(body), None, "e")
    assert current.header_bytes.take(0, 8) == body[:8]


# --- ObjectStore against moto -------------------------------------------------------------------


def test_head_reads_the_objects_fields_with_metadata_names_in_lower_case(aws):
    put = aws.s3.put_object(
        Bucket=INBOX_BUCKET, Key="inbox/a.jpg", Body=b"12345", ContentType="image/jpeg", Metadata={"Target": "6"}
    )
    info = ObjectStore(aws.s3).head(INBOX_BUCKET, "inbox/a.jpg")
    assert info == ObjectInfo(
        bucket=INBOX_BUCKET,
        key="inbox/a.jpg",
        version_id=put["VersionId"],
        size=5,
        etag=put["ETag"].strip('"'),
        content_type="image/jpeg",
        metadata={"target": "6"},
    )


def test_head_of_a_missing_key_or_version_is_object_missing(aws):
    store = ObjectStore(aws.s3)
    with pytest.raises(ObjectMissing):
        store.head(INBOX_BUCKET, "inbox/never.jpg")
    put = aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/a.jpg", Body=b"x")
    aws.s3.delete_object(Bucket=INBOX_BUCKET, Key="inbox/a.jpg", VersionId=put["VersionId"])
    with pytest.raises(ObjectMissing):
        store.head(INBOX_BUCKET, "inbox/a.jpg", put["VersionId"])


def test_a_delete_marker_over_the_events_version_is_a_delete_and_a_purged_version_is_missing(aws):
    store = ObjectStore(aws.s3)
    marked = aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/marked.jpg", Body=b"x")
    aws.s3.delete_object(Bucket=INBOX_BUCKET, Key="inbox/marked.jpg")  # a delete marker
    with pytest.raises(ObjectDeleted):
        store.read_current(INBOX_BUCKET, "inbox/marked.jpg", event_version_id=marked["VersionId"])
    purged = aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/purged.jpg", Body=b"x")
    aws.s3.delete_object(Bucket=INBOX_BUCKET, Key="inbox/purged.jpg", VersionId=purged["VersionId"])
    with pytest.raises(ObjectMissing) as missing:
        store.read_current(INBOX_BUCKET, "inbox/purged.jpg", event_version_id=purged["VersionId"])
    assert not isinstance(missing.value, ObjectDeleted)


def test_read_current_counts_the_bytes_it_fetched(aws):
    body = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    put = aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/a.png", Body=body)
    store = ObjectStore(aws.s3)
    current = store.read_current(INBOX_BUCKET, "inbox/a.png")
    assert (current.info.size, current.info.version_id) == (len(body), put["VersionId"])
    assert store.header_bytes_read == len(body)


def test_presigned_get_names_the_version_and_presigned_put_no_content_type(aws):
    store = ObjectStore(create_s3_client())
    info = ObjectInfo(INBOX_BUCKET, "inbox/a b.jpg", "v1", 1, "e", "", {})
    get = urlsplit(store.presign_get(info, 300))
    assert get.path == "/inbox/a%20b.jpg"
    assert parse_qs(get.query)["versionId"] == ["v1"]
    assert parse_qs(get.query)["X-Amz-Expires"] == ["300"]
    unversioned = parse_qs(urlsplit(store.presign_get(ObjectInfo(INBOX_BUCKET, "k", None, 1, "e", "", {}), 60)).query)
    assert "versionId" not in unversioned
    put = parse_qs(urlsplit(store.presign_put(OUTPUT_BUCKET, "staging/j", 60)).query)
    assert put["X-Amz-SignedHeaders"] == ["host"]


def test_copy_replaces_type_and_metadata_and_delete_removes_the_source(aws):
    aws.s3.put_object(
        Bucket=OUTPUT_BUCKET, Key="staging/j", Body=b"bytes", ContentType="binary/octet-stream", Metadata={"old": "1"}
    )
    store = ObjectStore(aws.s3)
    staged = store.head(OUTPUT_BUCKET, "staging/j")
    etag = store.copy(staged, "upscaled/a.png", "image/png", {"job-id": "j"})
    final = store.head(OUTPUT_BUCKET, "upscaled/a.png")
    assert (final.content_type, final.metadata, final.etag) == ("image/png", {"job-id": "j"}, etag)
    store.delete(OUTPUT_BUCKET, "staging/j")
    with pytest.raises(ObjectMissing):
        store.head(OUTPUT_BUCKET, "staging/j")


def test_copy_takes_the_version_that_was_read_when_the_key_changed_since(aws):
    aws.s3.put_bucket_versioning(Bucket=OUTPUT_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key="staging/j", Body=b"verified bytes")
    store = ObjectStore(aws.s3)
    verified = store.read_current(OUTPUT_BUCKET, "staging/j").info
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key="staging/j", Body=b"written later")
    sent: list[dict] = []
    aws.s3.meta.events.register("before-call.s3.CopyObject", lambda params, **_: sent.append(params["headers"]))
    store.copy(verified, "upscaled/a.png", "image/png", {})
    body = aws.s3.get_object(Bucket=OUTPUT_BUCKET, Key="upscaled/a.png")["Body"].read()
    assert body == b"verified bytes"
    # S3 refuses the copy (412) if the bytes at the key are no longer those verified.
    assert sent[0]["x-amz-copy-source-if-match"] == f'"{verified.etag}"'


# --- sources S3 will not let anyone read: archived, SSE-C, a KMS key, access denied -------------

KMS_KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def refused_get(stub: Stubber, code: str, status: int, message: str = "", **modeled: str) -> None:
    stub.add_client_error("get_object", code, message, http_status_code=status, modeled_fields=modeled or None)


def test_invalid_object_state_is_an_archived_object_with_its_class_and_tier():
    store, stub = stubbed_store()
    refused_get(
        stub,
        "InvalidObjectState",
        403,
        "The operation is not valid for the object's storage class",
        StorageClass="INTELLIGENT_TIERING",
        AccessTier="DEEP_ARCHIVE_ACCESS",
    )
    with stub, pytest.raises(ObjectArchived) as archived:
        store.read_current("b", "k")
    assert (archived.value.storage_class, archived.value.access_tier) == ("INTELLIGENT_TIERING", "DEEP_ARCHIVE_ACCESS")
    stub.assert_no_pending_responses()


def test_an_archived_object_without_its_class_in_the_error_is_asked_with_a_head():
    store, stub = stubbed_store()
    refused_get(stub, "InvalidObjectState", 403)
    stub.add_response("head_object", {"StorageClass": "DEEP_ARCHIVE", "ContentLength": 5})
    with stub, pytest.raises(ObjectArchived) as archived:
        store.read_current("b", "k")
    assert archived.value.storage_class == "DEEP_ARCHIVE"


def test_a_glacier_object_in_moto_is_archived(aws):
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/cold.jpg", Body=b"x" * 10, StorageClass="GLACIER")
    with pytest.raises(ObjectArchived) as archived:
        ObjectStore(aws.s3).read_current(INBOX_BUCKET, "inbox/cold.jpg")
    assert archived.value.storage_class == "GLACIER"
    assert archived.value.aws_code == "InvalidObjectState"


@pytest.mark.parametrize(
    "message",
    [
        "The object was stored using a form of Server Side Encryption. The correct parameters must be "
        "provided to retrieve the object.",
        "The object was stored using server-side encryption with customer-provided keys",
    ],
)
def test_a_400_about_server_side_encryption_is_an_sse_c_object(message):
    store, stub = stubbed_store()
    refused_get(stub, "InvalidRequest", 400, message)
    with stub, pytest.raises(CustomerKeyEncrypted) as refused:
        store.read_current("b", "k")
    assert refused.value.aws_message == message


def test_a_400_about_something_else_is_not_taken_for_sse_c():
    store, stub = stubbed_store()
    refused_get(stub, "InvalidRequest", 400, "Something else entirely")
    with stub, pytest.raises(ClientError):
        store.read_current("b", "k")


@pytest.mark.parametrize(
    "message",
    [
        f"User: arn:aws:sts::111122223333:assumed-role/submit/fn is not authorized to perform: kms:Decrypt "
        f"on resource: {KMS_KEY} because no identity-based policy allows the kms:Decrypt action",
        f"Access denied to {KMS_KEY}",
    ],
)
def test_access_denied_naming_a_kms_key_is_that_key_refused(message):
    store, stub = stubbed_store()
    refused_get(stub, "AccessDenied", 403, message)
    with stub, pytest.raises(KmsKeyRefused) as refused:
        store.read_current("b", "k")
    assert refused.value.kms_key_id == KMS_KEY
    stub.assert_no_pending_responses()


@pytest.mark.parametrize("code", ["KMS.DisabledException", "KMS.KMSInvalidStateException", "KMS.NotFoundException"])
def test_a_kms_error_code_names_the_key_from_a_head(code):
    store, stub = stubbed_store()
    refused_get(stub, code, 400, "The key is not usable")
    stub.add_response("head_object", {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": KMS_KEY, "ContentLength": 5})
    with stub, pytest.raises(KmsKeyRefused) as refused:
        store.read_current("b", "k")
    assert (refused.value.aws_code, refused.value.kms_key_id) == (code, KMS_KEY)


def test_a_bare_access_denied_on_a_kms_object_the_head_can_see_is_the_key():
    store, stub = stubbed_store()
    refused_get(stub, "AccessDenied", 403, "Access Denied")
    stub.add_response("head_object", {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": KMS_KEY, "ContentLength": 5})
    with stub, pytest.raises(KmsKeyRefused) as refused:
        store.read_current("b", "k")
    assert refused.value.kms_key_id == KMS_KEY


def test_a_bare_access_denied_the_head_shares_is_read_denied():
    store, stub = stubbed_store()
    refused_get(stub, "AccessDenied", 403, "Access Denied")
    stub.add_client_error("head_object", "403", "Forbidden", http_status_code=403)
    with stub, pytest.raises(ReadDenied) as refused:
        store.read_current("b", "k")
    assert (refused.value.aws_code, refused.value.aws_message) == ("AccessDenied", "Access Denied")


def test_a_throttle_is_still_an_error_to_retry():
    store, stub = stubbed_store()
    refused_get(stub, "SlowDown", 503, "Please reduce your request rate.")
    with stub, pytest.raises(ClientError):
        store.read_current("b", "k")


# --- URLs signed by sessions that outlive them ------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_urls_are_signed_by_a_role_session_renewed_before_it_would_expire_under_one(aws):
    import time
    from urllib.parse import parse_qs, urlsplit

    import boto3

    from upscaler.storage import MAX_SIGNED_URL_SECONDS, SigningSession

    clock = Clock(time.time())
    signing = SigningSession(
        boto3.client("sts", region_name="us-east-1"), "arn:aws:iam::123456789012:role/url-signing", clock=clock
    )
    objects = ObjectStore(aws.s3, signing)

    def signed(url: str) -> tuple[str, str]:
        query = parse_qs(urlsplit(url).query)
        return query["X-Amz-Credential"][0].split("/")[0], query["X-Amz-Expires"][0]

    first_key, expires = signed(objects.presign_put("out", "staging/a", 1800))
    assert expires == "1800" and first_key != "testing"  # the session's key, not the function's
    clock.now += 1000  # 2600 s left of the hour: still covers 1800 s and the margin
    assert signed(objects.presign_put("out", "staging/b", 1800))[0] == first_key
    clock.now += 600  # 2000 s left: a 1800 s URL would come within the margin of the session's end
    renewed_key, _ = signed(objects.presign_put("out", "staging/c", 1800))
    assert renewed_key != first_key and signing.sessions_assumed == 2
    # Longer than a chained session can cover: cut, so X-Amz-Expires tells the truth.
    assert signed(objects.presign_put("out", "staging/d", 10800))[1] == str(MAX_SIGNED_URL_SECONDS)
