"""The spacing a container keeps between its Runware requests, learnt from 429s or configured."""

from __future__ import annotations

import heapq
import random
import threading

import httpx
import pytest

from local.runware_emulator.rate_limit import TokenBucket, retry_after_header
from upscaler.request_pacing import NARROW, SMALLEST_SPACING_SECONDS, WIDEN, RequestPacer
from upscaler.runware import RETRY_AFTER_JITTER_SECONDS, RunwareClient, RunwareUnavailable
from upscaler.runware_answers import Accepted
from upscaler.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_container_never_refused_never_waits() -> None:
    clock = Clock()
    pacer = RequestPacer(clock=clock)
    for _ in range(5):
        assert pacer.wait_seconds() == 0.0
        pacer.accepted(first_try=True)
        clock.now += 0.01


def test_a_refused_first_try_spaces_the_next_requests_by_at_least_the_retry_after() -> None:
    clock = Clock()
    pacer = RequestPacer(clock=clock)
    pacer.refused(3.0, first_try=True)
    assert pacer.spacing == 3.0
    clock.now += 3.2
    pacer.accepted(first_try=False)  # the retry: accepted, but it says nothing about the spacing
    assert pacer.spacing == 3.0
    clock.now += 1.0
    assert pacer.wait_seconds() == pytest.approx(2.0)


def test_refusals_widen_and_first_try_acceptances_narrow() -> None:
    pacer = RequestPacer(clock=Clock())
    pacer.refused(1.0, first_try=True)
    pacer.refused(1.0, first_try=True)
    assert pacer.spacing == pytest.approx(1.0 * WIDEN)
    pacer.refused(1.0, first_try=False)  # a retry went when told: no news about the spacing
    assert pacer.spacing == pytest.approx(1.0 * WIDEN)
    pacer.accepted(first_try=True)
    assert pacer.spacing == pytest.approx(WIDEN * NARROW)


def test_the_learnt_spacing_fades_out_after_enough_acceptances() -> None:
    pacer = RequestPacer(clock=Clock())
    pacer.refused(1.0, first_try=True)
    acceptances = 0
    while pacer.spacing:
        pacer.accepted(first_try=True)
        acceptances += 1
    assert acceptances > 100  # slow to speed up again
    assert pacer.wait_seconds() == 0.0
    assert SMALLEST_SPACING_SECONDS > 0


def test_a_configured_spacing_holds_without_any_refusal_and_is_never_learnt_below() -> None:
    clock = Clock()
    pacer = RequestPacer(5.5, clock=clock)
    assert pacer.wait_seconds() == 0.0  # the first request goes at once
    pacer.accepted(first_try=True)
    clock.now += 2.0
    assert pacer.wait_seconds() == pytest.approx(3.5)
    pacer.refused(1.0, first_try=True)
    for _ in range(500):
        pacer.accepted(first_try=True)
    assert pacer.wait_seconds() == pytest.approx(5.5)


def test_settings_turn_the_accounts_rate_into_one_containers_share() -> None:
    env = {
        "JOBS_TABLE": "jobs",
        "OUTPUT_BUCKET": "out",
        "RUNWARE_API_KEY_SECRET": "k",
        "WEBHOOK_TOKEN_SECRET": "w",
    }
    assert Settings.from_environment(env).runware_request_spacing_seconds == 0.0
    shared = Settings.from_environment({**env, "RUNWARE_REQUESTS_PER_SECOND": "0.4", "RUNWARE_CONCURRENT_SENDERS": "2"})
    assert shared.runware_request_spacing_seconds == pytest.approx(1.1 * 2 / 0.4)
    alone = Settings.from_environment({**env, "RUNWARE_REQUESTS_PER_SECOND": "2"})
    assert alone.runware_request_spacing_seconds == pytest.approx(0.55)
    for bad in ("fast", "-1", "nan"):
        with pytest.raises(Exception, match="RUNWARE_REQUESTS_PER_SECOND"):
            Settings.from_environment({**env, "RUNWARE_REQUESTS_PER_SECOND": bad})


# --- in the client ------------------------------------------------------------------------------


def refusing(times: int, retry_after: str = "2"):
    """429 with Retry-After `times` times, then an acknowledgement of every task."""
    state = {"left": times}

    def answer(request: httpx.Request) -> httpx.Response:
        if state["left"] > 0:
            state["left"] -= 1
            return httpx.Response(429, headers={"Retry-After": retry_after})
        import json

        tasks = json.loads(request.content)
        return httpx.Response(200, json={"data": [{"taskUUID": t["taskUUID"]} for t in tasks]})

    return answer


def client_for(answer, **options) -> tuple[RunwareClient, list[float]]:
    sleeps: list[float] = []
    client = RunwareClient(
        "https://runware.example.test/v1",
        lambda: "key",
        http=httpx.Client(transport=httpx.MockTransport(answer)),
        sleep=sleeps.append,
        rng=random.Random(3),
        **options,
    )
    return client, sleeps


