"""A local stand-in for API Gateway HTTP API: HTTP requests in, payload format 2.0 events out.

Each route hands the request to a function as the event API Gateway would build, and turns the
function's response (a dict, or a plain value) back into HTTP the way API Gateway does.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

# API Gateway's own limit on request payloads.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024


class Invocable(Protocol):
    def invoke(self, event: dict[str, Any]) -> Any: ...


def http_api_event(method: str, raw_path: str, headers: dict[str, str], body: bytes, source_ip: str) -> dict[str, Any]:
    """The event an HTTP API (payload format 2.0) sends to a Lambda integration."""
    parts = urlsplit(raw_path)
    query: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        # API Gateway joins repeated parameters with commas.
        query[name] = f"{query[name]},{value}" if name in query else value
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {parts.path}",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": {name.lower(): value for name, value in headers.items()},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local-http-api",
            "domainName": headers.get("Host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("User-Agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {parts.path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": text is None,
    }
    if query:
        event["queryStringParameters"] = query
    if body:
        event["body"] = text if text is not None else base64.b64encode(body).decode()
    return event


class WebhookGateway:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._routes: dict[tuple[str, str], Invocable] = {}
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                gateway._handle(self, "POST")

            def do_GET(self) -> None:
                gateway._handle(self, "GET")

            def do_PUT(self) -> None:
                gateway._handle(self, "PUT")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-gateway", daemon=True)
        self.requests = 0

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, method: str, path: str, function: Invocable) -> None:
        self._routes[(method, path)] = function

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        self.requests += 1
        length = int(request.headers.get("Content-Length") or 0)
        if length > MAX_PAYLOAD_BYTES:
            self._reply(request, 413, {"message": "Request Entity Too Large"})
            request.close_connection = True
            return
        body = request.rfile.read(length) if length else b""
        function = self._routes.get((method, urlsplit(request.path).path))
        if function is None:
            self._reply(request, 404, {"message": "Not Found"})
            return
        event = http_api_event(method, request.path, dict(request.headers.items()), body, request.client_address[0])
        try:
            result = function.invoke(event)
        except Exception:
            self._reply(request, 500, {"message": "Internal Server Error"})
            return
        if isinstance(result, dict) and "statusCode" in result:
            payload = result.get("body") or ""
            data = base64.b64decode(payload) if result.get("isBase64Encoded") else str(payload).encode()
            self._send(request, int(result["statusCode"]), data, result.get("headers") or {})
        else:
            # Format 2.0 treats any other return value as a 200 JSON body.
            self._reply(request, 200, result)

    def _reply(self, request: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        self._send(request, status, json.dumps(body).encode(), {"content-type": "application/json"})

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str]) -> None:
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
