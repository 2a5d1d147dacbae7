"""Intake that waits: a circuit breaker in front of the ingestion queue's event source mapping.

Every receive of an SQS message counts toward the queue's maxReceiveCount, whatever the function
did, so retrying a batch that failed because Runware is down (or refuses the account) walks it to
the dead-letter queue. Instead, intake stops without spending receives, and starts again by itself:

- open: a batch fails as a whole for a reason in PauseReason. The submit function records one pause
  item in the jobs table (PauseStore), disables its own event source mapping (IngestMapping), and
  hands the batch's messages back as fresh copies (upscaler.ingestion), which start again at receive
  count 0. Batches already on their way when the mapping stops are handed back the same way,
  without calling Runware.
- half-open: the scheduled resumer (IntakeResumer, run by the reconcile function every minute)
  enables the mapping again once the pause's resume condition holds. The next real batch is the
  probe: Runware documents no health request, so the work itself is the test.
- closed: the probe reached Runware and was answered: the pause item is removed. A probe that fails
  the same way opens the breaker again with a longer wait (BackOff: 1 minute, doubling, at most 30).

Reasons and resume conditions: PauseReason is the closed set of why intake can wait; each reason
has its ResumeCondition in RESUME_CONDITIONS, which says when the resumer may let a probe through.
Both Runware reasons resume on the back-off's clock (BackOffElapsed). The daily spend limit
(upscaler.spend_limit) resumes when a new UTC day starts (NewUtcDay), or, with the condition the
wiring gives in its place (spend_limit.LimitLiftedOrNewDay), as soon as the limit the functions
read now is higher than the one the pause item kept (resume_state). Its wait between checks stays
the first back-off wait: what it waits for is not Runware, so nothing is gained by doubling it.
A new reason adds a member to PauseReason and its condition to RESUME_CONDITIONS; the store, the
mapping switch, the hand-back and the resumer stay as they are.

The pause item: one item in the jobs table under PAUSE_ITEM_KEY, a key no job id can take (job ids
are UUIDs). It has no status attribute, so it is in no index and no job query finds it. Every write
to it is conditional on what the writer read, so concurrent batches that fail together count one
failed probe, and a probe that succeeds never erases a pause that another batch has just renewed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from botocore.exceptions import ClientError

from upscaler.clock import iso, parse_iso, utc_now

logger = logging.getLogger(__name__)

# The key of the pause item in the jobs table: '#' never starts a job id (a UUID).
PAUSE_ITEM_KEY = "#intake-pause"
# SQS holds a message back for at most 15 minutes (DelaySeconds; "Amazon SQS quotas").
SQS_MAX_DELAY_SECONDS = 900
# Lambda reports a mapping's State as one of these; only the first two deliver batches
# (Lambda API reference, EventSourceMappingConfiguration.State).
MAPPING_ON_STATES = frozenset({"Enabled", "Enabling"})
MAPPING_OFF_STATES = frozenset({"Disabled", "Disabling"})


class PauseReason(StrEnum):
    """Why intake waits; the value is what operators read (status, logs, the pause item)."""

    RUNWARE_UNAVAILABLE = "Runware unavailable"  # 5xx, timeouts, connection errors after the retries
    ACCOUNT_REFUSED = "account refused"  # HTTP 401/402/403: the key, the balance or the permission
    SPEND_LIMIT_REACHED = "daily spend limit reached"  # upscaler.spend_limit: nothing more today


@dataclass(frozen=True)
class BackOff:
    """How long intake waits after the n-th failed attempt: first_seconds, doubling, at most longest_seconds."""

    first_seconds: int = 60
    longest_seconds: int = 1800

    def wait_after(self, attempts: int) -> int:
        doublings = min(max(0, attempts - 1), 32)  # past 32 doublings every wait is the longest
        return min(self.first_seconds * 2**doublings, self.longest_seconds)


@dataclass(frozen=True)
class IntakePause:
    """The pause item: why intake waits, since when, how many attempts failed, and the next try."""

    reason: PauseReason
    since: datetime
    attempts: int
    next_probe_at: datetime
    detail: str = ""
    # What the reason's resume condition compares with (the spend limit in force when intake paused).
    resume_state: str = ""

    def seconds_until_probe(self, now: datetime) -> float:
        return max(0.0, (self.next_probe_at - now).total_seconds())


class ResumeCondition(Protocol):
    """When the resumer may let the next real batch through as a probe."""

    def holds(self, pause: IntakePause, now: datetime) -> bool: ...


class BackOffElapsed:
    """The pause's wait is over: its next probe time has come."""

    def holds(self, pause: IntakePause, now: datetime) -> bool:
        return now >= pause.next_probe_at


