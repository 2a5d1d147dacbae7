"""The local stack's S3 refuses reads of encrypted sources as S3 does (moto alone reads them all),
and the pipeline reads each refusal as the unreadable source it is."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from local.s3_encrypted_sources import granted, refuse_ungranted_reads
from tests.conftest import INBOX_BUCKET, OUTPUT_BUCKET
from upscaler.storage import CustomerKeyEncrypted, KmsKeyRefused, ObjectStore

GRANTED = "arn:aws:kms:us-east-1:123456789012:key/11111111-1111-4111-8111-111111111111"
NOT_GRANTED = "arn:aws:kms:us-east-1:123456789012:key/22222222-2222-4222-8222-222222222222"


@pytest.fixture
def rules(aws) -> Iterator[None]:
    refuse_ungranted_reads(INBOX_BUCKET, [GRANTED, " "])
    yield
    refuse_ungranted_reads("", [])


def put_kms(aws, bucket: str, key: str, kms_key: str) -> None:
    aws.s3.put_object(Bucket=bucket, Key=key, Body=b"x" * 10, ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key)


def customer_key() -> dict[str, str]:
    secret = os.urandom(32)
    return {
        "SSECustomerAlgorithm": "AES256",
        "SSECustomerKey": base64.b64encode(secret).decode(),
        "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(secret).digest()).decode(),
    }


def test_a_key_is_granted_by_its_arn_or_its_id():
    keys = frozenset([GRANTED])
    assert granted(GRANTED, keys) and granted(GRANTED.rsplit("/", 1)[-1], keys)
    assert not granted(NOT_GRANTED, keys) and not granted("alias/other", keys)


def test_an_inbox_object_under_a_key_not_granted_is_refused_with_access_denied(aws, rules):
    put_kms(aws, INBOX_BUCKET, "inbox/secret.jpg", NOT_GRANTED)
    with pytest.raises(ClientError) as refused:
        aws.s3.get_object(Bucket=INBOX_BUCKET, Key="inbox/secret.jpg", Range="bytes=0-5")
    error = refused.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (403, "AccessDenied")
    assert f"kms:Decrypt on resource: {NOT_GRANTED}" in error["Error"]["Message"]
    # HEAD needs no KMS permission, in AWS and here.
    assert aws.s3.head_object(Bucket=INBOX_BUCKET, Key="inbox/secret.jpg")["SSEKMSKeyId"] == NOT_GRANTED
    with pytest.raises(KmsKeyRefused) as read:
        ObjectStore(aws.s3).read_current(INBOX_BUCKET, "inbox/secret.jpg")
    assert (read.value.aws_code, read.value.kms_key_id) == ("AccessDenied", NOT_GRANTED)


def test_granted_keys_default_keys_and_other_buckets_read_as_in_aws(aws, rules):
    put_kms(aws, INBOX_BUCKET, "inbox/granted.jpg", GRANTED)
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/default.jpg", Body=b"x" * 10, ServerSideEncryption="aws:kms")
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/s3.jpg", Body=b"x" * 10, ServerSideEncryption="AES256")
    put_kms(aws, OUTPUT_BUCKET, "upscaled/out.jpg", NOT_GRANTED)
    for bucket, key in (
        (INBOX_BUCKET, "inbox/granted.jpg"),
        (INBOX_BUCKET, "inbox/default.jpg"),
        (INBOX_BUCKET, "inbox/s3.jpg"),
        (OUTPUT_BUCKET, "upscaled/out.jpg"),
    ):
        assert aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"x" * 10, key


def test_an_sse_c_object_is_read_only_with_its_key(aws, rules):
    key = customer_key()
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/own-key.jpg", Body=b"y" * 10, **key)
    assert aws.s3.get_object(Bucket=INBOX_BUCKET, Key="inbox/own-key.jpg", **key)["Body"].read() == b"y" * 10
    for read in (aws.s3.get_object, aws.s3.head_object):
        with pytest.raises(ClientError) as refused:
            read(Bucket=INBOX_BUCKET, Key="inbox/own-key.jpg")
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        if read is aws.s3.get_object:
            assert refused.value.response["Error"]["Code"] == "InvalidRequest"
    with pytest.raises(CustomerKeyEncrypted):
        ObjectStore(aws.s3).read_current(INBOX_BUCKET, "inbox/own-key.jpg")
