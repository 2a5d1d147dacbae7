"""Request-level fault knobs over real HTTP: 429 bursts and the rate limit, rejections, 5xx, seeded draws."""

from __future__ import annotations

import httpx
import pytest
from emulator_helpers import (
    FakeClock,
    call,
    fast_faults,
    poll,
    upscale_task,
)

from local.runware_emulator import (
    FaultConfig,
    RunwareEmulator,
    parse_command_line,
)
from local.runware_emulator.rate_limit import TokenBucket, retry_after_header
from tests.contract.runware_contract import by_name

# --------------------------------------------------------------------------------------------
# Request-level faults


def test_a_429_burst_answers_with_retry_after_then_recovers(emulator, client, photo):
    emulator.faults = fast_faults(burst_429=2, retry_after_seconds=3)
    task = upscale_task(photo)
    for _ in range(2):
        refused = call(client, emulator, [task])
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "3"
        [error] = refused.json()["errors"]
        assert (error["code"], error["taskUUID"]) == ("rateLimitExceeded", task["taskUUID"])
    assert emulator.faults.burst_429 == 0
    accepted = call(client, emulator, [task])
    assert accepted.status_code == 200, "a refused submission must not register its taskUUID"


def test_the_token_bucket_holds_a_burst_of_rate_and_refills_at_rate():
    clock = FakeClock()
    bucket = TokenBucket(4, clock)
    assert [bucket.take() for _ in range(4)] == [None] * 4
    assert bucket.take() == pytest.approx(0.25)
    clock.now += 0.25
    assert bucket.take() is None
    clock.now += 10
    assert [bucket.take() for _ in range(5)] == [None] * 4 + [pytest.approx(0.25)], "never more than the burst"
    slow = TokenBucket(0.5, clock)
    assert slow.take() is None, "a rate below one still lets one request through"
    assert slow.take() == pytest.approx(2.0)
    assert (retry_after_header(0.01), retry_after_header(2.0), retry_after_header(2.1)) == ("1", "2", "3")


def test_rate_limit_answers_429_with_retry_after_above_the_rate(client, photo):
    clock = FakeClock()
    with RunwareEmulator(clock=clock, faults=FaultConfig(rate_limit_per_second=2)) as emu:
        first, second, third = upscale_task(photo), upscale_task(photo), upscale_task(photo)
        assert call(client, emu, [first]).status_code == 200
        assert poll(client, emu, first["taskUUID"]).status_code == 200, "polls count against the rate too"
        refused = call(client, emu, [second, third])
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        assert [(e["code"], e["taskUUID"]) for e in refused.json()["errors"]] == [
            ("rateLimitExceeded", second["taskUUID"]),
            ("rateLimitExceeded", third["taskUUID"]),
        ]
        assert set(emu.tasks) == {first["taskUUID"]}, "a refused request creates no task"
        clock.now += 0.5
        assert call(client, emu, [second]).status_code == 200
        assert call(client, emu, [third]).status_code == 429
        emu.faults = FaultConfig()
        assert call(client, emu, [third]).status_code == 200


@pytest.mark.parametrize("rate", [0, -1.0, float("nan"), float("inf")])
def test_rate_limit_must_be_a_positive_finite_rate(rate):
    with pytest.raises(ValueError, match="rate_limit_per_second"):
        FaultConfig(rate_limit_per_second=rate)


def test_rate_limit_comes_from_a_flag_or_the_environment():
    from_env = parse_command_line([], {"RUNWARE_EMULATOR_RATE_LIMIT_PER_SECOND": "2.5"})
    assert from_env.faults.rate_limit_per_second == 2.5
    assert parse_command_line(["--rate-limit-per-second", "7"], {}).faults.rate_limit_per_second == 7.0
    assert parse_command_line([], {"RUNWARE_EMULATOR_RATE_LIMIT_PER_SECOND": ""}).faults.rate_limit_per_second is None
    assert FaultConfig.from_mapping({"rate_limit_per_second": None}).rate_limit_per_second is None
    assert FaultConfig.from_mapping({"rate_limit_per_second": 3}).rate_limit_per_second == 3.0


