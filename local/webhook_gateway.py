"""A local stand-in for API Gateway HTTP API: HTTP requests in, payload format 2.0 events out.

Each route hands the request to a function as the event API Gateway would build, and turns the
function's response (a dict, or a plain value) back into HTTP the way API Gateway does.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from local.loopback_http import LoopbackServer, wsgi_app

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
    """Routes (method, path) to functions; anything else answers 404 as API Gateway does."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._routes: dict[tuple[str, str], Invocable] = {}
        self._server = LoopbackServer(host, port, wsgi_app(self._handle), "webhook-gateway")
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}"

    def route(self, method: str, path: str, function: Invocable) -> None:
        self._routes[(method, path)] = function

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def _handle(self, request: Request) -> Response:
        self.requests += 1
        request.max_content_length = MAX_PAYLOAD_BYTES
        try:
            body = request.get_data()
        except RequestEntityTooLarge:
            return _json_response(413, {"message": "Request Entity Too Large"})
        function = self._routes.get((request.method, request.path))
        if function is None:
            return _json_response(404, {"message": "Not Found"})
        # The raw request target, query string as sent (werkzeug keeps it in RAW_URI).
        target = request.environ.get("RAW_URI") or request.full_path
        event = http_api_event(request.method, target, dict(request.headers.items()), body, request.remote_addr or "")
        try:
            result = function.invoke(event)
        except Exception:
            return _json_response(500, {"message": "Internal Server Error"})
        if isinstance(result, dict) and "statusCode" in result:
            payload = result.get("body") or ""
            data = base64.b64decode(payload) if result.get("isBase64Encoded") else str(payload).encode()
            return _raw_response(int(result["statusCode"]), data, result.get("headers") or {})
        # Format 2.0 treats any other return value as a 200 JSON body.
        return _json_response(200, result)


def _json_response(status: int, body: Any) -> Response:
    return _raw_response(status, json.dumps(body).encode(), {"content-type": "application/json"})


def _raw_response(status: int, data: bytes, headers: dict[str, str]) -> Response:
    response = Response(data, status=status, headers=headers)
    if not any(name.lower() == "content-type" for name in headers):
        # Only the function's own headers go out: werkzeug would otherwise add text/plain.
        del response.headers["Content-Type"]
    return response
