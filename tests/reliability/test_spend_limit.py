"""The daily spend limit: a burst beyond the limit sends exactly the limit, the rest waits (nothing
rejected, failed or dead-lettered), and raising the limit sends the rest, each task once
(docs/spend-limit.md).

The suite's stack runs without a limit, and the count is the day's (other scenarios' images are in
it): each scenario deploys a limit that leaves 20 images for the day above what is counted, with a
stack update (LocalStack.update_parameters: the functions' environment changes and new containers
read it, as after `sam deploy --parameter-overrides DailyImageLimit=...`), and raises it the same way.
Time is compressed as in test_intake_pauses.py: the resumer runs every 0.5 s, not every minute.
The real handlers run against the local stack; the emulator counts the tasks it was sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from local.stack import LocalStack
from tests.reliability.harness import (
    Drop,
    assert_invariant,
    aws,
    check,
    dead_letters,
    drop_all,
    image_bytes,
    jobs_by_key,
    sent_tasks,
    settle,
)
from tests.stack_waits import wait_on_stack
from upscaler.clock import utc_now
from upscaler.intake_pause import PAUSE_ITEM_KEY, PauseReason
from upscaler.spend_limit import LIMIT_REACHED_DETAIL_TYPE, Spend, day_of, read_spend

BURST = 50
LIMIT_IMAGES = 20
SMALL = {"target-megapixels": "1"}  # the 1-4 MP tier: $0.005 an image (the emulator's price)
# Seconds the limit is held while the stack is looked at: many resumer runs (every 0.5 s here).
HOLD_SECONDS = 4.0


@pytest.fixture(autouse=True)
def no_limit_after(stack: LocalStack) -> Iterator[None]:
    """The suite's stack runs without a limit; each scenario deploys its own, and takes it away after."""
    yield
    stack.update_parameters({"DailyImageLimit": "0", "DailySpendLimitUsd": "0"})


def photos(count: int) -> list[Drop]:
    return [
        Drop(f"{index:04d}.jpg", image_bytes(150 + index % 11 * 6, 110, shade=index), SMALL) for index in range(count)
    ]


def pause_reason(stack: LocalStack) -> str | None:
    item = aws(stack, "dynamodb").get_item(
        TableName=stack.names["jobs_table"], Key={"jobId": {"S": PAUSE_ITEM_KEY}}, ConsistentRead=True
    )
    return item["Item"]["pauseReason"]["S"] if "Item" in item else None


def limit_events(stack: LocalStack) -> list[dict[str, Any]]:
    """The spend limit events on the stack's bus (a local rule routes the bus's events to a queue)."""
    sqs = aws(stack, "sqs")
    url = stack.names["completion_events_url"]
    found: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages"):
        for message in messages:
            event = json.loads(message["Body"])
            if event.get("detail-type") == LIMIT_REACHED_DETAIL_TYPE:
                found.append(event)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def today(stack: LocalStack) -> Spend:
    return read_spend(aws(stack, "dynamodb"), stack.names["jobs_table"], day_of(utc_now()))


def test_a_burst_beyond_a_daily_image_limit_sends_the_limit_and_the_rest_once_it_is_raised(stack: LocalStack) -> None:
    before = today(stack)
    stack.update_parameters({"DailyImageLimit": str(before.images + LIMIT_IMAGES)})
    burst_beyond_the_limit(stack, "images", before, {"DailyImageLimit": str(before.images + BURST)})


def test_a_burst_beyond_a_daily_dollar_limit_sends_the_limit_and_the_rest_once_it_is_raised(stack: LocalStack) -> None:
    # $0.10 above what the day has spent: 20 images at $0.005.
    before = today(stack)
    usd = Decimal(before.microdollars) / 1_000_000
    stack.update_parameters({"DailyImageLimit": "0", "DailySpendLimitUsd": str(usd + Decimal("0.10"))})
    burst_beyond_the_limit(stack, "dollars", before, {"DailySpendLimitUsd": str(usd + Decimal("0.25"))})


def burst_beyond_the_limit(stack: LocalStack, name: str, before: Spend, raised: dict[str, str]) -> None:
    """50 uploads against a limit that leaves 20 images for the day: 20 sent, 30 wait; then raised."""
    assert stack.emulator is not None
    prefix = f"rel-spend-{name}/"
    limit_events(stack)  # earlier events are not this scenario's
    started = time.monotonic()
    dropped = drop_all(stack, prefix, photos(BURST))

    def seen() -> tuple[str | None, str, int, int, bool]:
        assert stack.emulator is not None and stack.ingestion is not None
        return (
            pause_reason(stack),
            stack.intake_mapping_state(),
            stack.ingestion.in_flight,  # batches in a submit invocation now
            stack.invocations_pending(),  # the uploads that wait are messages in the ingestion queue
            stack.emulator.wait_idle(0),
        )

    def held_back() -> bool:
        return seen() == (PauseReason.SPEND_LIMIT_REACHED, "Disabled", 0, BURST - LIMIT_IMAGES, True)

    wait_on_stack(
        stack,
        held_back,
        "intake never paused for the daily limit",
        pending=lambda: f"pause reason, mapping, in a batch, in the queue, emulator idle: {seen()}",
    )
    time.sleep(HOLD_SECONDS)  # the resumer runs many times: the limit still holds

    sent = sent_tasks(stack, prefix)
    assert sum(len(uuids) for uuids in sent.values()) == LIMIT_IMAGES, "exactly the limit was sent that day"
    jobs = jobs_by_key(stack, prefix)
    statuses = [job["status"] for job in jobs.values()]
    assert not {"REJECTED", "FAILED", "TIMED_OUT"} & set(statuses)
    assert sum(status in ("SUBMITTED", "COMPLETED") for status in statuses) == LIMIT_IMAGES
    waiting = [item for item in dropped if (item.key, item.version_id) not in sent]
    assert len(waiting) == BURST - LIMIT_IMAGES
    assert all(jobs.get(item.key, {}).get("status", "CLAIMED") == "CLAIMED" for item in waiting), "they wait"
    keys = stack.names["inbox_prefix"] + prefix
    assert not [letter for letter in dead_letters(stack) if any(key.startswith(keys) for _, key, _ in letter.sources)]
    spend = today(stack)
    counted = (spend.images - before.images, spend.microdollars - before.microdollars)
    assert counted == (LIMIT_IMAGES, LIMIT_IMAGES * 5_000), "the counter is exact"

    # The alarm's metric: published by the resume schedule's run while the pause is the limit's.
    report = stack.resume_intake_now()
    assert report["intakePaused"] is True and report["pauseReason"] == "daily spend limit reached"
    [event] = limit_events(stack)
    assert event["source"] == "s3-upscale"
    assert event["detail"]["images"] == spend.images and event["detail"]["day"] == day_of(utc_now())

    stack.update_parameters(raised)  # a stack update; nobody touches the queue or the jobs
    settled = settle(stack, prefix, dropped)
    row = check(
        stack,
        f"a burst of {BURST} beyond a daily limit of {LIMIT_IMAGES} images ({name}), then raised",
        prefix,
        dropped,
        started=started,
        settled=settled,
    )
    assert_invariant(row)
    assert (row.completed, row.rejected, row.failed, row.in_dlq) == (BURST, 0, 0, 0)
    sent = sent_tasks(stack, prefix)
    assert sorted(len(uuids) for uuids in sent.values()) == [1] * BURST, "each sent once"
    assert pause_reason(stack) is None, "the probe after the raise cleared the pause"
    assert stack.intake_mapping_state() == "Enabled"
    assert today(stack).images - before.images == BURST
