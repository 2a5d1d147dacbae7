"""What the wire is made of: the model, the task fields' allowed values, statuses and a response as bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MODEL_ID = "prunaai:p-image@upscale"
PIXELS_PER_MEGAPIXEL = 1_000_000
MAX_TARGET_MEGAPIXELS = 8
OUTPUT_TYPES = ("URL", "dataURI", "base64Data")
OUTPUT_FORMATS = ("JPG", "PNG", "WEBP")
DELIVERY_METHODS = ("sync", "async")
DEFAULT_OUTPUT_QUALITY = 95
MIN_TTL_SECONDS = 60
MAX_REQUEST_BYTES = 64 * 1024 * 1024

# getResponse statuses the emulator reports.
PROCESSING = "processing"
SUCCESS = "success"
ERROR = "error"


@dataclass(frozen=True)
class HttpResponse:
    """An answer as the server sends it; the HTTP layer only moves these bytes."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> HttpResponse:
        return cls(status, json.dumps(payload).encode(), "application/json", headers or {})

    @classmethod
    def text(cls, status: int, message: str, headers: dict[str, str] | None = None) -> HttpResponse:
        return cls(status, message.encode(), "text/plain; charset=utf-8", headers or {})