TASK = {"taskType": "upscale", "taskUUID": "3f1c6a2e-8b4d-4c1e-9a7f-2d5b6c8e9f01"}


def test_429s_are_waited_out_past_max_attempts_while_the_deadline_allows() -> None:
    client, sleeps = client_for(refusing(7), max_attempts=3)
    response = client.send([TASK])
    assert isinstance(response.outcome(TASK["taskUUID"]), Accepted)
    assert len(sleeps) == 7 and all(2.0 <= pause < 3.0 for pause in sleeps)


def test_429s_stop_at_max_throttled_attempts() -> None:
    client, sleeps = client_for(refusing(50), max_throttled_attempts=4)
    with pytest.raises(RunwareUnavailable, match="4 attempt"):
        client.send([TASK])
    assert len(sleeps) == 3


def test_other_failures_still_stop_at_max_attempts() -> None:
    client, _ = client_for(lambda request: httpx.Response(503), max_attempts=3)
    with pytest.raises(RunwareUnavailable, match="3 attempt"):
        client.send([TASK])


def test_after_a_refusal_the_next_request_waits_for_the_spacing() -> None:
    client, sleeps = client_for(refusing(1))
    client.send([TASK])  # refused once, then accepted: the spacing is now the Retry-After
    assert client.pacer.spacing == 2.0
    sleeps.clear()
    client.send([TASK])
    assert len(sleeps) == 1 and 1.5 < sleeps[0] <= 2.0


def test_a_configured_spacing_paces_requests_from_the_second_on() -> None:
    client, sleeps = client_for(refusing(0), least_request_spacing_seconds=4.0)
    client.send([TASK])
    assert sleeps == []
    client.send([TASK])
    assert len(sleeps) == 1 and 3.5 < sleeps[0] <= 4.0


def test_each_sending_thread_keeps_its_own_spacing() -> None:
    client, _ = client_for(refusing(1))
    client.send([TASK])
    other: list[float] = []
    thread = threading.Thread(target=lambda: other.append(client.pacer.spacing))
    thread.start()
    thread.join()
    assert client.pacer.spacing == 2.0 and other == [0.0]


def replay_burst(containers: int, rate: float, batches: int, seed: int) -> tuple[float, float]:
    """Containers with a backlog sending one request per batch to a token bucket (the emulator's rate
    limit, whole-second Retry-After), each through its own RequestPacer, as RunwareClient.send does:
    the first try after the pacer's wait, a 429 retried after its Retry-After and a little jitter.
    Virtual time; returns (time of the last accepted request / what the rate alone needs, requests
    per batch)."""
    rng = random.Random(seed)
    clock = Clock()
    start = clock.now
    bucket = TokenBucket(rate, clock)
    pacers = [RequestPacer(clock=clock) for _ in range(containers)]
    waiting = batches
    requests = 0
    last_accepted = start
    # (when, order, container, attempt, 429s so far); attempt 0: the container takes its next batch
    events = [(start + rng.uniform(0, 2), index, index, 0, 0) for index in range(containers)]
    order = containers
    while events:
        clock.now, _, container, attempt, throttled = heapq.heappop(events)
        pacer = pacers[container]
        if attempt == 0:
            if not waiting:
                continue
            waiting -= 1
            when = clock.now + pacer.wait_seconds()
            attempt = 1
        else:
            requests += 1
            wait = bucket.take()
            if wait is None:
                pacer.accepted(first_try=attempt == 1, sent_at=clock.now)
                last_accepted = clock.now
                when, attempt, throttled = clock.now + rng.uniform(0.2, 0.6), 0, 0  # the rest of the batch
            else:
                retry_after = float(retry_after_header(wait))
                pacer.refused(retry_after, first_try=attempt == 1)
                throttled += 1
                jitter = rng.uniform(0, RETRY_AFTER_JITTER_SECONDS * throttled)
                when, attempt = clock.now + retry_after + jitter, attempt + 1
        order += 1
        heapq.heappush(events, (when, order, container, attempt, throttled))
    return (last_accepted - start) / (batches / rate), requests / batches


@pytest.mark.parametrize("seed", range(20))
def test_two_containers_sharing_a_rate_use_it_and_waste_few_requests(seed: int) -> None:
    ratio, requests_per_batch = replay_burst(containers=2, rate=0.25, batches=200, seed=seed)
    assert ratio <= 1.25
    assert requests_per_batch <= 1.5


@pytest.mark.parametrize("seed", range(10))
def test_five_containers_sharing_a_rate_still_use_it(seed: int) -> None:
    ratio, _ = replay_burst(containers=5, rate=0.25, batches=200, seed=seed)
    assert ratio <= 1.3  # five containers collide more; shrinking by a hundredth needed up to 1.46x
