"""The HTTP surface: routes to the API, the served images and the admin endpoints, on werkzeug.

POST /v1, POST /           the API (``api.py``)
GET  /images/<uuid>.<ext>  results made with outputType URL, until their ttl has passed
GET  /_emulator/stats      counters
GET  /_emulator/faults     the fault configuration in force
PUT  /_emulator/faults     replace it: a JSON object of FaultConfig fields (omitted = default)
POST /_emulator/reset      forget tasks, requests, images and counters (the faults stay)
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from local.runware_emulator.faults import FaultConfig
from local.runware_emulator.protocol import MAX_REQUEST_BYTES, HttpResponse

if TYPE_CHECKING:
    from local.runware_emulator.api import ApiHandler
    from local.runware_emulator.fault_state import FaultState
    from local.runware_emulator.image_store import ImageStore

logger = logging.getLogger(__name__)

_API_PATHS = frozenset({"/", "/v1", "/v1/"})
_IMAGE_PATH = re.compile(
    r"/images/(?P<uuid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(?P<ext>jpg|png|webp)",
    re.IGNORECASE,
)


class EmulatorRoutes:
    """Turns one werkzeug Request into one Response; everything else lives in the parts it is given.

    The emulator hands over what these routes serve: its API handler, its stored images, its fault
    state, and how to read its counters and to reset it.
    """

    def __init__(
        self,
        *,
        api: ApiHandler,
        images: ImageStore,
        faults: FaultState,
        stats: Callable[[], dict[str, Any]],
        reset: Callable[[], None],
    ) -> None:
        self._api = api
        self._images = images
        self._faults = faults
        self._stats = stats
        self._reset = reset

    def __call__(self, request: Request) -> Response:
        request.max_content_length = MAX_REQUEST_BYTES
        try:
            answer = self._route(request)
        except RequestEntityTooLarge:
            answer = HttpResponse.text(413, f"Bodies are limited to {MAX_REQUEST_BYTES} bytes.")
        except Exception as unexpected:
            logger.exception("emulator failed on %s %s", request.method, request.path)
            # Not a Runware answer: a bug here must not pass for one of Runware's error shapes.
            answer = HttpResponse.text(500, f"Emulator error: {unexpected}")
        return Response(answer.body, status=answer.status, content_type=answer.content_type, headers=answer.headers)

    def _route(self, request: Request) -> HttpResponse:
        method, path = request.method, request.path
        if path in _API_PATHS:
            if method != "POST":
                return _method_not_allowed("POST")
            return self._api.handle(request.get_data(), request.headers.get("Authorization"))
        image_match = _IMAGE_PATH.fullmatch(path)
        if image_match:
            if method not in ("GET", "HEAD"):
                return _method_not_allowed("GET")
            return self._serve_image(image_match["uuid"], image_match["ext"].lower())
        if path == "/_emulator/stats":
            return HttpResponse.json(200, self._stats()) if method == "GET" else _method_not_allowed("GET")
        if path == "/_emulator/faults":
            if method == "GET":
                return HttpResponse.json(200, self._faults.config.to_json())
            if method == "PUT":
                return self._replace_faults(request.get_data())
            return _method_not_allowed("GET, PUT")
        if path == "/_emulator/reset":
            if method != "POST":
                return _method_not_allowed("POST")
            self._reset()
            return HttpResponse.json(200, self._stats())
        return HttpResponse.text(404, f"No route for {path}.")

    def _replace_faults(self, body: bytes) -> HttpResponse:
        try:
            values = json.loads(body or b"{}")
            if not isinstance(values, dict):
                raise ValueError("the body must be a JSON object of FaultConfig fields")
            config = FaultConfig.from_mapping(values)
        except ValueError as error:
            return HttpResponse.json(400, {"message": str(error)})
        self._faults.replace(config)
        return HttpResponse.json(200, config.to_json())

    def _serve_image(self, image_uuid: str, extension: str) -> HttpResponse:
        stored = self._images.get(image_uuid)
        if stored is None or stored.extension != extension:
            return HttpResponse.text(404, "No such image, or its ttl has passed.")
        return HttpResponse(200, stored.data, stored.content_type)


def _method_not_allowed(allowed: str) -> HttpResponse:
    return HttpResponse.text(405, f"Allowed methods: {allowed}.", {"Allow": allowed})
