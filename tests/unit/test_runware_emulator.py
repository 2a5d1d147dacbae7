"""The Runware emulator over real HTTP on 127.0.0.1: API surface, image work and every fault knob.

A small loopback server (``Peer``) plays the other side: it serves input images like a presigned
S3 GET, takes the output PUT like a presigned S3 PUT, and receives webhooks.
"""

from __future__ import annotations

import base64
import io
import json
import os
import selectors
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageStat

from local.runware_emulator import (
    MODEL_ID,
    FaultConfig,
    RunwareEmulator,
    build_arg_parser,
    encode_image,
    fault_cli_flag,
    fault_env_var,
    parse_command_line,
    target_dimensions,
    upscale_image,
)
from local.runware_emulator.rate_limit import TokenBucket, retry_after_header

REPO_ROOT = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": "Bearer test-key"}
ERROR_KEYS = {"code", "message", "parameter", "taskType", "taskUUID", "documentation"}
FAST_RETRY = 0.02
MISSING = object()


# --------------------------------------------------------------------------------------------
# The other side of the wire


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    def json(self) -> Any:
        return json.loads(self.body)


class Peer:
    """Loopback stand-in for S3 (GET inputs, PUT outputs) and for the webhook receiver."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.received: list[Received] = []
        # path -> function choosing the status code for a request to that path
        self.responders: dict[str, Callable[[Received], int]] = {}
        self._condition = threading.Condition()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                peer._answer(self, "GET")

            def do_PUT(self) -> None:
                peer._answer(self, "PUT")

            def do_POST(self) -> None:
                peer._answer(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, target: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{target}"

    def _answer(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        received = Received(
            method, handler.path, {k.lower(): v for k, v in handler.headers.items()}, handler.rfile.read(length)
        )
        responder = self.responders.get(received.path)
        payload = b""
        if responder is not None:
            status = responder(received)
        elif method == "GET":
            payload = self.files.get(received.path, b"")
            status = 200 if payload else 404
        else:
            status = 200
        with self._condition:
            self.received.append(received)
            self._condition.notify_all()
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def requests_to(self, method: str, path: str) -> list[Received]:
        with self._condition:
            return [item for item in self.received if item.method == method and item.path == path]

    def wait_for(self, method: str, path: str, count: int = 1, timeout: float = 5.0) -> list[Received]:
        with self._condition:
            self._condition.wait_for(lambda: len(self.requests_to(method, path)) >= count, timeout)
        return self.requests_to(method, path)


def statuses(*codes: int) -> Callable[[Received], int]:
    """A responder answering with these codes in turn, then repeating the last one."""
    remaining = list(codes)

    def respond(received: Received) -> int:
        return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return respond


# --------------------------------------------------------------------------------------------
# Fixtures and helpers


def fast_faults(**knobs: Any) -> FaultConfig:
    return FaultConfig(webhook_retry_base_seconds=FAST_RETRY, **knobs)


@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[RunwareEmulator]:
    with RunwareEmulator(seed=1234, faults=fast_faults()) as emu:
        yield emu


@pytest.fixture
def emulator(shared_emulator: RunwareEmulator) -> RunwareEmulator:
    """The module's emulator, reset to default knobs: the admin reset is what isolates tests."""
    shared_emulator.faults = fast_faults()
    shared_emulator.reset()
    return shared_emulator


@pytest.fixture
def peer() -> Iterator[Peer]:
    server = Peer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=10) as http:
        yield http


@pytest.fixture
def photo(peer: Peer) -> str:
    """A 400x300 PNG served by the peer; returns its URL."""
    peer.files["/inputs/photo.png"] = png_bytes()
    return peer.url("/inputs/photo.png")


