"""Two conditional updates of one item at the same moment, through moto's DynamoDB request handler
as the local stack's moto server runs it (each request on its own thread): exactly one wins, every
time, as in DynamoDB. Requests are handed to the handler in-process, without the HTTP hop, so a
thousand races take seconds."""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.request import Request
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.responses import DynamoHandler

from local.moto_atomic_tables import install_atomic_table_requests
from local.moto_speedups import install_moto_speedups

RACES = 1000


def dynamodb(action: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """One DynamoDB request as the moto server dispatches it: (HTTP status, JSON answer)."""
    headers = {
        "X-Amz-Target": f"DynamoDB_20120810.{action}",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host, Signature=0",
    }
    request = Request.from_primitives("POST", "http://127.0.0.1:5000/", headers, json.dumps(body).encode())
    status, _, answer = DynamoHandler.dispatch(request)
    return int(status), json.loads(answer or "{}")


@pytest.fixture(scope="module")
def table() -> Iterator[str]:
    install_moto_speedups()  # what the local stack installs before its moto server starts
    install_atomic_table_requests()
    name = f"race-{uuid.uuid4().hex[:8]}"
    status, _ = dynamodb(
        "CreateTable",
        {
            "TableName": name,
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )
    assert status == 200
    yield name
    dynamodb("DeleteTable", {"TableName": name})


def race(table: str, rounds: int, prefix: str, *, stop_at_first_double: bool = False) -> list[int]:
    """Winners of each round: two threads, released together, each move the same new item from
    OPEN to its own name on condition that it is still OPEN."""
    start, done = threading.Barrier(3), threading.Barrier(3)
    won = [False, False]
    refused: list[str] = []
    key: dict[str, Any] = {}
    stop = threading.Event()

    def contender(index: int) -> None:
        while True:
            start.wait()
            if stop.is_set():
                return
            status, answer = dynamodb(
                "UpdateItem",
                {
                    "TableName": table,
                    "Key": key,
                    "UpdateExpression": "SET #s = :mine",
                    "ConditionExpression": "#s = :open",
                    "ExpressionAttributeNames": {"#s": "state"},
                    "ExpressionAttributeValues": {":mine": {"S": f"won by {index}"}, ":open": {"S": "OPEN"}},
                },
            )
            won[index] = status == 200
            if status != 200:
                refused.append(str(answer.get("__type", "")).rsplit("#", 1)[-1])
            done.wait()

    threads = [threading.Thread(target=contender, args=(index,), daemon=True) for index in (0, 1)]
    for thread in threads:
        thread.start()
    winners: list[int] = []
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    try:
        for round_ in range(rounds):
            key.clear()
            key["pk"] = {"S": f"{prefix}-{round_}"}
            backend.put_item(table, {**key, "state": {"S": "OPEN"}})  # set up between races, nothing racing
            start.wait()
            done.wait()
            winners.append(sum(won))
            if stop_at_first_double and winners[-1] > 1:
                break
    finally:
        stop.set()
        start.wait()
        for thread in threads:
            thread.join()
    assert set(refused) <= {"ConditionalCheckFailedException"}, set(refused)
    return winners


def test_two_racing_conditional_updates_have_exactly_one_winner_every_time(table):
    winners = race(table, RACES, "locked")
    assert len(winners) == RACES
    assert [count for count in winners if count != 1] == []


def test_without_the_lock_both_updates_can_win(table, monkeypatch):
    # moto's own request handling: within as many races, both updates succeed at least once.
    locked: Callable[..., Any] = DynamoHandler.call_action
    monkeypatch.setattr(DynamoHandler, "call_action", locked.__wrapped__)  # type: ignore[attr-defined]
    # Threads switch far more often than by default, so the window moto leaves open is hit in a few
    # races whatever the machine's load (without it, a busy machine may go 1,000 races without one).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        winners = race(table, RACES, "unlocked", stop_at_first_double=True)
    finally:
        sys.setswitchinterval(interval)
    assert winners[-1] == 2, f"no double win in {len(winners)} races"
