"""Uploads whose own step keeps failing land in the DLQ; after the fix a re-drive (a message move
task) finishes them. (An outage of Runware no longer gets there: intake waits instead, see
test_intake_pauses.py; what reaches the DLQ is what fails on its own, here an S3 permission missing
for a folder.)"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from local.stack import LocalStack
from tests.reliability.harness import (
    Drop,
    assert_invariant,
    check,
    dead_letters,
    drop_all,
    image_bytes,
    jobs_by_key,
    scaled,
    settle,
)

SMALL = {"target-megapixels": "1"}


def refuse_s3_under(stack: LocalStack, key_prefix: str) -> Callable[[], None]:
    """The submit function's S3 client fails every call about keys under the prefix with an internal
    error (a fault that keeps coming back; a refusal such as AccessDenied is REJECTED at once); returns
    the fix."""
    client = stack.functions["SubmitFunction"].module.submitter.objects._s3

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if str(params.get("Key", "")).startswith(key_prefix):
            raise ClientError(
                {"Error": {"Code": "InternalError", "Message": "We encountered an internal error."}}, "GetObject"
            )

    client.meta.events.register("before-parameter-build.s3", refuse)
    return lambda: client.meta.events.unregister("before-parameter-build.s3", refuse)


def test_uploads_that_keep_failing_land_in_the_dlq_and_redrive_finishes_every_object(stack: LocalStack) -> None:
    assert stack.emulator is not None
    prefix = "rel-redrive/"
    key_prefix = stack.names["inbox_prefix"] + prefix
    fix = refuse_s3_under(stack, key_prefix)
    started = time.monotonic()
    drops = [Drop(f"{index:04d}.jpg", image_bytes(170, 120, shade=index), SMALL) for index in range(scaled(8, 30))]
    try:
        dropped = drop_all(stack, prefix, drops)
        settled = settle(stack, prefix, dropped)
        down = check(stack, "S3 refused for a folder: dead-lettered", prefix, dropped, started=started, settled=settled)
    finally:
        fix()
    assert_invariant(down)
    assert down.in_dlq == down.objects
    assert jobs_by_key(stack, prefix) == {}, "never validated, so never claimed"
    letters = [
        letter for letter in dead_letters(stack) if any(key.startswith(key_prefix) for _, key, _ in letter.sources)
    ]
    assert len(letters) == down.objects
    for letter in letters:
        assert json.loads(letter.body)["Records"][0]["eventSource"] == "aws:s3", "the upload's own event"

    started = time.monotonic()
    result = stack.redrive()
    assert result["Status"] == "COMPLETED"
    assert result["ApproximateNumberOfMessagesMoved"] >= down.objects
    settled = settle(stack, prefix, dropped)
    after = check(
        stack,
        "S3 refused for a folder: after the fix and a re-drive",
        prefix,
        dropped,
        started=started,
        settled=settled,
    )
    assert_invariant(after)
    assert after.completed == after.objects
    assert after.in_dlq == 0