def textured_image(size: tuple[int, int] = (400, 300), mode: str = "RGB") -> Image.Image:
    width, height = size
    gradient = Image.linear_gradient("L").resize(size)
    radial = Image.radial_gradient("L").resize(size)
    image = Image.merge("RGB", (gradient, radial, gradient.transpose(Image.Transpose.ROTATE_180)))
    draw = ImageDraw.Draw(image)
    for left in range(0, width, 40):
        draw.rectangle((left, height // 3, left + 15, height // 3 + 60), fill=(240, 30, 30))
    return image.convert(mode)


def png_bytes(size: tuple[int, int] = (400, 300)) -> bytes:
    buffer = io.BytesIO()
    textured_image(size).save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def upscale_task(image: str, **fields: Any) -> dict[str, Any]:
    task = {
        "taskType": "upscale",
        "taskUUID": str(uuid.uuid4()),
        "model": MODEL_ID,
        "inputs": {"image": image},
        "targetMegapixels": 1,
    }
    task.update(fields)
    return task


def call(
    client: httpx.Client, emu: RunwareEmulator, tasks: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    return client.post(emu.url, json=tasks, headers=AUTH if headers is None else headers)


def poll(client: httpx.Client, emu: RunwareEmulator, task_uuid: str) -> httpx.Response:
    return call(client, emu, [{"taskType": "getResponse", "taskUUID": task_uuid}])


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def assert_error_shape(error: dict[str, Any]) -> None:
    assert set(error) >= ERROR_KEYS
    assert error["documentation"].startswith("https://runware.ai/docs/")


def set_path(task: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    container = task
    for name in parents:
        container = container.setdefault(name, {})
    if value is MISSING:
        container.pop(last, None)
    else:
        container[last] = value
    return task


# --------------------------------------------------------------------------------------------
# Authentication and request shape


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwYXNz"}])
def test_a_missing_or_empty_key_is_refused_with_401(emulator, client, photo, headers):
    task = upscale_task(photo)
    response = call(client, emulator, [task], headers=headers)
    assert response.status_code == 401
    [error] = response.json()["errors"]
    assert_error_shape(error)
    assert error["code"] == "invalidApiKey"
    assert error["taskUUID"] == task["taskUUID"]
    assert emulator.tasks == {}


def test_any_non_empty_key_is_accepted(emulator, client, photo):
    response = call(client, emulator, [upscale_task(photo)], headers={"Authorization": "Bearer x"})
    assert response.status_code == 200


def test_the_api_also_answers_at_the_root_path(emulator, client, photo):
    response = client.post(f"{emulator.base_url}/", json=[upscale_task(photo)], headers=AUTH)
    assert response.status_code == 200
    assert client.get(emulator.url).status_code == 405


@pytest.mark.parametrize("body", [b'{"taskType": "upscale"}', b"not json", b"[]", b'"text"', b"[1]"])
def test_the_body_must_be_a_non_empty_array_of_task_objects(emulator, client, body):
    response = client.post(emulator.url, content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert_error_shape(error)
    assert error["code"] == "invalidRequestBody"


def test_requests_are_recorded_in_order(emulator, client, photo):
    first, second = upscale_task(photo), upscale_task(photo)
    call(client, emulator, [first])
    client.post(emulator.url, content=b"garbage", headers=AUTH)
    call(client, emulator, [second])
    assert emulator.requests == [[first], "garbage", [second]]


# --------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("field_path", "value", "code"),
    [
        ("taskUUID", str(uuid.uuid1()), "invalidTaskUUID"),
        ("taskUUID", "not-a-uuid", "invalidTaskUUID"),
        ("taskUUID", MISSING, "invalidTaskUUID"),
        ("model", "runware:100@1", "invalidModel"),
        ("inputs", "http://127.0.0.1/x.png", "invalidInputs"),
        ("inputs.image", "", "invalidImage"),
        ("inputs.image", MISSING, "invalidImage"),
        ("targetMegapixels", 0, "invalidTargetMegapixels"),
        ("targetMegapixels", 9, "invalidTargetMegapixels"),
        ("targetMegapixels", 2.0, "invalidTargetMegapixels"),
        ("targetMegapixels", "2", "invalidTargetMegapixels"),
        ("targetMegapixels", True, "invalidTargetMegapixels"),
        ("targetMegapixels", MISSING, "invalidTargetMegapixels"),
        ("settings", "on", "invalidSettings"),
        ("settings.enhanceDetails", "yes", "invalidEnhanceDetails"),
        ("settings.realism", 1, "invalidRealism"),
        ("outputType", "url", "invalidOutputType"),
        ("outputFormat", "GIF", "invalidOutputFormat"),
        ("outputQuality", 19, "invalidOutputQuality"),
        ("outputQuality", 100, "invalidOutputQuality"),
        ("outputQuality", 50.5, "invalidOutputQuality"),
        ("deliveryMethod", "webhook", "invalidDeliveryMethod"),
        ("webhookURL", "ftp://127.0.0.1/hook", "invalidWebhookURL"),
        ("webhookURL", "not a url", "invalidWebhookURL"),
        ("uploadEndpoint", "/relative/path", "invalidUploadEndpoint"),
        ("ttl", 59, "invalidTtl"),
        ("ttl", "3600", "invalidTtl"),
        ("includeCost", "true", "invalidIncludeCost"),
        ("taskType", "imageInference", "invalidTaskType"),
    ],
)
def test_each_invalid_field_is_named_in_a_400(emulator, client, photo, field_path, value, code):
    task = set_path(upscale_task(photo), field_path, value)
    response = call(client, emulator, [task])
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert_error_shape(error)
    assert error["code"] == code
    assert error["parameter"] == field_path
    assert error["taskUUID"] == task.get("taskUUID")
    assert error["taskType"] == task["taskType"]
    assert emulator.tasks == {}


def test_boundary_values_are_accepted(emulator, client, photo):
    tasks = [
        upscale_task(photo, outputQuality=20, ttl=60, outputFormat="JPG"),
        upscale_task(photo, outputQuality=99, settings={"enhanceDetails": False, "realism": True}),
        upscale_task(photo, targetMegapixels=8, outputType="base64Data", includeCost=True, settings=None),
    ]
    response = call(client, emulator, tasks)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body
    assert [item["taskUUID"] for item in body["data"]] == [task["taskUUID"] for task in tasks]
    largest = decoded(base64.b64decode(body["data"][2]["imageBase64Data"]))
    assert abs(largest.width * largest.height - 8_000_000) <= 0.02 * 8_000_000


# --------------------------------------------------------------------------------------------
# Sync processing


@pytest.mark.parametrize(
    ("output_format", "output_type", "pillow_format"),
    [("PNG", "URL", "PNG"), ("JPG", "base64Data", "JPEG"), ("WEBP", "dataURI", "WEBP")],
)
def test_sync_upscale_reaches_the_target_megapixels(emulator, client, photo, output_format, output_type, pillow_format):
    task = upscale_task(photo, targetMegapixels=2, outputFormat=output_format, outputType=output_type)
    response = call(client, emulator, [task])
    assert response.status_code == 200, response.text
    [result] = response.json()["data"]
    assert result["taskType"] == "upscale"
    assert result["taskUUID"] == task["taskUUID"]
    assert uuid.UUID(result["imageUUID"]).version == 4
    assert "cost" not in result
    if output_type == "URL":
        assert result["imageURL"].startswith(f"http://127.0.0.1:{emulator.port}/images/")
        served = client.get(result["imageURL"])
        assert served.status_code == 200
        assert served.headers["content-type"] == f"image/{pillow_format.lower()}"
        data = served.content
    elif output_type == "dataURI":
        header, _, encoded = result["imageDataURI"].partition(",")
        assert header == f"data:image/{pillow_format.lower()};base64"
        data = base64.b64decode(encoded)
    else:
        data = base64.b64decode(result["imageBase64Data"])
    output = decoded(data)
    assert output.format == pillow_format
    assert abs(output.width * output.height - 2_000_000) <= 0.02 * 2_000_000
    assert output.width / output.height == pytest.approx(400 / 300, rel=0.01)
    record = emulator.tasks[task["taskUUID"]]
    assert (record.status, record.output_width, record.output_height) == ("success", output.width, output.height)


def test_inputs_may_be_data_uris_raw_base64_or_an_earlier_image_uuid(emulator, client):
    raw = png_bytes((200, 100))
    first = upscale_task(data_uri(raw))
    second = upscale_task(base64.b64encode(raw).decode())
    response = call(client, emulator, [first, second])
    assert response.status_code == 200, response.text
    image_uuid = response.json()["data"][0]["imageUUID"]
    chained = call(client, emulator, [upscale_task(image_uuid, targetMegapixels=2)])
    assert chained.status_code == 200, chained.text


def test_include_cost_adds_an_illustrative_cost(emulator, client, photo):
    response = call(client, emulator, [upscale_task(photo, targetMegapixels=2, includeCost=True)])
    [result] = response.json()["data"]
    assert result["cost"] == pytest.approx(0.0025 * 2, rel=0.02)


@pytest.mark.parametrize(
    ("image", "hint"),
    [
        ("missing", "HTTP 404"),
        (data_uri(b"definitely not an image"), "decodable"),
        ("!!! not base64 !!!", "base64"),
        ("ftp://127.0.0.1/photo.png", "scheme"),
        (str(uuid.uuid4()), "unknown image UUID"),
    ],
)
def test_an_unusable_input_fails_the_task_with_invalid_image(emulator, client, peer, image, hint):
    source = peer.url("/inputs/missing.png") if image == "missing" else image
    task = upscale_task(source)
    response = call(client, emulator, [task])
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert_error_shape(error)
    assert (error["code"], error["parameter"], error["taskUUID"]) == ("invalidImage", "inputs.image", task["taskUUID"])
    assert hint in error["message"]


# --------------------------------------------------------------------------------------------
# Async delivery


def async_task(peer: Peer, photo: str, **fields: Any) -> dict[str, Any]:
    return upscale_task(
        photo,
        deliveryMethod="async",
        uploadEndpoint=peer.url("/outputs/photo.jpg?X-Amz-Signature=secret-signature"),
        webhookURL=peer.url("/hooks/runware?token=job-token"),
        **fields,
    )


def test_async_acknowledges_then_puts_the_bytes_then_posts_an_envelope(emulator, client, peer, photo):
    task = async_task(peer, photo)
    response = call(client, emulator, [task])
    assert response.status_code == 200
    assert response.json() == {"data": [{"taskType": "upscale", "taskUUID": task["taskUUID"]}]}
    assert emulator.wait_idle(5)

    [upload] = peer.requests_to("PUT", "/outputs/photo.jpg")
    assert upload.target.endswith("?X-Amz-Signature=secret-signature")
    assert "content-type" not in upload.headers
    output = decoded(upload.body)
    assert output.format == "JPEG"
    assert abs(output.width * output.height - 1_000_000) <= 0.02 * 1_000_000

    [webhook] = peer.requests_to("POST", "/hooks/runware")
    assert webhook.target.endswith("?token=job-token")
    assert webhook.headers["content-type"] == "application/json"
    [result] = webhook.json()["data"]
    assert set(webhook.json()) == {"data"}
    assert result["taskUUID"] == task["taskUUID"]
    assert client.get(result["imageURL"]).content == upload.body
    assert upload.at <= webhook.at
    stats = emulator.stats()
    assert (stats["uploads"], stats["webhook_attempts"], stats["webhook_deliveries"]) == (1, 1, 1)


def test_the_bare_webhook_shape_posts_the_result_alone(emulator, client, peer, photo):
    emulator.faults = fast_faults(webhook_shape="bare")
    task = async_task(peer, photo)
    call(client, emulator, [task])
    assert emulator.wait_idle(5)
    [webhook] = peer.requests_to("POST", "/hooks/runware")
    body = webhook.json()
    assert body["taskUUID"] == task["taskUUID"]
    assert body["imageUUID"] == emulator.tasks[task["taskUUID"]].result["imageUUID"]
    assert "data" not in body


def test_upload_content_type_knob_sends_the_header(emulator, client, peer, photo):
    emulator.faults = fast_faults(upload_content_type="image/jpeg")
    call(client, emulator, [async_task(peer, photo)])
    assert emulator.wait_idle(5)
    [upload] = peer.requests_to("PUT", "/outputs/photo.jpg")
    assert upload.headers["content-type"] == "image/jpeg"


def test_get_response_reports_processing_then_success(emulator, client, peer, photo):
    emulator.faults = fast_faults(latency_seconds=0.4)
    task = async_task(peer, photo)
    call(client, emulator, [task])
    pending = poll(client, emulator, task["taskUUID"])
    assert pending.status_code == 200
    assert pending.json() == {"data": [{"taskType": "upscale", "taskUUID": task["taskUUID"], "status": "processing"}]}
    assert not emulator.wait_idle(0.05)

    assert emulator.wait_idle(5)
    [done] = poll(client, emulator, task["taskUUID"]).json()["data"]
    result = emulator.tasks[task["taskUUID"]].result
    assert done == {**result, "status": "success"}

    details = call(client, emulator, [{"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]}])
    [item] = details.json()["data"]
    assert item["request"] == [task]
    assert item["response"] == {"data": [result]}


def test_task_failure_knob_fails_async_tasks_after_acceptance(emulator, client, peer, photo):
    emulator.faults = fast_faults(task_failure_rate=1.0)
    task = async_task(peer, photo)
    assert call(client, emulator, [task]).status_code == 200
    assert emulator.wait_idle(5)

    [webhook] = peer.requests_to("POST", "/hooks/runware")
    [error] = webhook.json()["errors"]
    assert_error_shape(error)
    assert (error["code"], error["taskUUID"], error["taskType"]) == ("timeoutProvider", task["taskUUID"], "upscale")
    assert peer.requests_to("PUT", "/outputs/photo.jpg") == []

    polled = poll(client, emulator, task["taskUUID"])
    assert polled.status_code == 200
    [reported] = polled.json()["errors"]
    assert (reported["code"], reported["status"]) == ("timeoutProvider", "error")

    sync = call(client, emulator, [upscale_task(photo)])
    assert sync.status_code == 200, "the failure knob only applies to async tasks"


def test_a_failed_upload_fails_the_task_without_leaking_the_signature(emulator, client, peer, photo):
    peer.responders["/outputs/photo.jpg"] = statuses(403)
    task = async_task(peer, photo)
    call(client, emulator, [task])
    assert emulator.wait_idle(5)
    [webhook] = peer.requests_to("POST", "/hooks/runware")
    [error] = webhook.json()["errors"]
    assert (error["code"], error["parameter"]) == ("uploadFailed", "uploadEndpoint")
    assert "HTTP 403" in error["message"]
    assert "secret-signature" not in error["message"]
    assert poll(client, emulator, task["taskUUID"]).json()["errors"][0]["code"] == "uploadFailed"


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


def test_reject_402_refuses_every_task_of_an_upscale_request(emulator, client, photo):
    emulator.faults = fast_faults(reject_rate=1.0, reject_status=402)
    tasks = [upscale_task(photo), upscale_task(photo)]
    refused = call(client, emulator, tasks)
    assert refused.status_code == 402
    errors = refused.json()["errors"]
    assert [(e["code"], e["taskUUID"]) for e in errors] == [("insufficientCredits", t["taskUUID"]) for t in tasks]
    polled = poll(client, emulator, tasks[0]["taskUUID"])
    assert polled.status_code == 404, "polls are not refused, and the refused task was never kept"

    emulator.faults = fast_faults()
    assert call(client, emulator, tasks).status_code == 200


@pytest.mark.parametrize(("status", "code"), [(503, "serviceUnavailable"), (500, "internalServerError")])
def test_rate_5xx_answers_with_the_configured_status(emulator, client, photo, status, code):
    emulator.faults = fast_faults(rate_5xx=1.0, status_5xx=status)
    response = call(client, emulator, [upscale_task(photo)])
    assert response.status_code == status
    assert response.json()["errors"][0]["code"] == code
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
# Webhook faults


def test_a_dropped_webhook_is_never_sent_but_the_result_can_be_polled(emulator, client, peer, photo):
    emulator.faults = fast_faults(drop_webhook_rate=1.0)
    task = async_task(peer, photo)
    call(client, emulator, [task])
    assert emulator.wait_idle(5)
    assert peer.requests_to("POST", "/hooks/runware") == []
    assert len(peer.requests_to("PUT", "/outputs/photo.jpg")) == 1
    assert poll(client, emulator, task["taskUUID"]).json()["data"][0]["status"] == "success"
    assert emulator.stats()["webhooks_dropped"] == 1


def test_a_duplicated_webhook_is_delivered_twice(emulator, client, peer, photo):
    emulator.faults = fast_faults(duplicate_webhook_rate=1.0)
    call(client, emulator, [async_task(peer, photo)])
    assert emulator.wait_idle(5)
    first, second = peer.requests_to("POST", "/hooks/runware")
    assert first.body == second.body
    assert emulator.stats()["webhook_deliveries"] == 2


def test_a_webhook_is_retried_with_growing_delays_until_the_receiver_accepts(emulator, client, peer, photo):
    base = 0.05
    emulator.faults = FaultConfig(webhook_retry_base_seconds=base)
    peer.responders["/hooks/runware"] = statuses(500, 503, 200)
    task = async_task(peer, photo)
    call(client, emulator, [task])
    assert emulator.wait_idle(5)
    attempts = peer.requests_to("POST", "/hooks/runware")
    assert len(attempts) == 3
    assert attempts[1].at - attempts[0].at >= base
    assert attempts[2].at - attempts[1].at >= 2 * base
    stats = emulator.stats()
    assert (stats["webhook_attempts"], stats["webhook_failures"], stats["webhook_deliveries"]) == (3, 2, 1)
    assert emulator.tasks[task["taskUUID"]].webhook_attempts == 3


def test_a_webhook_is_abandoned_after_the_maximum_attempts(emulator, client, peer, photo):
    emulator.faults = fast_faults(webhook_max_attempts=3)
    peer.responders["/hooks/runware"] = statuses(500)
    call(client, emulator, [async_task(peer, photo)])
    assert emulator.wait_idle(5)
    assert len(peer.requests_to("POST", "/hooks/runware")) == 3
    stats = emulator.stats()
    assert (stats["webhooks_abandoned"], stats["webhook_deliveries"]) == (1, 0)


def test_webhook_before_upload_posts_first_and_the_retry_finds_the_output(emulator, client, peer, photo):
    emulator.faults = fast_faults(webhook_before_upload=True)

    def accept_once_output_exists(received: Received) -> int:
        return 200 if peer.requests_to("PUT", "/outputs/photo.jpg") else 409

    peer.responders["/hooks/runware"] = accept_once_output_exists
    call(client, emulator, [async_task(peer, photo)])
    assert emulator.wait_idle(5)
    order = [item.method for item in peer.received if item.method != "GET"]
    assert order == ["POST", "PUT", "POST"]
    early = peer.requests_to("POST", "/hooks/runware")[0].json()
    assert "imageUUID" in early["data"][0]


def test_webhook_delay_holds_back_the_first_attempt(emulator, client, peer, photo):
    emulator.faults = fast_faults(webhook_delay_seconds=0.3)
    call(client, emulator, [async_task(peer, photo)])
    assert emulator.wait_idle(5)
    [upload] = peer.requests_to("PUT", "/outputs/photo.jpg")
    [webhook] = peer.requests_to("POST", "/hooks/runware")
    assert webhook.at - upload.at >= 0.3


# --------------------------------------------------------------------------------------------
# Task identity and mixed requests


def test_a_known_task_uuid_is_refused_as_duplicate(emulator, client, photo):
    task = upscale_task(photo)
    assert call(client, emulator, [task]).status_code == 200
    again = call(client, emulator, [{**task, "taskUUID": task["taskUUID"].upper()}])
    assert again.status_code == 400
    [error] = again.json()["errors"]
    assert (error["code"], error["parameter"]) == ("duplicateTaskUUID", "taskUUID")

    twin = upscale_task(photo)
    both = call(client, emulator, [twin, twin])
    assert both.status_code == 200
    assert [item["taskUUID"] for item in both.json()["data"]] == [twin["taskUUID"]]
    assert [item["code"] for item in both.json()["errors"]] == ["duplicateTaskUUID"]


def test_valid_and_invalid_tasks_in_one_request_answer_200_with_both(emulator, client, photo):
    valid, invalid = upscale_task(photo), upscale_task(photo, targetMegapixels=9)
    response = call(client, emulator, [invalid, valid])
    assert response.status_code == 200
    body = response.json()
    assert [item["taskUUID"] for item in body["data"]] == [valid["taskUUID"]]
    [error] = body["errors"]
    assert (error["taskUUID"], error["parameter"]) == (invalid["taskUUID"], "targetMegapixels")


def test_polling_an_unknown_task(emulator, client, photo):
    unknown = str(uuid.uuid4())
    alone = poll(client, emulator, unknown)
    assert alone.status_code == 404
    [error] = alone.json()["errors"]
    assert (error["code"], error["taskUUID"], error["taskType"]) == ("taskNotFound", unknown, "getResponse")

    known = upscale_task(photo)
    call(client, emulator, [known])
    mixed = call(
        client,
        emulator,
        [{"taskType": "getResponse", "taskUUID": known["taskUUID"]}, {"taskType": "getResponse", "taskUUID": unknown}],
    )
    assert mixed.status_code == 200
    assert mixed.json()["data"][0]["status"] == "success"
    assert mixed.json()["errors"][0]["code"] == "taskNotFound"


# --------------------------------------------------------------------------------------------
# Served images


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_image_urls_are_served_until_their_ttl_passes(photo, client):
    clock = FakeClock()
    with RunwareEmulator(clock=clock, default_image_ttl_seconds=120) as emu:
        with_ttl = call(client, emu, [upscale_task(photo, ttl=60)]).json()["data"][0]["imageURL"]
        default_ttl = call(client, emu, [upscale_task(photo)]).json()["data"][0]["imageURL"]
        assert client.get(with_ttl).status_code == 200
        clock.now += 59
        assert client.get(with_ttl).status_code == 200
        clock.now += 2
        assert client.get(with_ttl).status_code == 404
        assert client.get(default_ttl).status_code == 200
        clock.now += 60
        assert client.get(default_ttl).status_code == 404


def test_an_image_is_only_served_under_its_own_extension(emulator, client, photo):
    url = call(client, emulator, [upscale_task(photo, outputFormat="PNG")]).json()["data"][0]["imageURL"]
    assert client.get(url).status_code == 200
    assert client.get(url.replace(".png", ".jpg")).status_code == 404


# --------------------------------------------------------------------------------------------
# Admin API, configuration and lifecycle


def test_admin_endpoints_replace_faults_report_stats_and_reset(emulator, client, photo):
    admin = f"{emulator.base_url}/_emulator"
    assert client.put(f"{admin}/faults", json={"burst_429": 1, "latency_seconds": 0}).status_code == 200
    assert client.get(f"{admin}/faults").json()["burst_429"] == 1
    assert call(client, emulator, [upscale_task(photo)]).status_code == 429
    assert call(client, emulator, [upscale_task(photo)]).status_code == 200

    stats = client.get(f"{admin}/stats").json()
    assert stats["requests"] == 2
    assert stats["responses_by_status"] == {"429": 1, "200": 1}
    assert stats["tasks"] == {"processing": 0, "success": 1, "error": 0}

    for bad, named in (
        ({"reject_status": 418}, "reject_status"),
        ({"nope": 1}, "nope"),
        ({"burst_429": True}, "burst_429"),
        ([1], "JSON object"),
    ):
        refused = client.put(f"{admin}/faults", json=bad)
        assert refused.status_code == 400
        assert named in refused.json()["message"], "the admin API is the emulator's own: no Runware error codes"

    assert client.post(f"{admin}/reset").status_code == 200
    assert emulator.tasks == {}
    assert emulator.requests == []
    assert emulator.stats()["requests"] == 0


def test_fault_config_checks_its_values():
    with pytest.raises(ValueError, match="reject_status"):
        FaultConfig(reject_status=418)
    with pytest.raises(ValueError, match="drop_webhook_rate"):
        FaultConfig(drop_webhook_rate=1.5)
    with pytest.raises(ValueError, match="webhook_shape"):
        FaultConfig(webhook_shape="xml")
    assert FaultConfig.from_mapping({"latency_seconds": 1}).latency_seconds == 1.0


def test_command_line_flags_win_over_environment_variables():
    environ = {
        "RUNWARE_EMULATOR_LATENCY_SECONDS": "0.5",
        "RUNWARE_EMULATOR_WEBHOOK_BEFORE_UPLOAD": "true",
        "RUNWARE_EMULATOR_BURST_429": "3",
    }
    command = parse_command_line(
        ["--port", "9999", "--burst-429", "1", "--upload-content-type", "image/jpeg", "--seed", "5"], environ
    )
    assert (command.port, command.seed) == (9999, 5)
    assert command.faults == FaultConfig(
        latency_seconds=0.5, webhook_before_upload=True, burst_429=1, upload_content_type="image/jpeg"
    )


def test_every_fault_knob_has_a_flag_and_an_environment_variable():
    help_text = build_arg_parser().format_help()
    for name in FaultConfig.__dataclass_fields__:
        assert fault_cli_flag(name) in help_text
        assert fault_env_var(name) in help_text


def test_bad_environment_values_are_usage_errors():
    with pytest.raises(SystemExit):
        parse_command_line([], {"RUNWARE_EMULATOR_REJECT_RATE": "often"})
    with pytest.raises(SystemExit):
        parse_command_line(["--host", "0.0.0.0"], {})


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com"])
def test_only_loopback_addresses_can_be_bound(host):
    with pytest.raises(ValueError, match="loopback"):
        RunwareEmulator(host=host)


def test_the_module_runs_as_a_program():
    process = subprocess.Popen(
        [sys.executable, "-m", "local.runware_emulator", "--port", "0", "--burst-429", "1", "--log-level", "WARNING"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=15), "the emulator printed no address"
        line = process.stdout.readline()
        assert "not the AI model" in line
        url = line.split()[-1]
        with httpx.Client(trust_env=False, timeout=5) as http:
            assert http.post(url, json=[], headers=AUTH).status_code == 429
            assert http.post(url, json=[], headers=AUTH).status_code == 400
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0, process.stderr.read()


# --------------------------------------------------------------------------------------------
# Image work


@pytest.mark.parametrize(
    ("size", "megapixels"),
    [((400, 300), 2), ((1, 1), 8), ((3000, 10), 1), ((1000, 1000), 1), ((5000, 4000), 4), ((123, 457), 8)],
)
def test_target_dimensions_land_within_two_percent_and_keep_the_aspect(size, megapixels):
    width, height = target_dimensions(*size, megapixels)
    assert abs(width * height - megapixels * 1_000_000) <= 0.02 * megapixels * 1_000_000
    assert width / height == pytest.approx(size[0] / size[1], rel=0.02)


def test_targets_above_eight_megapixels_are_capped():
    assert target_dimensions(400, 300, 12) == target_dimensions(400, 300, 8)


def test_enhance_details_sharpens_and_realism_boosts_colour_and_contrast():
    source = textured_image((160, 120))
    plain = upscale_image(source, 1)
    sharpened = upscale_image(source, 1, enhance_details=True)
    realistic = upscale_image(source, 1, realism=True)
    assert plain.size == sharpened.size == realistic.size

    def edge_energy(image: Image.Image) -> float:
        return ImageStat.Stat(image.convert("L").filter(ImageFilter.FIND_EDGES)).mean[0]

    def saturation(image: Image.Image) -> float:
        return ImageStat.Stat(image.convert("HSV")).mean[1]

    def contrast(image: Image.Image) -> float:
        return ImageStat.Stat(image.convert("L")).stddev[0]

    assert edge_energy(sharpened) > edge_energy(plain)
    assert saturation(realistic) > saturation(plain)
    # On a grey image the colour boost changes nothing, so only the contrast step can show.
    grey = textured_image((160, 120)).convert("L").convert("RGB")
    assert contrast(upscale_image(grey, 1, realism=True)) > contrast(upscale_image(grey, 1))


def test_the_filters_are_exactly_the_documented_recipes():
    source = textured_image((160, 120))
    plain = upscale_image(source, 1)
    documented_sharpening = plain.filter(ImageFilter.UnsharpMask(radius=2, percent=120, threshold=3))
    documented_realism = ImageEnhance.Contrast(ImageEnhance.Color(plain).enhance(1.08)).enhance(1.04)
    assert upscale_image(source, 1, enhance_details=True).tobytes() == documented_sharpening.tobytes()
    assert upscale_image(source, 1, realism=True).tobytes() == documented_realism.tobytes()


def test_jpg_flattens_transparency_on_white_while_png_and_webp_keep_it():
    source = textured_image((80, 60), mode="RGBA")
    source.paste((0, 0, 0, 0), (0, 0, 80, 20))
    upscaled = upscale_image(source, 1)
    as_jpg = decoded(encode_image(upscaled, "JPG", 95))
    assert as_jpg.mode == "RGB"
    assert min(as_jpg.getpixel((5, 5))) >= 245
    for output_format in ("PNG", "WEBP"):
        kept = decoded(encode_image(upscaled, output_format, 95))
        assert kept.mode == "RGBA"
        assert kept.getpixel((5, 5))[3] == 0
