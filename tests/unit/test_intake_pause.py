"""upscaler.intake_pause against moto: the pause item's rules, the back-off, the resumer, and the
breaker's open -> half-open -> closed (or open again) cycle with the mapping in moto's Lambda."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

import boto3
import pytest

from tests.conftest import JOBS_TABLE, REGION, SUBMIT_FUNCTION
from tests.unit.queue_events import INGEST_QUEUE_ARN, mapping_state, register_ingest_mapping
from upscaler.intake_pause import (
    PAUSE_ITEM_KEY,
    RESUME_CONDITIONS,
    SQS_MAX_DELAY_SECONDS,
    BackOff,
    Gate,
    IngestMapping,
    IntakeBreaker,
    IntakePause,
    IntakeResumer,
    PauseReason,
    PauseStore,
    describe,
)
from upscaler.open_jobs import OPEN_INDEX, OPEN_SHARDS

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(aws) -> PauseStore:
    return PauseStore(aws.dynamodb, JOBS_TABLE, BackOff(60, 1800))


@pytest.fixture
def mapping_uuid(aws) -> str:
    return register_ingest_mapping(SUBMIT_FUNCTION)


@pytest.fixture
def mapping(aws, mapping_uuid) -> IngestMapping:
    return IngestMapping(boto3.client("lambda", region_name=REGION), SUBMIT_FUNCTION, INGEST_QUEUE_ARN)


@pytest.fixture
def breaker(store) -> IntakeBreaker:
    return IntakeBreaker(store, partial(IngestMapping, boto3.client("lambda", region_name=REGION)))


def test_the_back_off_doubles_from_one_minute_to_at_most_thirty():
    backoff = BackOff(60, 1800)
    assert [backoff.wait_after(n) for n in range(1, 8)] == [60, 120, 240, 480, 960, 1800, 1800]
    assert backoff.wait_after(10_000) == 1800


def test_every_reason_has_a_resume_condition():
    assert set(RESUME_CONDITIONS) == set(PauseReason)


def test_a_first_failure_opens_a_pause_the_item_of_which_is_in_no_index(aws, store):
    pause = store.open(PauseReason.RUNWARE_UNAVAILABLE, "HTTP 503", None, NOW)
    assert (pause.attempts, pause.since, pause.next_probe_at) == (1, NOW, NOW + timedelta(seconds=60))
    assert store.read() == pause
    item = aws.dynamodb.get_item(TableName=JOBS_TABLE, Key={"jobId": {"S": PAUSE_ITEM_KEY}})["Item"]
    assert "openShard" not in item and "openSince" not in item, "no attribute of the open-jobs index"
    for shard in range(OPEN_SHARDS):
        found = aws.dynamodb.query(
            TableName=JOBS_TABLE,
            IndexName=OPEN_INDEX,
            KeyConditionExpression="openShard = :n",
            ExpressionAttributeValues={":n": {"N": str(shard)}},
        )["Items"]
        assert found == []


def test_a_failed_probe_waits_twice_as_long_and_keeps_since(store):
    first = store.open(PauseReason.ACCOUNT_REFUSED, "402 insufficientCredits", None, NOW)
    later = NOW + timedelta(seconds=61)
    second = store.open(PauseReason.ACCOUNT_REFUSED, "402 again", first, later)
    assert (second.attempts, second.since, second.next_probe_at) == (2, NOW, later + timedelta(seconds=120))
    assert store.read() == second


def test_batches_failing_together_count_one_failed_attempt(store):
    first = store.open(PauseReason.RUNWARE_UNAVAILABLE, "503", None, NOW)
    later = NOW + timedelta(seconds=61)
    one = store.open(PauseReason.RUNWARE_UNAVAILABLE, "503 (batch one)", first, later)
    other = store.open(PauseReason.RUNWARE_UNAVAILABLE, "503 (batch two)", first, later)  # read the same pause
    assert other == one and store.read().attempts == 2
    # Two first failures at once: the second finds the first's pause and adds nothing.
    store.clear(one)
    a = store.open(PauseReason.RUNWARE_UNAVAILABLE, "a", None, NOW)
    b = store.open(PauseReason.RUNWARE_UNAVAILABLE, "b", None, NOW)
    assert b == a and store.read().attempts == 1


def test_a_probe_that_succeeds_does_not_clear_a_pause_renewed_meanwhile(store):
    first = store.open(PauseReason.RUNWARE_UNAVAILABLE, "503", None, NOW)
    renewed = store.open(PauseReason.RUNWARE_UNAVAILABLE, "503", first, NOW + timedelta(seconds=61))
    assert store.clear(first) is False
    assert store.read() == renewed
    assert store.clear(renewed) is True
    assert store.read() is None


def test_the_gate_opens_half_opens_and_holds_copies_until_the_next_try():
    pause = IntakePause(PauseReason.RUNWARE_UNAVAILABLE, NOW, 1, NOW + timedelta(seconds=60))
    assert Gate(None, NOW).closed and not Gate(None, NOW).probe
    waiting = Gate(pause, NOW + timedelta(seconds=20))
    assert waiting.open and not waiting.probe
    assert waiting.hand_back_delay() == 41
    due = Gate(pause, NOW + timedelta(seconds=60))
    assert due.probe and not due.open
    long = IntakePause(PauseReason.ACCOUNT_REFUSED, NOW, 6, NOW + timedelta(seconds=1800))
    assert Gate(long, NOW).hand_back_delay() == SQS_MAX_DELAY_SECONDS, "SQS holds a message back 15 minutes at most"


def test_tripping_disables_the_mapping_and_a_failed_probe_opens_again_for_longer(store, breaker, mapping_uuid):
    gate = breaker.gate()
    tripped = breaker.trip(
        gate, PauseReason.RUNWARE_UNAVAILABLE, "503", function_name=SUBMIT_FUNCTION, queue_arn=INGEST_QUEUE_ARN
    )
    assert tripped.open and tripped.pause is not None and tripped.pause.attempts == 1
    assert mapping_state(mapping_uuid) == "Disabled"

    # The wait is over, the resumer enabled the mapping, the probe batch fails the same way.
    boto3.client("lambda", region_name=REGION).update_event_source_mapping(UUID=mapping_uuid, Enabled=True)
    probe = Gate(tripped.pause, tripped.pause.next_probe_at)
    assert probe.probe
    again = breaker.trip(
        probe, PauseReason.RUNWARE_UNAVAILABLE, "503", function_name=SUBMIT_FUNCTION, queue_arn=INGEST_QUEUE_ARN
    )
    assert again.pause is not None and again.pause.attempts == 2
    assert (again.pause.next_probe_at - again.now).total_seconds() == pytest.approx(120, abs=1)
    assert mapping_state(mapping_uuid) == "Disabled"


def test_a_probe_that_reaches_runware_closes_the_breaker(store, breaker, mapping_uuid):
    tripped = breaker.trip(
        breaker.gate(), PauseReason.ACCOUNT_REFUSED, "402", function_name=SUBMIT_FUNCTION, queue_arn=INGEST_QUEUE_ARN
    )
    assert tripped.pause is not None
    assert breaker.close(Gate(tripped.pause, tripped.pause.next_probe_at)) is True
    assert store.read() is None
    assert breaker.gate().closed


def test_the_resumer_enables_the_mapping_only_once_the_wait_is_over(store, breaker, mapping, mapping_uuid):
    resumer = IntakeResumer(store, mapping)
    tripped = breaker.trip(
        breaker.gate(),
        PauseReason.RUNWARE_UNAVAILABLE,
        "503",
        function_name=SUBMIT_FUNCTION,
        queue_arn=INGEST_QUEUE_ARN,
    )
    assert tripped.pause is not None

    early = resumer.run(tripped.pause.next_probe_at - timedelta(seconds=1))
    assert early.paused and not early.enabled
    assert mapping_state(mapping_uuid) == "Disabled"

    due = resumer.run(tripped.pause.next_probe_at)
    assert due.enabled and due.as_log()["pauseReason"] == "Runware unavailable"
    assert mapping_state(mapping_uuid) == "Enabled"
    assert store.read() == tripped.pause, "half-open: the pause stays until a probe succeeds"

    again = resumer.run(tripped.pause.next_probe_at + timedelta(seconds=5))
    assert again.paused and not again.enabled, "already delivering: nothing to switch"


def test_without_a_pause_the_resumer_leaves_a_disabled_mapping_alone(store, mapping, mapping_uuid):
    boto3.client("lambda", region_name=REGION).update_event_source_mapping(UUID=mapping_uuid, Enabled=False)
    report = IntakeResumer(store, mapping).run(NOW)
    assert not report.paused and not report.enabled
    assert mapping_state(mapping_uuid) == "Disabled", "an operator's choice"


def test_a_pause_written_with_an_unknown_reason_still_resumes_on_the_clock(aws, store):
    pause = store.open(PauseReason.RUNWARE_UNAVAILABLE, "503", None, NOW)
    aws.dynamodb.update_item(
        TableName=JOBS_TABLE,
        Key={"jobId": {"S": PAUSE_ITEM_KEY}},
        UpdateExpression="SET pauseReason = :r",
        ExpressionAttributeValues={":r": {"S": "a reason from a newer version"}},
    )
    read = store.read()
    assert read is not None and read.next_probe_at == pause.next_probe_at
    assert RESUME_CONDITIONS[read.reason].holds(read, pause.next_probe_at)


def test_describe_says_since_when_why_and_the_next_try():
    pause = IntakePause(PauseReason.ACCOUNT_REFUSED, NOW, 3, NOW + timedelta(seconds=240))
    assert describe(pause) == (
        "intake paused since 2026-12-03T12:00:00.000Z: account refused, next try at 2026-12-03T12:04:00.000Z"
        " (3 failed attempts)"
    )


def test_a_mapping_already_changing_is_read_not_fought_over():
    """Lambda answers ResourceInUseException to a change while the mapping is changing (another batch
    or the other schedule got there first): the switch reports the mapping's state instead of failing."""
    from botocore.exceptions import ClientError

    class Busy:
        def list_event_source_mappings(self, **_: str) -> dict:
            return {"EventSourceMappings": [{"UUID": "m-1", "State": "Disabling"}]}

        def update_event_source_mapping(self, **_: object) -> dict:
            raise ClientError(
                {"Error": {"Code": "ResourceInUseException", "Message": "busy"}}, "UpdateEventSourceMapping"
            )

    state = IngestMapping(Busy(), SUBMIT_FUNCTION, INGEST_QUEUE_ARN).switch(False)
    assert (state.uuid, state.state, state.delivering) == ("m-1", "Disabling", False)
