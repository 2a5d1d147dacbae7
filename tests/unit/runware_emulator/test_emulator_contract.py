"""The emulator holds to the Runware contract (tests/contract/runware/).

Every code it can emit is registered in one place (``errors.ERROR_CODES``) and must be a contract
code; and, driven through its HTTP API in every fault mode, every answer and webhook body it gives
has only the contract's envelope keys, error codes and getResponse statuses.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

import httpx
import pytest
from emulator_helpers import AUTH, Peer, async_task, call, fast_faults, poll, statuses, upscale_task

from local.runware_emulator import ApiError, FaultConfig, RunwareEmulator
from local.runware_emulator.errors import ERROR_CODES, TASK_FAILURE_CODES
from tests.contract.runware_contract import (
    contract_envelope_keys,
    contract_error_codes,
    contract_statuses,
    load_fixtures,
)

NON_CONTRACT_KNOBS = {
    # Emits hostile items outside the contract on purpose, to test the parsers' defences.
    "getresponse_junk_items",
}

FAULT_MODES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "latency": {"latency_seconds": 0.15, "latency_jitter_seconds": 0.05},
    "task failures": {"task_failure_rate": 1.0},
    "task failures, nested": {
        "task_failure_rate": 1.0,
        "task_failure_code": "inferenceError",
        "getresponse_error_shape": "nested",
    },
    "reject 400": {"reject_rate": 1.0, "reject_status": 400},
    "reject 402": {"reject_rate": 1.0, "reject_status": 402},
    "429 burst": {"burst_429": 3, "retry_after_seconds": 2},
    "rate limit": {"rate_limit_per_second": 4},
    "5xx": {"rate_5xx": 0.5, "status_5xx": 502},
    "dropped webhooks": {"drop_webhook_rate": 1.0},
    "duplicated webhooks": {"duplicate_webhook_rate": 1.0},
    "delayed webhooks": {"webhook_delay_seconds": 0.05},
    "webhook before upload": {"webhook_before_upload": True},
    "bare webhooks": {"webhook_shape": "bare"},
    "webhook retries": {"webhook_retry_base_seconds": 0.01, "webhook_max_attempts": 2},
    "upload content type": {"upload_content_type": "image/jpeg"},
    "no imageURL beside uploadEndpoint": {"image_url_with_upload": False},
    "account 401": {"account_error_status": 401},
    "account 402": {"account_error_status": 402},
    "account 403": {"account_error_status": 403},
    "forgetting getResponse": {"forget_after_seconds": 0},
    "nested getResponse errors": {"getresponse_error_shape": "nested"},
}

CONTRACT_HTTP_STATUSES = {fixture.http_status for fixture in load_fixtures() if fixture.http_status is not None}


@dataclasses.dataclass(frozen=True)
class Answer:
    what: str
    status: int
    content_type: str
    body: bytes


def test_every_code_the_emulator_can_emit_is_a_contract_code():
    assert set(ERROR_CODES) <= contract_error_codes(), set(ERROR_CODES) - contract_error_codes()
    assert set(TASK_FAILURE_CODES) <= set(ERROR_CODES)


def test_an_error_outside_the_registry_cannot_be_built():
    with pytest.raises(ValueError, match="registry"):
        ApiError("duplicateTaskUUID", "a code Runware does not use")


def test_every_fault_knob_is_driven_through_the_contract_check_or_exempt_by_name():
    driven = {name for knobs in FAULT_MODES.values() for name in knobs}
    assert driven | NON_CONTRACT_KNOBS == {item.name for item in dataclasses.fields(FaultConfig)}


def test_the_check_catches_an_invented_code_an_unknown_envelope_and_a_status():
    for body in (
        {"errors": [{"code": "duplicateTaskUUID", "message": "x"}]},
        {"data": [], "meta": {}},
        {"data": [{"taskUUID": str(uuid.uuid4()), "status": "queuedForever"}]},
        {"data": [{"status": "error", "error": {"code": "madeUp", "message": "x"}}]},
    ):
        with pytest.raises(AssertionError):
            assert_within_contract(Answer("forged", 200, "application/json", json.dumps(body).encode()))
    with pytest.raises(AssertionError):
        assert_within_contract(Answer("5xx with an envelope", 503, "application/json", b'{"errors": []}'))


@pytest.mark.parametrize("mode", list(FAULT_MODES))
def test_every_answer_in_each_fault_mode_is_within_the_contract(mode, contract_emulator, peer, client, photo):
    contract_emulator.faults = fast_faults(**FAULT_MODES[mode])
    contract_emulator.reset()
    if mode == "webhook retries":
        peer.responders["/hooks/runware"] = statuses(500, 500, 200)
    answers = exercise(contract_emulator, peer, client, photo)
    webhooks = [
        Answer("webhook", 200, item.headers.get("content-type", ""), item.body)
        for item in peer.received
        if item.method == "POST"
    ]
    assert answers
    for answer in answers + webhooks:
        assert_within_contract(answer)


@pytest.fixture(scope="module")
def contract_emulator():
    with RunwareEmulator(seed=7, faults=fast_faults()) as emu:
        yield emu


def exercise(emu: RunwareEmulator, peer: Peer, client: httpx.Client, photo: str) -> list[Answer]:
    """A run of everything the pipeline and a careless client might send; every answer, in order."""
    answers: list[Answer] = []

    def send(what: str, tasks: Any, headers: dict[str, str] | None = None, raw: bytes | None = None) -> None:
        if raw is not None:
            response = client.post(emu.url, content=raw, headers=AUTH)
        else:
            response = call(client, emu, tasks, headers)
        answers.append(Answer(what, response.status_code, response.headers.get("content-type", ""), response.content))

    accepted = async_task(peer, photo)
    refused_upload = async_task(peer, photo, uploadEndpoint=peer.url("/outputs/refused.jpg"))
    peer.responders["/outputs/refused.jpg"] = statuses(403)
    sync = upscale_task(photo)
    twin = upscale_task(photo)
    send("async upscale", [accepted])
    send("async upscale, upload refused", [refused_upload])
    send("poll while processing", [{"taskType": "getResponse", "taskUUID": accepted["taskUUID"]}])
    send("sync upscale", [sync])
    send("re-submission", [accepted])
    send("twins in one request", [twin, twin])
    send("an invalid and a valid task", [upscale_task(photo, targetMegapixels=9), upscale_task(photo)])
    send("no key", [upscale_task(photo)], headers={})
    send("not an array", None, raw=b'{"taskType": "upscale"}')
    send("an unknown task type", [{"taskType": "imageInference", "taskUUID": str(uuid.uuid4())}])
    emu.wait_idle(10)
    for task in (accepted, refused_upload, sync, twin):
        send("poll", [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
        send("task details", [{"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]}])
    send("poll an unknown task", [{"taskType": "getResponse", "taskUUID": str(uuid.uuid4())}])
    send("details of an unknown task", [{"taskType": "getTaskDetails", "taskUUID": str(uuid.uuid4())}])
    send(
        "poll a known and an unknown task",
        [
            {"taskType": "getResponse", "taskUUID": accepted["taskUUID"]},
            {"taskType": "getResponse", "taskUUID": str(uuid.uuid4())},
        ],
    )
    answers.append(Answer("poll", *_response_parts(poll(client, emu, sync["taskUUID"]))))
    emu.wait_idle(10)
    return answers


def _response_parts(response: httpx.Response) -> tuple[int, str, bytes]:
    return response.status_code, response.headers.get("content-type", ""), response.content


def assert_within_contract(answer: Answer) -> None:
    """The answer's HTTP status, top-level keys, codes and getResponse statuses are all in the contract."""
    if 500 <= answer.status <= 599:
        # A 5xx body is not documented: the emulator sends plain text, never a Runware envelope.
        assert answer.content_type.startswith("text/plain"), answer
        return
    assert answer.status in CONTRACT_HTTP_STATUSES, answer
    body = json.loads(answer.body)
    if answer.what == "webhook" and isinstance(body, dict) and not ({"data", "errors"} & set(body)):
        items = [body]  # a bare webhook body, as the contract's webhook/bare-* fixtures
    else:
        assert isinstance(body, dict), answer
        assert set(body) <= contract_envelope_keys(), answer
        items = [*body.get("data", []), *body.get("errors", [])]
    codes = set(_codes(body))
    assert codes <= contract_error_codes(), (answer, codes - contract_error_codes())
    for item in items:
        assert isinstance(item, dict), answer
        if "status" in item:
            assert item["status"] in contract_statuses(), answer


def _codes(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["code"]] if isinstance(value.get("code"), str) else []
        for name, child in value.items():
            # getTaskDetails echoes the request, whose fields are the caller's, not codes.
            if name != "request":
                found += _codes(child)
        return found
    if isinstance(value, list):
        return [code for child in value for code in _codes(child)]
    return []
