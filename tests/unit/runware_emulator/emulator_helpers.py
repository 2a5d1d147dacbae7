"""The other side of the wire for the emulator tests, and small builders of tasks and images."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from PIL import Image, ImageDraw

from local.runware_emulator import (
    MODEL_ID,
    FaultConfig,
    RunwareEmulator,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
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


def fast_faults(**knobs: Any) -> FaultConfig:
    return FaultConfig(**{"webhook_retry_base_seconds": FAST_RETRY, **knobs})


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
    """Only the documented error fields, code and message always among them."""
    assert set(error) <= ERROR_KEYS
    assert isinstance(error["code"], str) and isinstance(error["message"], str)


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


def async_task(peer: Peer, photo: str, **fields: Any) -> dict[str, Any]:
    delivery = {
        "deliveryMethod": "async",
        "uploadEndpoint": peer.url("/outputs/photo.jpg?X-Amz-Signature=secret-signature"),
        "webhookURL": peer.url("/hooks/runware?token=job-token"),
    }
    return upscale_task(photo, **{**delivery, **fields})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
