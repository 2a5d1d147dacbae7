"""Hostile and malformed Runware answers: generated cases for the getResponse and webhook readers.

Nothing here may raise out of the parser, hide a readable item, keep an unbounded string or a
cost that is not a finite non-negative number.
"""

from __future__ import annotations

import json
import random
import uuid
from decimal import Decimal
from typing import Any

import pytest

from tests.contract.runware_contract import by_name
from upscaler.runware_answers import (
    MAX_CODE_CHARS,
    MAX_MESSAGE_CHARS,
    Failed,
    Pending,
    PollAnswer,
    Succeeded,
    TaskError,
    read_poll,
    read_webhook,
)

SEEDS = range(12)
DEEP = 100_000


def deep_list(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def hostile_values(rng: random.Random) -> list[Any]:
    return [
        float("nan"),
        float("inf"),
        -1,
        10**400,
        True,
        "0.005",
        [1, 2],
        {"nested": {"deeper": [None]}},
        "x" * rng.randint(5_000, 50_000),
        None,
        "",
    ]


def hostile_item(rng: random.Random, task_uuid: str) -> Any:
    """An item that must be skipped (counted) without disturbing the others."""
    value = rng.choice(hostile_values(rng))
    return rng.choice(
        [
            {"taskUUID": rng.choice([42, [task_uuid], {"id": task_uuid}, "u" * 10_000]), "imageURL": "x"},
            {"taskUUID": None, "status": "success"},
            value,
            [task_uuid],
            "data",
        ]
    )


def good_answer(rng: random.Random, task_uuid: str) -> tuple[str, dict[str, Any]]:
    """One readable getResponse item (or top-level error) for the task, and what it must become."""
    image = str(uuid.uuid4())
    kind = rng.choice(["success", "processing", "nested-error", "top-level-error"])
    bad_cost = rng.choice(hostile_values(rng))
    if kind == "success":
        return kind, {
            "taskUUID": task_uuid,
            "status": "success",
            "imageUUID": image,
            "imageURL": "https://x/i.jpg",
            "cost": bad_cost,
        }
    if kind == "processing":
        return kind, {"taskUUID": task_uuid, "status": "processing", "progress": bad_cost}
    code = rng.choice(["inferenceError", "x" * 5_000, {"code": "inner"}, 17, None])
    message = rng.choice(["failed", "m" * 20_000, ["a", "b"], {"text": "no"}, None])
    if kind == "nested-error":
        return kind, {"taskUUID": task_uuid, "status": "error", "error": {"code": code, "message": message}}
    return kind, {"taskUUID": task_uuid, "code": code, "message": message}


def parse(body: bytes, task_uuids: list[str], status: int = 200) -> PollAnswer:
    return read_poll(status, body, task_uuids)


def assert_bounded(error: TaskError) -> None:
    assert isinstance(error.code, str) and 0 < len(error.code) <= MAX_CODE_CHARS
    assert isinstance(error.message, str) and 0 < len(error.message) <= MAX_MESSAGE_CHARS
    assert "{" not in error.code and "[" not in error.message, "never a Python repr"


def assert_sane_cost(cost: Decimal | None) -> None:
    assert cost is None or (cost.is_finite() and cost >= 0)


@pytest.mark.parametrize("seed", SEEDS)
def test_generated_polls_keep_every_readable_item_and_count_the_rest(seed):
    rng = random.Random(seed)
    tasks = [str(uuid.uuid4()) for _ in range(rng.randint(1, 6))]
    data: list[Any] = []
    errors: list[Any] = []
    expected: dict[str, str] = {}
    hostile = 0
    for task_uuid in tasks:
        kind, item = good_answer(rng, task_uuid)
        expected[task_uuid] = kind
        (errors if kind == "top-level-error" else data).append(item)
        for _ in range(rng.randint(0, 3)):
            data.insert(rng.randrange(len(data) + 1), hostile_item(rng, task_uuid))
            hostile += 1
    rng.shuffle(data)
    body = json.dumps({"data": data, "errors": errors}).encode()  # NaN and Infinity go out as json writes them

    batch = parse(body, tasks)

    assert batch.malformed == hostile
    assert batch.account is None
    for task_uuid, kind in expected.items():
        outcome = batch.outcome(task_uuid)
        if kind in ("nested-error", "top-level-error"):
            assert isinstance(outcome, Failed)
            assert_bounded(outcome.error)
        elif kind == "processing":
            assert outcome == Pending(task_uuid, "processing")
        else:
            assert isinstance(outcome, Succeeded)
            assert_sane_cost(outcome.result.cost)


@pytest.mark.parametrize(
    "body",
    [deep_list().encode(), ('{"data": ' + deep_list() + "}").encode(), b"NaN", b'"text"', b"\xff\xfe", b"{"],
    ids=["deep-array", "deep-data", "nan", "string", "binary", "truncated"],
)
def test_an_unreadable_poll_answer_is_one_malformed_body_not_an_exception(body):
    batch = parse(body, [str(uuid.uuid4())])
    assert (batch.outcomes, batch.malformed) == ({}, 1)


def test_nan_and_infinity_literals_never_become_a_cost():
    task_uuid = str(uuid.uuid4())
    for literal in ("NaN", "Infinity", "-Infinity", "-0.5", "1e400"):
        body = f'{{"data": [{{"taskUUID": "{task_uuid}", "status": "success", "imageUUID": "i", "cost": {literal}}}]}}'
        outcome = parse(body.encode(), [task_uuid]).outcome(task_uuid)
        assert isinstance(outcome, Succeeded) and outcome.result.cost is None, literal


@pytest.mark.parametrize(("cost", "kept"), [(0.0052, Decimal("0.0052")), (0, Decimal(0)), (1e-300, None)])
def test_exact_small_costs_survive(cost, kept):
    [report] = read_webhook({"taskUUID": "t", "imageUUID": "i", "cost": cost}, "t").reports
    assert isinstance(report, Succeeded) and report.result.cost == kept


@pytest.mark.parametrize("seed", SEEDS)
def test_generated_webhook_bodies_keep_the_readable_report(seed):
    rng = random.Random(seed)
    job_id = str(uuid.uuid4())
    good = json.loads(json.dumps(by_name(rng.choice(["webhook/envelope-success", "webhook/nested-error-item"])).body))
    good_item = good["data"][0]
    good_item["taskUUID"] = job_id
    items = [hostile_item(rng, job_id) for _ in range(rng.randint(1, 5))]
    items.insert(rng.randrange(len(items) + 1), good_item)

    parsed = read_webhook({"data": items}, job_id)

    assert parsed.malformed == len(items) - 1
    [report] = parsed.reports
    assert report.task_uuid == job_id
    if isinstance(report, Failed):
        assert_bounded(report.error)
    else:
        assert_sane_cost(report.result.cost)


def test_a_huge_code_and_message_are_truncated_not_refused():
    [report] = read_webhook({"errors": [{"code": "c" * 10_000, "message": "m" * 10**6, "taskUUID": "t"}]}, "t").reports
    assert isinstance(report, Failed)
    assert (len(report.error.code), len(report.error.message)) == (MAX_CODE_CHARS, MAX_MESSAGE_CHARS)


def test_a_code_that_is_an_object_is_no_code_but_the_message_is_kept():
    [report] = read_webhook({"status": "error", "error": {"code": {"x": 1}, "message": "boom"}}, "t").reports
    assert report == Failed(TaskError("unknownError", "boom", None, "t"))