def test_reject_402_refuses_the_request_with_the_account_level_error(emulator, client, photo):
    emulator.faults = fast_faults(reject_rate=1.0, reject_status=402)
    tasks = [upscale_task(photo), upscale_task(photo)]
    refused = call(client, emulator, tasks)
    assert refused.status_code == 402
    assert refused.json() == by_name("rest/account-insufficient-credits-402").body, "one error, no taskUUID"
    polled = poll(client, emulator, tasks[0]["taskUUID"])
    assert polled.json()["errors"][0]["code"] == "taskFailedOrNotFound", "polls pass; the refused task was never kept"


def test_reject_400_refuses_every_task_with_invalid_parameter(emulator, client, photo):
    emulator.faults = fast_faults(reject_rate=1.0, reject_status=400)
    tasks = [upscale_task(photo), upscale_task(photo)]
    refused = call(client, emulator, tasks)
    assert refused.status_code == 400
    errors = refused.json()["errors"]
    assert [(e["code"], e["taskUUID"]) for e in errors] == [("invalidParameter", t["taskUUID"]) for t in tasks]
    assert emulator.tasks == {}

    emulator.faults = fast_faults()
    assert call(client, emulator, tasks).status_code == 200


@pytest.mark.parametrize("status", [503, 500, 599])
def test_rate_5xx_answers_the_configured_status_with_a_plain_text_body(emulator, client, photo, status):
    emulator.faults = fast_faults(rate_5xx=1.0, status_5xx=status)
    response = call(client, emulator, [upscale_task(photo)])
    assert response.status_code == status
    # The body of a 5xx is not documented, so it is no Runware envelope.
    assert response.headers["content-type"].startswith("text/plain")
    assert f"HTTP {status}" in response.text
    assert emulator.tasks == {}


def test_the_same_seed_makes_the_same_choices(photo):
    def status_sequence() -> list[int]:
        with RunwareEmulator(seed=99, faults=FaultConfig(reject_rate=0.5, reject_status=402)) as emu:
            invalid = upscale_task(photo, targetMegapixels=0)
            with httpx.Client(trust_env=False, timeout=10) as http:
                return [call(http, emu, [invalid]).status_code for _ in range(12)]

    first = status_sequence()
    assert set(first) == {400, 402}
    assert status_sequence() == first


# --------------------------------------------------------------------------------------------
# Account-level refusals


@pytest.mark.parametrize(
    ("status", "fixture_name"),
    [
        (401, "rest/account-invalid-api-key-401"),
        (402, "rest/account-insufficient-credits-402"),
        (403, "rest/account-forbidden-403"),
    ],
)
def test_account_error_status_refuses_every_request_naming_no_task(emulator, client, photo, status, fixture_name):
    known = upscale_task(photo)
    assert call(client, emulator, [known]).status_code == 200
    emulator.faults = fast_faults(account_error_status=status)
    fixture = by_name(fixture_name)
    for tasks in (
        [upscale_task(photo), upscale_task(photo)],
        [{"taskType": "getResponse", "taskUUID": known["taskUUID"]}],
    ):
        refused = call(client, emulator, tasks)
        assert refused.status_code == fixture.http_status == status
        [error] = refused.json()["errors"]
        assert set(refused.json()) == set(fixture.body)
        assert "taskUUID" not in error
        assert error["code"] == fixture.body["errors"][0]["code"]
    assert refused.json()["errors"][0]["taskType"] == ("authentication" if status == 401 else "getResponse")
    assert set(emulator.tasks) == {known["taskUUID"]}, "no task is created while the account is refused"

    emulator.faults = fast_faults()
    assert call(client, emulator, [upscale_task(photo)]).status_code == 200, "fixed: requests pass again"


@pytest.mark.parametrize("status", [400, 404, 429, 500])
def test_account_error_status_is_401_402_or_403(status):
    with pytest.raises(ValueError, match="account_error_status"):
        FaultConfig(account_error_status=status)


def test_task_failure_code_must_be_a_task_failure_code_of_the_contract():
    assert FaultConfig(task_failure_code="inferenceError").task_failure_code == "inferenceError"
    with pytest.raises(ValueError, match="task_failure_code"):
        FaultConfig(task_failure_code="madeUpCode")
