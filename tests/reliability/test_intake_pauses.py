"""Intake that waits: an outage or an empty balance of any length dead-letters nothing, and
everything resumes with no operator action (docs/intake-pauses.md).

Time is compressed as the local stack compresses it (local/stack.py, StackConfig):

| | AWS | here |
|---|---|---|
| a failed message is received again after (the visibility timeout) | 660 s | 1 s |
| the resumer runs every | 60 s | 0.5 s |
| the wait between attempts | 60 s doubling to 1800 s | 1 s doubling to 4 s |

So 20 visibility timeouts of Runware 5xx is 20 s here (3 h 40 min on AWS). Before intake waited,
the same outage dead-lettered every upload of the burst: five receives took about 20 s here.
The real handlers run against the local stack; the Runware emulator injects the faults.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from local.runware_emulator import FaultConfig
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
    scaled,
    settle,
)
from tests.stack_waits import wait_on_stack
from upscaler.intake_pause import PAUSE_ITEM_KEY

SMALL = {"target-megapixels": "1"}
VISIBILITY_TIMEOUT_HERE_SECONDS = 1  # StackConfig.redelivery_seconds
OUTAGE_VISIBILITY_TIMEOUTS = 20


def photos(count: int) -> list[Drop]:
    return [
        Drop(f"{index:04d}.jpg", image_bytes(150 + index % 11 * 6, 110, shade=index), SMALL) for index in range(count)
    ]


def pause_item(stack: LocalStack) -> dict[str, Any] | None:
    item = aws(stack, "dynamodb").get_item(
        TableName=stack.names["jobs_table"], Key={"jobId": {"S": PAUSE_ITEM_KEY}}, ConsistentRead=True
    )
    return item.get("Item")


def responses(stack: LocalStack, status: int) -> int:
    assert stack.emulator is not None
    return int(stack.emulator.stats()["responses_by_status"].get(str(status), 0))


def letters_under(stack: LocalStack, prefix: str) -> int:
    key_prefix = stack.names["inbox_prefix"] + prefix
    return sum(1 for letter in dead_letters(stack) if any(k.startswith(key_prefix) for _, k, _ in letter.sources))


@dataclass
class Observed:
    """What intake did while a fault was in force, looked at every half second."""

    reasons: set[str] = field(default_factory=set)
    mapping_states: set[str] = field(default_factory=set)
    most_attempts: int = 0
    dead_letters: int = 0


def hold_fault(stack: LocalStack, prefix: str, seconds: float) -> Observed:
    """Keep the fault in force for `seconds`, watching what intake does meanwhile."""
    seen = Observed()
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        item = pause_item(stack)
        if item is not None:
            seen.reasons.add(item["pauseReason"]["S"])
            seen.most_attempts = max(seen.most_attempts, int(item["probeAttempts"]["N"]))
        seen.mapping_states.add(stack.intake_mapping_state())
        time.sleep(0.5)
    seen.dead_letters = letters_under(stack, prefix)
    return seen


def test_runware_5xx_for_20_visibility_timeouts_in_a_burst_of_100_dead_letters_nothing(stack: LocalStack) -> None:
    assert stack.emulator is not None
    prefix = "rel-intake-5xx/"
    stack.emulator.faults = FaultConfig(rate_5xx=1.0, status_5xx=503)
    started = time.monotonic()
    dropped = drop_all(stack, prefix, photos(scaled(100, 300)))

    during = hold_fault(stack, prefix, OUTAGE_VISIBILITY_TIMEOUTS * VISIBILITY_TIMEOUT_HERE_SECONDS)
    assert during.reasons == {"Runware unavailable"}
    assert "Disabled" in during.mapping_states, "intake stopped taking work"
    assert during.most_attempts >= 2, "probes failed and the wait grew: the breaker opened again"
    assert during.dead_letters == 0

    stack.emulator.faults = FaultConfig()  # Runware is back; nobody does anything
    settled = settle(stack, prefix, dropped)
    row = check(
        stack, "Runware 5xx for 20 visibility timeouts: intake waits", prefix, dropped, started=started, settled=settled
    )
    assert_invariant(row)
    assert (row.completed, row.in_dlq) == (row.objects, 0)
    assert pause_item(stack) is None, "the probe that succeeded cleared the pause"
    assert stack.intake_mapping_state() == "Enabled"
    # The emulator keeps one task per taskUUID and answers a repeat with conflictTaskUUID (HTTP 400).
    assert responses(stack, 400) == 0, "no job was sent twice"
    accepted = stack.emulator.tasks
    assert all(job["jobId"] in accepted for job in jobs_by_key(stack, prefix).values())


def test_402_until_the_balance_is_topped_up_dead_letters_nothing_and_resumes_alone(stack: LocalStack) -> None:
    assert stack.emulator is not None
    prefix = "rel-intake-402/"
    stack.emulator.faults = FaultConfig(account_error_status=402)
    started = time.monotonic()
    dropped = drop_all(stack, prefix, photos(scaled(100, 300)))

    during = hold_fault(stack, prefix, OUTAGE_VISIBILITY_TIMEOUTS * VISIBILITY_TIMEOUT_HERE_SECONDS)
    assert during.reasons == {"account refused"}
    assert "Disabled" in during.mapping_states
    assert during.dead_letters == 0
    waiting = jobs_by_key(stack, prefix)
    assert waiting and {job["status"] for job in waiting.values()} == {"CLAIMED"}, "no job fails for the balance"
    assert all("insufficientCredits" in job["waitingReason"] for job in waiting.values())

    stack.emulator.faults = FaultConfig()  # credits topped up
    settled = settle(stack, prefix, dropped)
    row = check(stack, "Runware 402 until topped up: intake waits", prefix, dropped, started=started, settled=settled)
    assert_invariant(row)
    assert (row.completed, row.failed, row.in_dlq) == (row.objects, 0, 0)
    assert responses(stack, 400) == 0, "no job was sent twice"
    assert all("waitingReason" not in job for job in jobs_by_key(stack, prefix).values())
    assert pause_item(stack) is None


def test_an_unreadable_message_is_dead_lettered_on_its_first_receive(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = f"this is not an S3 event {time.time_ns()}"
    submit = stack.functions["SubmitFunction"]
    original = submit.invoke
    deliveries: list[str] = []

    def counting(event: dict[str, Any]) -> Any:
        deliveries.extend(record["body"] for record in event.get("Records", []) if record.get("body") == body)
        return original(event)

    monkeypatch.setattr(submit, "invoke", counting)
    sent = aws(stack, "sqs").send_message(QueueUrl=stack.names["ingest_queue_url"], MessageBody=body)["MessageId"]

    letters: list[Any] = []

    def lettered() -> bool:
        letters[:] = [letter for letter in dead_letters(stack) if letter.body == body]
        return bool(letters) and not stack.invocations_pending()

    wait_on_stack(stack, lettered, "the unreadable message never reached the dead-letter queue", poll_seconds=0.3)
    assert len(deliveries) == 1, "received once, not SubmitMaxReceiveCount times"
    [letter] = letters
    assert letter.message_id != sent, "sent there by the function on that receive, not moved by the redrive policy"
