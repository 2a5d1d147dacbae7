"""Sources S3 will not let the submit function read (archived, a KMS key it is not granted, SSE-C)
are REJECTED on their first receive with what to do, and never reach the dead-letter queue; a
source under the granted KMS key is upscaled."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from collections import Counter
from typing import Any
from urllib.parse import unquote_plus

import pytest

from local.stack import LocalStack
from tests.reliability.harness import (
    GRANTED_SOURCE_KMS_KEY,
    Dropped,
    assert_invariant,
    aws,
    check,
    dead_letters,
    image_bytes,
    jobs_by_key,
    sent_tasks,
    settle,
)

NOT_GRANTED_KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/9f9f9f9f-5555-4666-8777-888888888888"
SMALL = {"target-megapixels": "1"}


def receives(stack: LocalStack, monkeypatch: pytest.MonkeyPatch, key_prefix: str) -> Counter[tuple[str, str]]:
    """(key, ApproximateReceiveCount) of every message the submit function was handed, per key."""
    submit = stack.functions["SubmitFunction"]
    original = submit.invoke
    seen: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()

    def counting(event: dict[str, Any]) -> Any:
        for message in event.get("Records", []):
            count = str(message.get("attributes", {}).get("ApproximateReceiveCount"))
            for record in json.loads(message["body"]).get("Records", []):
                key = unquote_plus(str(record.get("s3", {}).get("object", {}).get("key", "")))
                if key.startswith(key_prefix):
                    with lock:
                        seen[(key, count)] += 1
        return original(event)

    monkeypatch.setattr(submit, "invoke", counting)
    return seen


def customer_key() -> dict[str, str]:
    secret = os.urandom(32)
    return {
        "SSECustomerAlgorithm": "AES256",
        "SSECustomerKey": base64.b64encode(secret).decode(),
        "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(secret).digest()).decode(),
    }


def test_unreadable_sources_are_rejected_on_their_first_receive(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = "rel-unreadable/"
    key_prefix = stack.names["inbox_prefix"] + prefix
    seen = receives(stack, monkeypatch, key_prefix)
    s3 = aws(stack, "s3")
    bucket = stack.names["inbox_bucket"]
    uploads: dict[str, dict[str, Any]] = {
        "archived.jpg": {"StorageClass": "GLACIER"},
        "deep-archived.jpg": {"StorageClass": "DEEP_ARCHIVE"},
        "kms-not-granted.jpg": {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": NOT_GRANTED_KMS_KEY},
        "sse-c.jpg": customer_key(),
        "kms-granted.jpg": {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": GRANTED_SOURCE_KMS_KEY},
    }
    started = time.monotonic()
    dropped = []
    for index, (name, extra) in enumerate(uploads.items()):
        body = image_bytes(200, 120, shade=index)
        put = s3.put_object(Bucket=bucket, Key=key_prefix + name, Body=body, Metadata=SMALL, **extra)
        dropped.append(Dropped(key_prefix + name, put["VersionId"], put["ETag"].strip('"'), len(body), SMALL))
    settled = settle(stack, prefix, dropped)
    row = check(
        stack, "unreadable sources: rejected on the first receive", prefix, dropped, started=started, settled=settled
    )
    assert_invariant(row)
    assert (row.rejected, row.completed, row.in_dlq) == (4, 1, 0)

    jobs = {key.removeprefix(key_prefix): job for key, job in jobs_by_key(stack, prefix).items()}
    reasons = {name: (job["status"], job.get("errorCode")) for name, job in jobs.items()}
    assert reasons == {
        "archived.jpg": ("REJECTED", "sourceArchived"),
        "deep-archived.jpg": ("REJECTED", "sourceArchived"),
        "kms-not-granted.jpg": ("REJECTED", "sourceKmsKeyNotGranted"),
        "sse-c.jpg": ("REJECTED", "sourceCustomerKey"),
        "kms-granted.jpg": ("COMPLETED", None),
    }
    assert "S3 Glacier Flexible Retrieval (GLACIER)" in jobs["archived.jpg"]["errorMessage"]
    assert "aws s3api restore-object" in jobs["deep-archived.jpg"]["errorMessage"]
    kms_reason = jobs["kms-not-granted.jpg"]["errorMessage"]
    assert NOT_GRANTED_KMS_KEY in kms_reason and "SourceKmsKeyArns" in kms_reason
    assert "customer-provided key (SSE-C), which is not supported" in jobs["sse-c.jpg"]["errorMessage"]

    # Each was handed to the submit function once, on its first receive, and never dead-lettered.
    rejected = [key_prefix + name for name, (status, _) in reasons.items() if status == "REJECTED"]
    for key in rejected:
        assert {count for (seen_key, count), _ in seen.items() if seen_key == key} == {"1"}, key
        assert sum(times for (seen_key, _), times in seen.items() if seen_key == key) == 1, key
    assert not [
        letter for letter in dead_letters(stack) if any(key.startswith(key_prefix) for _, key, _ in letter.sources)
    ]
    assert not {key for key, _ in sent_tasks(stack, prefix)} & set(rejected), "nothing unreadable is sent to Runware"
