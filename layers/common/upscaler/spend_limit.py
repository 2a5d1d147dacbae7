"""A daily spend limit: at most so many images, and/or so many US dollars, sent to Runware per UTC day.

Reserve before sending: a batch asks the counter for its tasks (each one image, priced by its tier)
and sends only the tasks it was granted; the rest wait, and intake pauses with SPEND_LIMIT_REACHED
(upscaler.intake_pause) until the next UTC day or until the limit is raised. What a batch reserved
but did not get taken by Runware is given back: tasks Runware refused, tasks it left unanswered, and
a whole request that failed (the jobs stay CLAIMED and are sent again under the same taskUUID, which
reserves them again). A task sent again that Runware answers with conflictTaskUUID keeps its new
reservation, so a task is never left uncounted; the one case counted twice is an invocation that
stopped between Runware's answer and its own record (its retry reserves again): never under the limit.

The counter: one item per UTC day in the jobs table, under a key no job id can take
("#spend-limit#<day>#0"; job ids are UUIDs), without a status so no index or job query finds it,
with a TTL. A reservation is one conditional ADD whose condition says the day's count stays within
the limit the function reads now; DynamoDB checks and applies it as one step, so the count never
passes the limit, whatever the concurrency. A refused condition returns the count
(ReturnValuesOnConditionCheckFailure) and the batch asks once more for what is left. An image limit
is used to the last image; a dollar limit stops short by less than one image's price.

Why one item: it takes one write per batch (two near the limit, one more for a give-back). At the
scale work's 1,000 jobs/s with SubmitBatchSize 10 that is about 100 writes a second, a tenth of what
one partition serves (DynamoDB: 1,000 write units per second per partition, "Service, account, and
table quotas"). The counter can be split into shards (SpendCounter(shards=N): the limit split into N
allowances that add up to it, each shard granting within its own), which is exact only while the
limit stays what it was all day: counts made without a limit, or under a higher one, are spread
unevenly, and the shards' slack then adds up to more than the limit has left. A limit that can be
set, raised or lowered mid-day therefore stays on one item (SPEND_SHARDS = 1); with SubmitBatchSize 1
at 1,000 jobs/s that item would reach the partition's ceiling (docs/spend-limit.md).

The limit is the one the function reads now: a stack update that raises it lets more through at
once; one that lowers it grants nothing more today once the count is at the new figure. With no
limit the counter still counts (status shows the day's images and spend, and a limit set mid-day
counts what was sent before it).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from upscaler.clock import iso, utc_now
from upscaler.intake_pause import IntakePause
from upscaler.pricing import PRICE_TIERS, tier_for

logger = logging.getLogger(__name__)

# Prices are counted in micro-dollars, so sums are exact integers (the tiers: upscaler.pricing).
MICRODOLLARS_PER_DOLLAR = 1_000_000
SPEND_ITEM_PREFIX = "#spend-limit#"
SPEND_SHARDS = 1  # one item: exact whatever the limit did today (see above)
# Conditional writes one shard is asked before the reservation moves on. Each refusal means another
# batch's write went through first, and the next ask is for what is left after it: many refusals in a
# row need that many other batches in the same moment.
TRIES_PER_SHARD = 25
# Counter items outlive their day by this much (status and logs may look back), then expire.
COUNTER_RETENTION_DAYS = 8
EVENT_SOURCE = "s3-upscale"  # the completion events' source (upscaler.completion_events)
LIMIT_REACHED_DETAIL_TYPE = "Upscale Spend Limit Reached"


def price_of(target_megapixels: int | None) -> int:
    """Micro-dollars Runware charges for one output at this target, by the model page's price tiers
    (upscaler.pricing); no target: the dearest tier."""
    tier = PRICE_TIERS[-1] if target_megapixels is None else tier_for(target_megapixels)
    return int(tier.usd_per_image * MICRODOLLARS_PER_DOLLAR)


def dollars(microdollars: int) -> Decimal:
    """Micro-dollars as dollars, without trailing zeros (10, 0.5, 0.005)."""
    value = Decimal(microdollars) / MICRODOLLARS_PER_DOLLAR
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def to_microdollars(amount: Decimal) -> int:
    return int((amount * MICRODOLLARS_PER_DOLLAR).to_integral_value(rounding=ROUND_DOWN))


@dataclass(frozen=True)
class DailyLimit:
    """Images and micro-dollars per UTC day; 0 is no limit of that kind."""

    images: int = 0
    microdollars: int = 0

    @property
    def active(self) -> bool:
        return self.images > 0 or self.microdollars > 0

    def allowance(self, shard: int, shards: int = SPEND_SHARDS) -> tuple[int | None, int | None]:
        """The part of the limit one shard may grant (None: no limit of that kind)."""
        return (_share(self.images, shard, shards), _share(self.microdollars, shard, shards))

    def raised_from(self, before: DailyLimit) -> bool:
        """Whether this limit lets more through than `before`, in any kind."""
        return any(
            (now == 0 and was > 0) or (was > 0 and now > was)
            for now, was in ((self.images, before.images), (self.microdollars, before.microdollars))
        )

    def as_text(self) -> str:
        """What the pause item keeps (upscaler.intake_pause: resumeState)."""
        return json.dumps({"images": self.images, "microdollars": self.microdollars}, separators=(",", ":"))

    @classmethod
    def from_text(cls, text: str) -> DailyLimit | None:
        try:
            value = json.loads(text)
            return cls(int(value["images"]), int(value["microdollars"]))
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self) -> str:
        parts = []
        if self.images:
            parts.append(f"{self.images} image{'s' if self.images != 1 else ''}")
        if self.microdollars:
            parts.append(f"${dollars(self.microdollars)}")
        return " and ".join(parts) + " a day" if parts else "no limit"


def _share(total: int, shard: int, shards: int) -> int | None:
    if total <= 0:
        return None
    return total // shards + (1 if shard < total % shards else 0)


@dataclass(frozen=True)
class Spend:
    """What one day's counter holds: images reserved and their price."""

    images: int = 0
    microdollars: int = 0
    limit: DailyLimit | None = None  # as the last reservation saw it (None: nothing reserved that day)

    def reached(self, limit: DailyLimit) -> bool:
        """Whether not even one more image of the cheapest tier fits."""
        cheapest = int(PRICE_TIERS[0].usd_per_image * MICRODOLLARS_PER_DOLLAR)
        return (limit.images > 0 and self.images >= limit.images) or (
            limit.microdollars > 0 and self.microdollars + cheapest > limit.microdollars
        )


