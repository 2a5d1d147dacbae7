"""Runware down long enough for uploads to land in the DLQ; then a re-drive (a message move task) finishes them."""

from __future__ import annotations

import json
import time

from local.runware_emulator import FaultConfig
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


def test_outage_lands_in_the_dlq_and_redrive_finishes_every_object(stack: LocalStack) -> None:
    assert stack.emulator is not None
    prefix = "rel-redrive/"
    stack.emulator.faults = FaultConfig(rate_5xx=1.0, status_5xx=503)
    started = time.monotonic()
    drops = [Drop(f"{index:04d}.jpg", image_bytes(170, 120, shade=index), SMALL) for index in range(scaled(8, 30))]
    dropped = drop_all(stack, prefix, drops)

    settled = settle(stack, prefix, dropped)
    down = check(stack, "Runware down: dead-lettered", prefix, dropped, started=started, settled=settled)
    assert_invariant(down)
    assert down.in_dlq == down.objects
    for job in jobs_by_key(stack, prefix).values():
        assert job["status"] == "CLAIMED", job  # claimed, never submitted: the retry will submit it
    key_prefix = stack.names["inbox_prefix"] + prefix
    letters = [
        letter for letter in dead_letters(stack) if any(key.startswith(key_prefix) for _, key, _ in letter.sources)
    ]
    assert len(letters) == down.objects
    for letter in letters:
        assert json.loads(letter.body)["Records"][0]["eventSource"] == "aws:s3", "the upload's own event"

    stack.emulator.faults = FaultConfig()
    started = time.monotonic()
    result = stack.redrive()
    assert result["Status"] == "COMPLETED"
    assert result["ApproximateNumberOfMessagesMoved"] >= down.objects
    settled = settle(stack, prefix, dropped)
    after = check(stack, "Runware down: after re-drive", prefix, dropped, started=started, settled=settled)
    assert_invariant(after)
    assert after.completed == after.objects
    assert after.in_dlq == 0
