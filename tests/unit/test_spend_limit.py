"""The daily spend limit (upscaler.spend_limit): the day counter, exact under concurrent
reservations, the give-backs, the resume condition, and the submitter that reserves before it sends.

Concurrency runs against in-process moto with the local stack's atomic table requests installed
(local/moto_atomic_tables.py), so a conditional write is checked and applied as one step, as in
DynamoDB; many threads release their reservations together.
"""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from local.moto_atomic_tables import install_atomic_table_requests
from local.runware_emulator.pricing import price_per_image
from tests.unit.queue_events import sqs_batch
from tests.unit.test_submission import (  # noqa: F401 (fixtures used by name)
    event,
    jpeg,
    make_submitter,
    runware,
    sleeps,
    upload,
)
from upscaler.ingestion import submit_batch
from upscaler.intake_pause import IntakePause, PauseReason
from upscaler.runware import RunwareUnavailable
from upscaler.spend_limit import (
    SPEND_SHARDS,
    DailyLimit,
    LimitLiftedOrNewDay,
    SpendCounter,
    day_of,
    describe_spend,
    dollars,
    price_of,
    read_spend,
    to_microdollars,
)

NOON = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
THREADS = 16


def counter(aws: Any, limit: DailyLimit, seed: int = 7) -> SpendCounter:
    rng = random.Random(seed)
    return SpendCounter(aws.dynamodb, aws.settings.jobs_table, limit, choose=rng.randrange)


def spent(aws: Any, now: datetime = NOON) -> tuple[int, int]:
    spend = read_spend(aws.dynamodb, aws.settings.jobs_table, day_of(now))
    return spend.images, spend.microdollars


@pytest.mark.parametrize("megapixels", range(1, 9))
def test_the_price_of_an_image_is_the_model_pages_tier_as_the_emulator_charges_it(megapixels):
    assert dollars(price_of(megapixels)) == price_per_image(megapixels)


@pytest.mark.parametrize("total", [1, 7, 10, 20, 37, 1000, 100_003])
def test_split_into_shards_the_allowances_add_up_to_the_limit(total):
    limit = DailyLimit(images=total, microdollars=total * 5_000)
    shares = [limit.allowance(shard, 10) for shard in range(10)]
    assert sum(images for images, _ in shares) == total
    assert sum(micro for _, micro in shares) == total * 5_000
    assert DailyLimit().allowance(0) == (None, None), "0 is no limit"


def test_a_batch_is_granted_the_prefix_that_fits_and_the_rest_waits(aws):
    spend = counter(aws, DailyLimit(images=12))
    first = spend.reserve([5_000] * 10, NOON)
    second = spend.reserve([5_000] * 10, NOON)
    third = spend.reserve([5_000] * 10, NOON)
    assert (first.granted, second.granted, third.granted) == (10, 2, 0)
    assert second.short and not first.short
    assert spent(aws) == (12, 60_000)


def test_a_dollar_limit_grants_by_each_images_tier(aws):
    spend = counter(aws, DailyLimit(microdollars=to_microdollars(Decimal("0.10"))))
    # 8 MP images at $0.01: ten fit in $0.10.
    assert spend.reserve([10_000] * 15, NOON).granted == 10
    assert spend.reserve([5_000], NOON).granted == 0
    assert spent(aws) == (10, 100_000)


def test_what_runware_did_not_take_is_given_back_and_granted_again(aws):
    spend = counter(aws, DailyLimit(images=10))
    reservation = spend.reserve([5_000] * 10, NOON)
    spend.give_back(reservation, [2, 5, 9])
    assert spent(aws) == (7, 35_000)
    assert spend.reserve([5_000] * 10, NOON).granted == 3


def test_a_new_day_counts_from_zero(aws):
    spend = counter(aws, DailyLimit(images=3))
    assert spend.reserve([5_000] * 3, NOON).granted == 3
    assert spend.reserve([5_000], NOON).granted == 0
    tomorrow = NOON + timedelta(days=1)
    assert spend.reserve([5_000] * 3, tomorrow).granted == 3
    assert spent(aws, tomorrow) == (3, 15_000)


def test_a_raised_limit_grants_more_at_once_and_a_lowered_one_grants_nothing(aws):
    counter(aws, DailyLimit(images=10)).reserve([5_000] * 10, NOON)
    assert counter(aws, DailyLimit(images=10)).reserve([5_000], NOON).granted == 0
    assert counter(aws, DailyLimit(images=15)).reserve([5_000] * 10, NOON).granted == 5
    assert counter(aws, DailyLimit(images=4)).reserve([5_000], NOON).granted == 0
    assert spent(aws) == (15, 75_000)


def test_a_limit_set_mid_day_counts_what_was_sent_before_it(aws):
    for _ in range(23):  # counted, with no limit, batch by batch
        counter(aws, DailyLimit()).reserve([5_000], NOON)
    assert counter(aws, DailyLimit(images=30)).reserve([5_000] * 10, NOON).granted == 7
    assert counter(aws, DailyLimit(images=30)).reserve([5_000], NOON).granted == 0
    assert spent(aws) == (30, 150_000)


def test_without_a_limit_every_task_is_counted_and_nothing_is_refused(aws):
    spend = counter(aws, DailyLimit())
    for _ in range(5):
        assert spend.reserve([10_000] * 10, NOON).granted == 10
    assert spent(aws) == (50, 500_000)
    assert describe_spend(read_spend(aws.dynamodb, aws.settings.jobs_table, day_of(NOON)), DailyLimit()) == (
        "spend today (UTC): 50 images, $0.5 (no daily limit)"
    )