@dataclass
class Reservation:
    """The tasks a batch was granted (the first `granted` of those it asked for) and where."""

    day: str
    costs: list[int]
    shard_of: list[int] = field(default_factory=list)  # the shard that granted each granted task

    @property
    def granted(self) -> int:
        return len(self.shard_of)

    @property
    def short(self) -> bool:
        return self.granted < len(self.costs)


class SpendCounter:
    """The day's counter item(s) in the jobs table; reservations are conditional ADDs."""

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        limit: DailyLimit,
        *,
        shards: int = SPEND_SHARDS,
        choose: Callable[[int], int] | None = None,
    ) -> None:
        self._dynamodb = dynamodb
        self.table = table
        self.limit = limit
        self.shards = shards
        self._choose = choose or random.randrange

    def reserve(self, costs: Sequence[int], now: datetime | None = None) -> Reservation:
        """Grant the longest prefix of `costs` (micro-dollars per task) that fits today's limit."""
        now = now or utc_now()
        reservation = Reservation(day_of(now), list(costs))
        if not costs:
            return reservation
        start = self._choose(self.shards)
        for step in range(self.shards):
            shard = (start + step) % self.shards
            self._reserve_on(shard, reservation, now)
            if not self.limit.active or not reservation.short:
                break
        return reservation

    def _reserve_on(self, shard: int, reservation: Reservation, now: datetime) -> None:
        allowed_images, allowed_micro = self.limit.allowance(shard, self.shards)
        used_images, used_micro = 0, 0  # what the shard holds, as far as this reservation knows
        for _ in range(TRIES_PER_SHARD):
            wanted = reservation.costs[reservation.granted :]
            take = _fitting(wanted, allowed_images, allowed_micro, used_images, used_micro)
            if take == 0:
                return
            images, micro = take, sum(wanted[:take])
            conditions, values = [], {":images": {"N": str(images)}, ":micro": {"N": str(micro)}}
            if allowed_images is not None:
                conditions.append("(attribute_not_exists(images) OR images <= :imagesLeft)")
                values[":imagesLeft"] = {"N": str(allowed_images - images)}
            if allowed_micro is not None:
                conditions.append("(attribute_not_exists(microdollars) OR microdollars <= :microLeft)")
                values[":microLeft"] = {"N": str(allowed_micro - micro)}
            try:
                self._dynamodb.update_item(
                    TableName=self.table,
                    Key=_key(reservation.day, shard),
                    UpdateExpression=(
                        "ADD images :images, microdollars :micro "
                        "SET limitImages = :limitImages, limitMicrodollars = :limitMicro, "
                        "updatedAt = :now, expiresAt = :expires"
                    ),
                    **({"ConditionExpression": " AND ".join(conditions)} if conditions else {}),
                    ExpressionAttributeValues={
                        **values,
                        ":limitImages": {"N": str(self.limit.images)},
                        ":limitMicro": {"N": str(self.limit.microdollars)},
                        ":now": {"S": iso(now)},
                        ":expires": {"N": str(_expires(reservation.day))},
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as error:
                if _code(error) != "ConditionalCheckFailedException":
                    raise
                # Another batch took from this shard meanwhile: its count now, and try for what is left.
                current = error.response.get("Item") or self._read(reservation.day, shard) or {}
                used_images, used_micro = _number(current, "images"), _number(current, "microdollars")
                continue
            reservation.shard_of.extend([shard] * take)
            return

    def give_back(self, reservation: Reservation, indexes: Sequence[int], now: datetime | None = None) -> None:
        """Return granted tasks that Runware did not take (by their index in the reservation)."""
        returned: dict[int, tuple[int, int]] = {}
        for index in indexes:
            if index >= reservation.granted:
                continue
            shard = reservation.shard_of[index]
            images, micro = returned.get(shard, (0, 0))
            returned[shard] = (images + 1, micro + reservation.costs[index])
        for shard, (images, micro) in returned.items():
            # Unconditional: a shard's count only goes down here, and only by what it granted.
            self._dynamodb.update_item(
                TableName=self.table,
                Key=_key(reservation.day, shard),
                UpdateExpression="ADD images :images, microdollars :micro SET updatedAt = :now",
                ExpressionAttributeValues={
                    ":images": {"N": str(-images)},
                    ":micro": {"N": str(-micro)},
                    ":now": {"S": iso(now or utc_now())},
                },
            )

    def today(self, now: datetime | None = None) -> Spend:
        return read_spend(self._dynamodb, self.table, day_of(now or utc_now()), self.shards)

    def _read(self, day: str, shard: int) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._dynamodb.get_item(
            TableName=self.table, Key=_key(day, shard), ConsistentRead=True
        ).get("Item")
        return item


def read_spend(dynamodb: Any, table: str, day: str, shards: int = SPEND_SHARDS) -> Spend:
    """One day's count: every shard read strongly consistent (GetItem, which the submit function may
    already do; read only when a pause starts and by the operator's status), summed."""
    items = [
        item
        for shard in range(shards)
        if (item := dynamodb.get_item(TableName=table, Key=_key(day, shard), ConsistentRead=True).get("Item"))
    ]
    latest = max(items, key=lambda item: item.get("updatedAt", {}).get("S", ""), default=None)
    limit = (
        DailyLimit(_number(latest, "limitImages"), _number(latest, "limitMicrodollars"))
        if latest is not None and "limitImages" in latest
        else None
    )
    return Spend(
        images=sum(_number(item, "images") for item in items),
        microdollars=sum(_number(item, "microdollars") for item in items),
        limit=limit,
    )


class LimitLiftedOrNewDay:
    """The resume condition of SPEND_LIMIT_REACHED: a new UTC day began since intake paused, or the
    limit the function reads now (a stack update changes it) lets more through than the one in force
    when it paused (kept in the pause item)."""

    def __init__(self, current: DailyLimit) -> None:
        self.current = current

    def holds(self, pause: IntakePause, now: datetime) -> bool:
        if day_of(now) != day_of(pause.since):
            return True
        before = DailyLimit.from_text(pause.resume_state)
        return before is None or self.current.raised_from(before)


class LimitReachedEvents:
    """One EventBridge event when intake pauses for the limit, on the completion events' bus; never
    raises (the pause is recorded whatever becomes of its event)."""

    def __init__(self, events_client: Callable[[], Any], bus_name: str) -> None:
        self._client = events_client
        self.bus_name = bus_name

    def __call__(self, spend: Spend, limit: DailyLimit, now: datetime) -> None:
        detail = limit_reached_detail(spend, limit, now)
        try:
            response = self._client().put_events(
                Entries=[
                    {
                        "Source": EVENT_SOURCE,
                        "DetailType": LIMIT_REACHED_DETAIL_TYPE,
                        "Detail": json.dumps(detail, separators=(",", ":")),
                        "EventBusName": self.bus_name,
                    }
                ]
            )
        except (BotoCoreError, ClientError):
            logger.exception("spend limit event not sent")
            return
        if response.get("FailedEntryCount"):
            logger.error("spend limit event not sent", extra={"entries": response.get("Entries")})


class SpendLimit:
    """The submit function's side of the limit: the day's counter, and who is told when it is reached."""

    def __init__(self, counter: SpendCounter, events: LimitReachedEvents | None = None) -> None:
        self.counter = counter
        self.events = events

    @property
    def limit(self) -> DailyLimit:
        return self.counter.limit

    def reached(self, pause: IntakePause) -> None:
        """Intake has just paused for the limit: log it and send the event (once per pause)."""
        now = utc_now()
        try:
            spend = self.counter.today(now)
        except (BotoCoreError, ClientError):
            logger.exception("spend limit reached; today's count could not be read")
            spend = Spend()
        detail = limit_reached_detail(spend, self.limit, now)
        logger.warning("daily spend limit reached: intake waits", extra=detail)
        if self.events is not None:
            self.events(spend, self.limit, now)


def limit_reached_detail(spend: Spend, limit: DailyLimit, now: datetime) -> dict[str, Any]:
    return {
        "day": day_of(now),
        "images": spend.images,
        "spendUsd": float(dollars(spend.microdollars)),
        "limitImages": limit.images or None,
        "limitUsd": float(dollars(limit.microdollars)) if limit.microdollars else None,
        "resumesAt": iso(next_day_start(now)),
        "reachedAt": iso(now),
    }


def day_of(moment: datetime) -> str:
    """The UTC day of an instant, as the counter's key names it (2026-12-03)."""
    return (moment if moment.tzinfo is None else moment.astimezone(UTC)).date().isoformat()


def next_day_start(moment: datetime) -> datetime:
    day = date.fromisoformat(day_of(moment))
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


def describe_spend(spend: Spend, limit: DailyLimit | None) -> str:
    """One line for operators: today's images and spend, against the limit."""
    shown = f"spend today (UTC): {spend.images} image{'s' if spend.images != 1 else ''}, ${dollars(spend.microdollars)}"
    if limit is None:
        return f"{shown} (limit: not known until an image is sent today)"
    if not limit.active:
        return f"{shown} (no daily limit)"
    state = "reached: intake waits for the next UTC day or a higher limit" if spend.reached(limit) else "not reached"
    return f"{shown} of {limit.describe()} ({state})"


def _fitting(
    costs: Sequence[int], allowed_images: int | None, allowed_micro: int | None, used_images: int, used_micro: int
) -> int:
    """How many of `costs`, in order, fit what a shard has left."""
    take, spent = 0, 0
    for cost in costs:
        if allowed_images is not None and used_images + take + 1 > allowed_images:
            break
        if allowed_micro is not None and used_micro + spent + cost > allowed_micro:
            break
        take, spent = take + 1, spent + cost
    return take


def _key(day: str, shard: int) -> dict[str, Any]:
    return {"jobId": {"S": f"{SPEND_ITEM_PREFIX}{day}#{shard}"}}


def _expires(day: str) -> int:
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return int((start + timedelta(days=COUNTER_RETENTION_DAYS)).timestamp())


def _number(item: Mapping[str, Any] | None, name: str) -> int:
    if not item or name not in item:
        return 0
    return int(Decimal(str(item[name].get("N", "0"))))


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
