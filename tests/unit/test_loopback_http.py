"""local.loopback_http: a WSGI app served on a loopback port from its own thread."""

from __future__ import annotations

import httpx
import pytest
from werkzeug.wrappers import Request, Response

from local.loopback_http import LoopbackServer, wsgi_app


def echo(request: Request) -> Response:
    body = f"{request.method} {request.path} {request.get_data(as_text=True)}"
    return Response(body, status=201 if request.method == "POST" else 200)


def test_a_server_on_port_0_gets_a_free_port_and_answers_through_the_handler():
    server = LoopbackServer("127.0.0.1", 0, wsgi_app(echo), "test-server")
    assert server.host == "127.0.0.1" and server.port > 0
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
            first = client.post("/hook", content=b"payload")
            second = client.get("/again")  # the same keep-alive connection
        assert (first.status_code, first.text) == (201, "POST /hook payload")
        assert (second.status_code, second.text) == (200, "GET /again ")
    finally:
        server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{server.port}/", timeout=1)


def test_a_server_never_started_can_be_stopped():
    server = LoopbackServer("127.0.0.1", 0, wsgi_app(echo), "idle")
    server.stop()
