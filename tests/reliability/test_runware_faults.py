"""Runware misbehaving at submission: 429 bursts, 5xx answers, permanent 400 refusals."""

from __future__ import annotations

import pytest

from local.runware_emulator import FaultConfig
from local.stack import LocalStack
from tests.reliability.harness import Drop, image_bytes, jobs_by_key, run_scenario, scaled

SMALL = {"target-megapixels": "1"}


def photos(count: int) -> list[Drop]:
    return [
        Drop(f"{index:04d}.jpg", image_bytes(160 + index % 9 * 8, 120, shade=index), SMALL) for index in range(count)
    ]


def responses(stack: LocalStack, status: int) -> int:
    assert stack.emulator is not None
    return int(stack.emulator.stats()["responses_by_status"].get(str(status), 0))


def test_429_burst_is_retried_until_every_object_completes(stack: LocalStack) -> None:
    assert stack.emulator is not None
    burst = scaled(12, 30)
    before = responses(stack, 429)
    stack.emulator.faults = FaultConfig(burst_429=burst, retry_after_seconds=1)

    row, _ = run_scenario(stack, f"Runware 429 burst of {burst}", "rel-429/", photos(scaled(12, 40)))

    assert responses(stack, 429) - before == burst
    assert row.completed == row.objects


def test_5xx_on_a_share_of_requests_is_retried_until_every_object_completes(stack: LocalStack) -> None:
    assert stack.emulator is not None
    before = responses(stack, 503)
    stack.emulator.faults = FaultConfig(rate_5xx=0.3, status_5xx=503)

    row, _ = run_scenario(stack, "Runware 503 on 30% of requests", "rel-5xx/", photos(scaled(12, 40)))

    assert responses(stack, 503) > before
    assert row.completed == row.objects


# A 402 refuses the account, not the task: it leaves the jobs open (an AccountRefusal), so only 400 here.
@pytest.mark.parametrize(("status", "code"), [(400, "invalidParameter")])
def test_permanent_refusal_fails_the_job_with_runwares_code(stack: LocalStack, status: int, code: str) -> None:
    assert stack.emulator is not None
    stack.emulator.faults = FaultConfig(reject_rate=0.5, reject_status=status)
    prefix = f"rel-{status}/"

    row, _ = run_scenario(stack, f"Runware {status} on 50% of submissions", prefix, photos(scaled(12, 40)))

    assert row.failed > 0 and row.completed > 0
    assert row.failed + row.completed == row.objects
    accepted = stack.emulator.tasks
    for job in jobs_by_key(stack, prefix).values():
        if job["status"] == "FAILED":
            assert job["errorCode"] == code, job
            assert job["errorMessage"]
            assert job["jobId"] not in accepted
            assert job["submitAttempts"] == 1
