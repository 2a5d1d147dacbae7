"""getResponse knobs over real HTTP: forgetting finished tasks, both failure shapes, hostile items."""

from __future__ import annotations

import json
import math
import uuid

import pytest
from emulator_helpers import FakeClock, async_task, call, fast_faults, poll, upscale_task

from local.runware_emulator import FaultConfig, RunwareEmulator
from local.runware_emulator.hostile import HUGE_STRING_CHARACTERS, NESTING_DEPTH
from tests.contract.runware_contract import by_name


def test_get_response_forgets_a_task_finished_longer_ago_than_forget_after_seconds(client, photo):
    clock = FakeClock()
    with RunwareEmulator(clock=clock, faults=FaultConfig(forget_after_seconds=30)) as emu:
        task = upscale_task(photo)
        assert call(client, emu, [task]).status_code == 200
        clock.now += 30
        assert poll(client, emu, task["taskUUID"]).json()["data"][0]["status"] == "success"
        clock.now += 1
        forgotten = poll(client, emu, task["taskUUID"])
        fixture = by_name("getResponse/not-found")
        assert forgotten.status_code == fixture.http_status
        assert forgotten.json()["data"] == []
        [error] = forgotten.json()["errors"]
        assert (error["code"], error["taskUUID"]) == ("taskFailedOrNotFound", task["taskUUID"])

        details = call(client, emu, [{"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]}])
        assert details.json()["data"][0]["response"]["data"][0]["taskUUID"] == task["taskUUID"], (
            "getTaskDetails is documented to return past tasks: it does not forget"
        )
        assert call(client, emu, [task]).json()["errors"][0]["code"] == "conflictTaskUUID", "the task is still held"


def test_forget_after_seconds_leaves_running_tasks_alone(emulator, client, peer, photo):
    emulator.faults = fast_faults(forget_after_seconds=0, latency_seconds=0.3)
    task = async_task(peer, photo)
    call(client, emulator, [task])
    assert poll(client, emulator, task["taskUUID"]).json()["data"][0]["status"] == "processing"
    assert emulator.wait_idle(5)
    assert poll(client, emulator, task["taskUUID"]).json()["errors"][0]["code"] == "taskFailedOrNotFound"


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_forget_after_seconds_must_be_finite_and_not_negative(seconds):
    with pytest.raises(ValueError, match="forget_after_seconds"):
        FaultConfig(forget_after_seconds=seconds)


def test_the_nested_shape_reports_a_failed_task_as_a_data_item_with_an_error(emulator, client, peer, photo):
    emulator.faults = fast_faults(
        task_failure_rate=1.0, task_failure_code="inferenceError", getresponse_error_shape="nested"
    )
    task = async_task(peer, photo)
    call(client, emulator, [task])
    assert emulator.wait_idle(5)
    answer = poll(client, emulator, task["taskUUID"])
    fixture = by_name("getResponse/error-nested-data-item")
    assert answer.status_code == fixture.http_status
    assert set(answer.json()) == set(fixture.body)
    [item] = answer.json()["data"]
    assert (item["taskUUID"], item["status"]) == (task["taskUUID"], "error")
    assert set(item["error"]) == set(fixture.body["data"][0]["error"])
    assert item["error"]["code"] == "inferenceError"


def test_the_nested_shape_reports_an_unknown_task_likewise(emulator, client):
    emulator.faults = fast_faults(getresponse_error_shape="nested")
    unknown = str(uuid.uuid4())
    answer = poll(client, emulator, unknown)
    fixture = by_name("getResponse/not-found-nested")
    assert answer.status_code == fixture.http_status
    [item] = answer.json()["data"]
    assert (item["taskUUID"], item["status"], item["error"]["code"]) == (unknown, "error", "taskFailedOrNotFound")


def test_the_errors_shape_reports_a_failed_task_in_a_top_level_errors_item(emulator, client, peer, photo):
    emulator.faults = fast_faults(task_failure_rate=1.0)
    task = async_task(peer, photo)
    call(client, emulator, [task])
    assert emulator.wait_idle(5)
    answer = poll(client, emulator, task["taskUUID"])
    fixture = by_name("getResponse/error-top-level")
    assert answer.status_code == fixture.http_status
    assert set(answer.json()) == set(fixture.body) and answer.json()["data"] == []
    [error] = answer.json()["errors"]
    assert (error["code"], error["taskUUID"]) == ("timeoutProvider", task["taskUUID"])


def test_getresponse_error_shape_must_be_errors_or_nested():
    with pytest.raises(ValueError, match="getresponse_error_shape"):
        FaultConfig(getresponse_error_shape="flat")


def _parse_allowing_depth(text: str) -> object:
    """json.loads, with a recursion limit deep enough for the nested junk item."""
    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, NESTING_DEPTH * 3))
    try:
        return json.loads(text)
    finally:
        sys.setrecursionlimit(limit)


def test_junk_items_follow_the_real_items_of_every_get_response(emulator, client, photo):
    emulator.faults = fast_faults(getresponse_junk_items=5)
    task = upscale_task(photo)
    call(client, emulator, [task])
    answer = poll(client, emulator, task["taskUUID"])
    assert answer.status_code == 200
    with pytest.raises(RecursionError):
        json.loads(answer.content)  # deeper than Python's json decoder goes by default
    body = _parse_allowing_depth(answer.text)
    real, nested, numbers, wrong, huge, bare = body["data"]
    assert (real["taskUUID"], real["status"]) == (task["taskUUID"], "success")
    depth, level = 0, nested["error"]
    while level:
        level, depth = level["error"], depth + 1
    assert depth == NESTING_DEPTH
    assert math.isnan(numbers["cost"]) and numbers["width"] == math.inf and numbers["height"] == -math.inf
    assert isinstance(wrong["taskUUID"], int) and isinstance(wrong["status"], list)
    assert len(huge["imageURL"]) == HUGE_STRING_CHARACTERS
    assert bare == "junk"

    unknown = poll(client, emulator, str(uuid.uuid4()))
    assert len(_parse_allowing_depth(unknown.text)["data"]) == 5, "an answer with only errors gets them too"
    assert "errors" in _parse_allowing_depth(unknown.text)

    submitted = call(client, emulator, [upscale_task(photo)])
    assert len(submitted.json()["data"]) == 1, "only getResponse answers carry junk"


def test_getresponse_junk_items_must_not_be_negative():
    with pytest.raises(ValueError, match="getresponse_junk_items"):
        FaultConfig(getresponse_junk_items=-1)
