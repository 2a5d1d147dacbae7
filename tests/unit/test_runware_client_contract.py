"""The Runware client on every REST, getResponse and getTaskDetails answer in the contract, served over httpx."""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest

from tests.contract.runware_contract import Fixture, by_name, load_fixtures
from upscaler.models import TaskError, TaskResult
from upscaler.runware import (
    BatchResponse,
    RunwareClient,
    RunwareUnavailable,
    is_account_error,
    is_duplicate_task,
    is_not_found,
)

API_URL = "https://runware.example.test/v1"
T1 = "3f1c6a2e-8b4d-4c1e-9a7f-2d5b6c8e9f01"
T2 = "7a2b9c4d-1e3f-4a5b-8c6d-0e1f2a3b4c5d"
IMAGE_UUID = "5d2e7f1a-9c3b-4e8d-a6f0-1b2c3d4e5f60"
IMAGE_URL = f"https://im.runware.ai/image/ws/2/ii/{IMAGE_UUID}.jpg"
RESULT = TaskResult(T1, IMAGE_UUID, IMAGE_URL, Decimal("0.005"))


def answer_with(fixture: Fixture) -> httpx.Response:
    headers = {} if fixture.body is None else {"Content-Type": "application/json"}
    return httpx.Response(fixture.http_status or 200, content=fixture.body_bytes(), headers=headers)