class NewUtcDay:
    """A new UTC day began since intake paused."""

    def holds(self, pause: IntakePause, now: datetime) -> bool:
        return now.astimezone(UTC).date() > pause.since.astimezone(UTC).date()


RESUME_CONDITIONS: Mapping[PauseReason, ResumeCondition] = {
    PauseReason.RUNWARE_UNAVAILABLE: BackOffElapsed(),
    PauseReason.ACCOUNT_REFUSED: BackOffElapsed(),
    PauseReason.SPEND_LIMIT_REACHED: NewUtcDay(),
}


class PauseStore:
    """The one pause item in the jobs table, read strongly consistent and written conditionally."""

    def __init__(self, dynamodb: Any, table: str, backoff: BackOff) -> None:
        self._dynamodb = dynamodb
        self.table = table
        self.backoff = backoff

    def read(self) -> IntakePause | None:
        item = self._dynamodb.get_item(TableName=self.table, Key=_key(), ConsistentRead=True).get("Item")
        return _pause_from(item) if item else None

    def open(self, reason: PauseReason, detail: str, seen: IntakePause | None, now: datetime) -> IntakePause:
        """Record a failed attempt: a new pause when none was seen, else one attempt more than `seen`.
        When another writer got there first, the pause it wrote is returned (one failure counts once)."""
        return self.open_pause(reason, detail, seen, now)[0]

    def open_pause(
        self,
        reason: PauseReason,
        detail: str,
        seen: IntakePause | None,
        now: datetime,
        *,
        wait_seconds: int | None = None,
        resume_state: str = "",
    ) -> tuple[IntakePause, bool]:
        """As open(), with a wait of its own (None: the back-off's), and whether this writer's pause
        was the one recorded."""
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as the item keeps it (milliseconds)
        attempts = 1 if seen is None else seen.attempts + 1
        wait = self.backoff.wait_after(attempts) if wait_seconds is None else wait_seconds
        pause = IntakePause(
            reason=reason,
            since=seen.since if seen is not None and not _starts_anew(seen.reason, reason) else now,
            attempts=attempts,
            next_probe_at=now + timedelta(seconds=wait),
            detail=detail[:1000],
            resume_state=resume_state,
        )
        if seen is None:
            condition, values = "attribute_not_exists(jobId)", {}
        else:
            condition, values = "probeAttempts = :seen", {":seen": {"N": str(seen.attempts)}}
        try:
            self._dynamodb.put_item(
                TableName=self.table,
                Item=_item_of(pause, now),
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            current = self.read()
            if current is None:  # cleared meanwhile by a probe that succeeded: this failure starts anew
                return self.open_pause(reason, detail, None, now, wait_seconds=wait_seconds, resume_state=resume_state)
            return current, False
        return pause, True

    def clear(self, seen: IntakePause) -> bool:
        """Remove the pause after a probe succeeded, unless another batch renewed it meanwhile."""
        try:
            self._dynamodb.delete_item(
                TableName=self.table,
                Key=_key(),
                ConditionExpression="probeAttempts = :seen",
                ExpressionAttributeValues={":seen": {"N": str(seen.attempts)}},
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            return False
        return True


@dataclass(frozen=True)
class MappingState:
    uuid: str
    state: str

    @property
    def delivering(self) -> bool:
        return self.state in MAPPING_ON_STATES


class IngestMapping:
    """The submit function's event source mapping on the ingestion queue, switched off and on.

    Found at run time with ListEventSourceMappings (function name + queue ARN): the function's own
    environment cannot name its mapping, since the mapping is created after the function (a circular
    dependency in CloudFormation).
    """

    def __init__(self, lambda_client: Any, function_name: str, queue_arn: str) -> None:
        self._lambda = lambda_client
        self.function_name = function_name
        self.queue_arn = queue_arn
        self._uuid: str | None = None

    def current(self) -> MappingState:
        response = self._lambda.list_event_source_mappings(
            FunctionName=self.function_name, EventSourceArn=self.queue_arn
        )
        mappings = response.get("EventSourceMappings", [])
        if not mappings:
            raise LookupError(f"no event source mapping from {self.queue_arn} to {self.function_name}")
        mapping = mappings[0]
        self._uuid = str(mapping["UUID"])
        return MappingState(self._uuid, str(mapping.get("State", "")))

    def switch(self, enabled: bool) -> MappingState:
        """Ask Lambda to turn the mapping on or off; what it says the state is now."""
        uuid = self._uuid or self.current().uuid
        try:
            response = self._lambda.update_event_source_mapping(UUID=uuid, Enabled=enabled)
        except ClientError as error:
            # Lambda refuses a change while the mapping is changing (ResourceInUseException, Lambda API
            # reference, UpdateEventSourceMapping): another batch, or the other schedule, got there
            # first. What the mapping is doing now is the answer; the next minute tries again if needed.
            if _code(error) != "ResourceInUseException":
                raise
            return self.current()
        return MappingState(uuid, str(response.get("State", "")))


@dataclass(frozen=True)
class Gate:
    """What the breaker says of a batch about to be submitted."""

    pause: IntakePause | None
    now: datetime
    conditions: Mapping[PauseReason, ResumeCondition] = field(default_factory=lambda: RESUME_CONDITIONS)

    @property
    def closed(self) -> bool:
        return self.pause is None

    @property
    def probe(self) -> bool:
        """The pause's wait is over: this batch tests whether Runware takes work again."""
        return self.pause is not None and self.conditions[self.pause.reason].holds(self.pause, self.now)

    @property
    def open(self) -> bool:
        return self.pause is not None and not self.probe

    def hand_back_delay(self) -> int:
        """Seconds a handed-back copy stays hidden: until the next probe, within SQS's limit."""
        if self.pause is None:
            return 0
        return min(SQS_MAX_DELAY_SECONDS, int(self.pause.seconds_until_probe(self.now)) + 1)


class IntakeBreaker:
    """The submit function's side: ask before a batch, trip on a whole-batch failure, close on success."""

    def __init__(
        self,
        store: PauseStore,
        mapping_for: Any,
        conditions: Mapping[PauseReason, ResumeCondition] = RESUME_CONDITIONS,
    ) -> None:
        self.store = store
        # function name, queue ARN -> IngestMapping (the batch's records name the queue)
        self._mapping_for = mapping_for
        self.conditions = conditions

    def gate(self, now: datetime | None = None) -> Gate:
        return Gate(self.store.read(), now or utc_now(), self.conditions)

    def trip(
        self,
        gate: Gate,
        reason: PauseReason,
        detail: str,
        *,
        function_name: str,
        queue_arn: str,
        wait_seconds: int | None = None,
        resume_state: str = "",
        on_start: Callable[[IntakePause], None] | None = None,
    ) -> Gate:
        """Record the failure and stop the mapping; the gate the copies are handed back under.
        `on_start` is told of a pause for `reason` that this call started (not one renewed, nor one
        another batch recorded first)."""
        now = utc_now()
        pause, written = self.store.open_pause(
            reason, detail, gate.pause, now, wait_seconds=wait_seconds, resume_state=resume_state
        )
        started = gate.pause is None or gate.pause.reason is not reason
        if written and started and on_start is not None:
            on_start(pause)
        try:
            state = self._mapping_for(function_name, queue_arn).switch(False)
            logger.warning("intake paused: %s; mapping %s", reason, state.state)
        except Exception:
            # The pause item still holds batches back (they are handed back without calling Runware).
            logger.exception("intake paused (%s), but the event source mapping could not be disabled", reason)
        return Gate(pause, now, self.conditions)

    def close(self, gate: Gate) -> bool:
        """The probe reached Runware and was answered: intake is open again."""
        if gate.pause is None:
            return False
        cleared = self.store.clear(gate.pause)
        if cleared:
            logger.warning("intake resumed after %s since %s", gate.pause.reason, iso(gate.pause.since))
        return cleared


@dataclass(frozen=True)
class ResumeReport:
    """What the scheduled resumer found and did."""

    pause: IntakePause | None
    mapping_state: str = ""
    enabled: bool = False

    @property
    def paused(self) -> bool:
        return self.pause is not None

    def as_log(self) -> dict[str, Any]:
        if self.pause is None:
            return {"intakePaused": False, "mappingState": self.mapping_state}
        return {
            "intakePaused": True,
            "pauseReason": str(self.pause.reason),
            "pausedSince": iso(self.pause.since),
            "failedAttempts": self.pause.attempts,
            "nextProbeAt": iso(self.pause.next_probe_at),
            "pauseDetail": self.pause.detail,
            "mappingState": self.mapping_state,
            "mappingEnabled": self.enabled,
        }


class IntakeResumer:
    """The scheduled side: re-enables the mapping once a pause's resume condition holds (half-open)."""

    def __init__(
        self,
        store: PauseStore,
        mapping: IngestMapping,
        conditions: Mapping[PauseReason, ResumeCondition] = RESUME_CONDITIONS,
    ) -> None:
        self.store = store
        self.mapping = mapping
        self.conditions = conditions

    def run(self, now: datetime | None = None) -> ResumeReport:
        now = now or utc_now()
        pause = self.store.read()
        if pause is None:
            # No pause: a disabled mapping is an operator's choice, left alone.
            return ResumeReport(None)
        state = self.mapping.current()
        if state.delivering or not self.conditions[pause.reason].holds(pause, now):
            return ResumeReport(pause, state.state)
        if state.state not in MAPPING_OFF_STATES:  # Creating, Updating: Lambda refuses a change now
            return ResumeReport(pause, state.state)
        switched = self.mapping.switch(True)
        if not switched.delivering:
            return ResumeReport(pause, switched.state)
        logger.warning("intake half-open: the next batch tests Runware (%s since %s)", pause.reason, iso(pause.since))
        return ResumeReport(pause, switched.state, enabled=True)


def _starts_anew(before: PauseReason, after: PauseReason) -> bool:
    """A pause that turns into or out of the spend limit counts from now: its day is what matters."""
    return before is not after and PauseReason.SPEND_LIMIT_REACHED in (before, after)


def describe(pause: IntakePause) -> str:
    """One line for operators: intake paused since ... : <reason>, next try at ..."""
    if pause.reason is PauseReason.SPEND_LIMIT_REACHED:
        tomorrow = datetime.combine(pause.since.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)
        return (
            f"intake paused since {iso(pause.since)}: {pause.reason}; resumes at {iso(tomorrow)}"
            " or as soon as the limit is raised"
        )
    return (
        f"intake paused since {iso(pause.since)}: {pause.reason}, next try at {iso(pause.next_probe_at)}"
        f" ({pause.attempts} failed attempt{'s' if pause.attempts != 1 else ''})"
    )


def read_pause(dynamodb: Any, table: str) -> IntakePause | None:
    """The pause item, if intake is paused (for the operator command)."""
    return PauseStore(dynamodb, table, BackOff()).read()


def _key() -> dict[str, Any]:
    return {"jobId": {"S": PAUSE_ITEM_KEY}}


def _item_of(pause: IntakePause, now: datetime) -> dict[str, Any]:
    return {
        **_key(),
        "pauseReason": {"S": str(pause.reason)},
        "pausedSince": {"S": iso(pause.since)},
        "probeAttempts": {"N": str(pause.attempts)},
        "nextProbeAt": {"S": iso(pause.next_probe_at)},
        "pauseDetail": {"S": pause.detail or "-"},
        "updatedAt": {"S": iso(now)},
        **({"resumeState": {"S": pause.resume_state}} if pause.resume_state else {}),
    }


def _pause_from(item: Mapping[str, Any]) -> IntakePause:
    reason_text = str(item.get("pauseReason", {}).get("S", ""))
    try:
        reason = PauseReason(reason_text)
    except ValueError:  # written by a newer version: wait on the clock, like the known reasons
        reason = PauseReason.RUNWARE_UNAVAILABLE
    return IntakePause(
        reason=reason,
        since=parse_iso(item["pausedSince"]["S"]),
        attempts=int(item["probeAttempts"]["N"]),
        next_probe_at=parse_iso(item["nextProbeAt"]["S"]),
        detail=str(item.get("pauseDetail", {}).get("S", "")),
        resume_state=str(item.get("resumeState", {}).get("S", "")),
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