def reserve_until_refused(spend: SpendCounter, start: threading.Barrier, seed: int) -> list[int]:
    """Batches of one to ten tasks of mixed tiers, until one is granted nothing: what was granted."""
    rng = random.Random(seed)
    granted: list[int] = []
    start.wait()
    while True:
        costs = [rng.choice((5_000, 10_000)) for _ in range(rng.randint(1, 10))]
        reservation = spend.reserve(costs, NOON)
        granted.extend(costs[: reservation.granted])
        if reservation.granted == 0:
            return granted


@pytest.mark.parametrize(
    ("limit", "images_exact"),
    [(DailyLimit(images=137), True), (DailyLimit(microdollars=1_234_000), False)],
    ids=["images", "dollars"],
)
def test_concurrent_reservations_never_pass_the_limit_and_the_count_is_what_was_granted(aws, limit, images_exact):
    install_atomic_table_requests()  # a conditional write checked and applied as one step, as in DynamoDB
    start = threading.Barrier(THREADS)
    results: list[list[int]] = [[] for _ in range(THREADS)]

    def worker(index: int) -> None:
        results[index] = reserve_until_refused(counter(aws, limit, seed=index), start, seed=1000 + index)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    granted = [cost for result in results for cost in result]
    assert spent(aws) == (len(granted), sum(granted)), "the counter holds exactly what was granted"
    if images_exact:
        assert len(granted) == limit.images, "the image limit is used to the last image, never passed"
    else:
        assert sum(granted) <= limit.microdollars
        # Stops short by less than one dearest image (a batch is granted a prefix of its tasks).
        assert sum(granted) > limit.microdollars - SPEND_SHARDS * 10_000


def pause_of(limit: DailyLimit, since: datetime = NOON) -> IntakePause:
    return IntakePause(
        PauseReason.SPEND_LIMIT_REACHED, since, 1, since + timedelta(minutes=1), resume_state=limit.as_text()
    )


def test_intake_resumes_on_a_new_utc_day_or_a_higher_limit_never_on_the_same_or_a_lower_one():
    paused = pause_of(DailyLimit(images=20, microdollars=100_000))
    later = NOON + timedelta(hours=11, minutes=59)
    assert not LimitLiftedOrNewDay(DailyLimit(images=20, microdollars=100_000)).holds(paused, later)
    assert not LimitLiftedOrNewDay(DailyLimit(images=10, microdollars=100_000)).holds(paused, later)
    assert LimitLiftedOrNewDay(DailyLimit(images=20, microdollars=100_000)).holds(paused, NOON + timedelta(hours=12))
    assert LimitLiftedOrNewDay(DailyLimit(images=21, microdollars=100_000)).holds(paused, later)
    assert LimitLiftedOrNewDay(DailyLimit(images=20, microdollars=150_000)).holds(paused, later)
    assert LimitLiftedOrNewDay(DailyLimit(images=0, microdollars=100_000)).holds(paused, later), "lifted"


# ---- the submitter: reserve before sending, give back what Runware did not take ----------------


@pytest.fixture
def limited_submitter(aws, make_submitter):  # noqa: F811
    def make(images: int) -> Any:
        submitter = make_submitter(replace(aws.settings, spend_limit_images_per_day=images))
        assert submitter.spend is not None and submitter.spend.limit == DailyLimit(images=images)
        return submitter

    return make


def batch_of(aws: Any, name: str, count: int) -> dict[str, Any]:
    """A queue batch of `count` messages, one upload each."""
    return sqs_batch(*(event(upload(aws, f"inbox/{name}-{n}.jpg", jpeg(320, 240))) for n in range(count)))


def test_the_submitter_sends_only_what_the_limit_grants_and_the_rest_waits_claimed(
    aws,
    limited_submitter,
    runware,  # noqa: F811
):
    submitter = limited_submitter(3)
    batch = batch_of(aws, "limit", 5)
    result = submit_batch(submitter, batch)
    assert len(runware.tasks) == 3, "only the granted tasks reach Runware"
    assert [outcome.status for outcome in result.outcomes] == ["SUBMITTED"] * 3
    assert result.over_limit == [record["messageId"] for record in batch["Records"][3:]], "the rest wait"
    assert result.failed == {}
    claimed = [item for item in aws.dynamodb.scan(TableName=aws.settings.jobs_table)["Items"] if "status" in item]
    assert sorted(item["status"]["S"] for item in claimed) == ["CLAIMED"] * 2 + ["SUBMITTED"] * 3
    assert spent(aws, datetime.now(UTC)) == (3, 15_000)


def test_a_request_that_fails_gives_its_reservation_back(aws, limited_submitter, runware):  # noqa: F811
    submitter = limited_submitter(10)
    runware.script = [httpx.Response(503)] * 10
    with pytest.raises(RunwareUnavailable):
        submit_batch(submitter, batch_of(aws, "down", 4))
    assert spent(aws, datetime.now(UTC)) == (0, 0), "the jobs stay CLAIMED; sending them again reserves again"


def test_a_task_runware_refuses_is_given_back(aws, limited_submitter, runware):  # noqa: F811
    submitter = limited_submitter(10)

    def refuse_first(tasks: list[dict]) -> httpx.Response:
        error = {"code": "invalidImageURL", "message": "no", "taskType": "upscale", "taskUUID": tasks[0]["taskUUID"]}
        return httpx.Response(400, json={"errors": [error]})

    runware.script = [refuse_first]
    result = submit_batch(submitter, batch_of(aws, "refused", 2))
    assert [outcome.status for outcome in result.outcomes] == ["FAILED"]
    assert len(result.failed) == 1, "the task the refusal does not name is left unanswered: sent again"
    assert spent(aws, datetime.now(UTC)) == (0, 0), "both given back: the refused one and the unanswered one"