def make_client(*answers: Fixture, max_attempts: int = 3) -> tuple[RunwareClient, list[httpx.Request]]:
    """A client whose transport answers with the fixtures in turn (the last one repeats)."""
    queue = list(answers)
    seen: list[httpx.Request] = []

    def transport(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer_with(queue.pop(0) if len(queue) > 1 else queue[0])

    client = RunwareClient(
        API_URL,
        lambda: "key",
        http=httpx.Client(transport=httpx.MockTransport(transport)),
        sleep=lambda _: None,
        rng=random.Random(3),
        max_attempts=max_attempts,
    )
    return client, seen


def served(name: str) -> BatchResponse:
    fixture = by_name(name)
    client, _ = make_client(fixture)
    return client.send(list(fixture.request or ()))


def no_task_errors(batch: BatchResponse) -> None:
    assert (batch.errors, batch.account_error, batch.malformed) == ({}, None, 0)


def only_error(batch: BatchResponse) -> TaskError:
    assert batch.account_error is None and batch.malformed == 0
    assert list(batch.errors) == [T1] and T1 not in batch.items
    return batch.errors[T1]


def check_async_ack(batch: BatchResponse) -> None:
    no_task_errors(batch)
    assert batch.items == {T1: {"taskType": "upscale", "taskUUID": T1}}


def check_async_ack_empty(batch: BatchResponse) -> None:
    no_task_errors(batch)
    assert (batch.items, batch.status_code) == ({}, 200)


def check_result(batch: BatchResponse) -> None:
    no_task_errors(batch)
    assert TaskResult.from_json(batch.items[T1]) == RESULT


def check_error_envelope(batch: BatchResponse) -> None:
    error = only_error(batch)
    message = "Invalid value for targetMegapixels parameter."
    assert error == TaskError("invalidParameter", message, "targetMegapixels", T1, "upscale")
    assert not (is_duplicate_task(error) or is_not_found(error) or is_account_error(error))


def check_multi_task(batch: BatchResponse) -> None:
    assert list(batch.items) == [T1] and list(batch.errors) == [T2]
    assert (batch.errors[T2].code, batch.errors[T2].parameter) == ("invalidParameter", "outputQuality")
    assert batch.account_error is None


def check_conflict(batch: BatchResponse) -> None:
    error = only_error(batch)
    assert error.code == "conflictTaskUUID" and error.task_uuid == T1
    assert is_duplicate_task(error) and not is_account_error(error)


def account_check(code: str) -> Callable[[BatchResponse], None]:
    def check(batch: BatchResponse) -> None:
        assert batch.errors == {}, "an account refusal is not any task's failure"
        assert batch.account_error is not None and batch.account_error.code == code
        assert is_account_error(batch.account_error)

    return check


def check_upload_failed(batch: BatchResponse) -> None:
    error = only_error(batch)
    assert error.code == "uploadFailed"
    assert not (is_duplicate_task(error) or is_not_found(error))


def status_check(status: str) -> Callable[[BatchResponse], None]:
    def check(batch: BatchResponse) -> None:
        no_task_errors(batch)
        assert batch.items[T1]["status"] == status

    return check


def check_error_top_level(batch: BatchResponse) -> None:
    assert (only_error(batch).code, only_error(batch).message) == ("timeoutProvider", "Provider timed out")


def check_error_nested(batch: BatchResponse) -> None:
    error = only_error(batch)
    assert (error.code, error.message, error.task_uuid) == ("inferenceError", "one of N failed", T1)


def check_not_found(batch: BatchResponse) -> None:
    error = only_error(batch)
    assert error.code == "taskFailedOrNotFound" and is_not_found(error)
    assert not is_duplicate_task(error)


def check_task_details(batch: BatchResponse) -> None:
    no_task_errors(batch)
    details = batch.items[T1]
    assert details["request"]["taskUUID"] == T1
    assert TaskResult.from_json(details["response"]["data"][0]) == RESULT


EXPECTED: dict[str, Callable[[BatchResponse], None]] = {
    "rest/async-ack": check_async_ack,
    "rest/async-ack-empty": check_async_ack_empty,
    "rest/sync-success": check_result,
    "rest/error-envelope": check_error_envelope,
    "rest/multi-task-data-and-errors": check_multi_task,
    "rest/conflict-task-uuid": check_conflict,
    "rest/conflict-task-uuid-context": check_conflict,
    "rest/account-invalid-api-key-401": account_check("invalidApiKey"),
    "rest/account-401-no-body": account_check("http401"),
    "rest/account-insufficient-credits-402": account_check("insufficientCredits"),
    "rest/account-forbidden-403": account_check("insufficientPermissions"),
    "rest/upload-failed": check_upload_failed,
    "getResponse/processing": status_check("processing"),
    "getResponse/pending": status_check("pending"),
    "getResponse/success": check_result,
    "getResponse/error-top-level": check_error_top_level,
    "getResponse/error-nested-data-item": check_error_nested,
    "getResponse/not-found": check_not_found,
    "getResponse/not-found-nested": check_not_found,
    "getTaskDetails/success": check_task_details,
}
RETRIED = ("rest/rate-limited-429",)


@pytest.mark.parametrize("name", EXPECTED)
def test_each_answer_parses_as_the_contract_says(name):
    EXPECTED[name](served(name))


def test_every_rest_poll_and_details_fixture_is_checked_here():
    kinds = {"rest", "getResponse", "getTaskDetails"}
    names = {fixture.name for fixture in load_fixtures() if fixture.kind in kinds}
    assert names == set(EXPECTED) | set(RETRIED)


def test_a_rate_limited_answer_is_retried_then_given_up():
    client, seen = make_client(by_name("rest/rate-limited-429"), max_attempts=2)
    with pytest.raises(RunwareUnavailable, match="429"):
        client.send(list(by_name("rest/rate-limited-429").request or ()))
    assert len(seen) == 2


def test_a_rate_limited_answer_then_an_acknowledgement_is_accepted():
    client, seen = make_client(by_name("rest/rate-limited-429"), by_name("rest/async-ack"))
    check_async_ack(client.send(list(by_name("rest/async-ack").request or ())))
    assert len(seen) == 2


def test_a_poll_repeating_a_finished_item_beside_a_running_one_keeps_the_result():
    success, processing = by_name("getResponse/success"), by_name("getResponse/processing")
    both = Fixture(**{**success.__dict__, "body": {"data": success.body["data"] + processing.body["data"]}})
    client, _ = make_client(both)
    check_result(client.get_responses([T1]))


def test_the_account_refusal_leaves_every_task_of_the_request_unanswered():
    fixture = by_name("rest/account-invalid-api-key-401")
    client, _ = make_client(fixture)
    batch = client.send(list(by_name("rest/multi-task-data-and-errors").request or ()))
    assert batch.errors == {} and batch.items == {} and batch.account_error is not None
