"""A werkzeug WSGI server on a loopback address, serving from its own thread (emulator and gateway)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

logger = logging.getLogger(__name__)


class _QuietRequestHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, keep-alive clients wait ~40 ms.
    disable_nagle_algorithm = True
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 60

    def log(self, type: str, message: str, *args: Any) -> None:
        level = logging.WARNING if type == "error" else logging.DEBUG
        logger.log(level, "%s %s", self.address_string(), message % args)


class LoopbackServer:
    """Runs ``app`` (a WSGI callable) on ``host:port`` (0 picks a free port) in a daemon thread."""

    def __init__(self, host: str, port: int, app: Any, name: str) -> None:
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True, request_handler=_QuietRequestHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def wsgi_app(handler: Any) -> Any:
    """A WSGI callable from ``handler(request) -> Response``."""

    def application(environ: dict[str, Any], start_response: Any) -> Any:
        response: Response = handler(Request(environ))
        return response(environ, start_response)

    return application
