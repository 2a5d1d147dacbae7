"""The local HTTP API gateway over real HTTP on 127.0.0.1: payload format 2.0 events and responses."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from local.webhook_gateway import MAX_PAYLOAD_BYTES, WebhookGateway


class Recorder:
    """A function that records its events and answers what it is told to."""

    def __init__(self, answer: Any = None, fail: bool = False) -> None:
        self.events: list[dict[str, Any]] = []
        self.answer = answer
        self.fail = fail

    def invoke(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        if self.fail:
            raise RuntimeError("the function crashed")
        return self.answer


@pytest.fixture
def gateway() -> Iterator[WebhookGateway]:
    server = WebhookGateway(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as http:
        yield http


def test_a_post_becomes_a_format_2_event(gateway, client):
    function = Recorder({"statusCode": 202, "headers": {"x-job": "j1"}, "body": "ok"})
    gateway.route("POST", "/webhooks/runware", function)
    reply = client.post(
        f"{gateway.url}/webhooks/runware?token=a%2Bb&x=1&x=2",
        content=b'{"data": []}',
        headers={"Content-Type": "application/json", "X-Trace": "t"},
    )
    assert (reply.status_code, reply.text, reply.headers["x-job"]) == (202, "ok", "j1")
    [event] = function.events
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /webhooks/runware"
    assert (event["rawPath"], event["rawQueryString"]) == ("/webhooks/runware", "token=a%2Bb&x=1&x=2")
    assert event["queryStringParameters"] == {"token": "a+b", "x": "1,2"}
    assert event["headers"]["content-type"] == "application/json"
    assert event["headers"]["x-trace"] == "t"
    assert all(name == name.lower() for name in event["headers"])
    assert (event["body"], event["isBase64Encoded"]) == ('{"data": []}', False)
    http = event["requestContext"]["http"]
    assert (http["method"], http["path"], http["sourceIp"]) == ("POST", "/webhooks/runware", "127.0.0.1")
    assert event["requestContext"]["stage"] == "$default"


def test_a_binary_body_arrives_base64_encoded_and_a_plain_return_value_is_a_200_json_body(gateway, client):
    function = Recorder({"received": True})
    gateway.route("PUT", "/blob", function)
    reply = client.put(f"{gateway.url}/blob", content=b"\xff\xfe\x00")
    assert reply.status_code == 200
    assert reply.json() == {"received": True}
    [event] = function.events
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe\x00"
    assert "queryStringParameters" not in event


def test_a_base64_response_is_decoded_and_no_content_type_is_invented(gateway, client):
    gateway.route(
        "GET",
        "/raw",
        Recorder({"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True}),
    )
    reply = client.get(f"{gateway.url}/raw")
    assert reply.content == b"\x00\x01"
    assert "content-type" not in reply.headers


def test_unknown_routes_crashes_and_oversized_bodies(gateway, client):
    gateway.route("POST", "/crash", Recorder(fail=True))
    assert client.post(f"{gateway.url}/nowhere").status_code == 404
    assert client.get(f"{gateway.url}/crash").status_code == 404, "routes are per method"
    crashed = client.post(f"{gateway.url}/crash", content=b"{}")
    assert (crashed.status_code, crashed.json()) == (500, {"message": "Internal Server Error"})
    oversized = client.post(f"{gateway.url}/crash", content=b"x" * (MAX_PAYLOAD_BYTES + 1))
    assert oversized.status_code == 413
    assert json.loads(oversized.content) == {"message": "Request Entity Too Large"}
    assert gateway.requests == 4
