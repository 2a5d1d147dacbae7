"""A loopback stand-in for Runware's REST API and its P-Image Upscale model.

This is NOT the AI model. It speaks the subset of Runware's REST API that the pipeline uses and
really resizes images, but with classical resampling (Pillow LANCZOS): outputs have the size,
format and envelope the real service would give, and no invented detail. It lets the whole
pipeline, its tests and its fault scenarios run on one machine without a Runware key. It binds
an IPv4 loopback address only.

Endpoints
    POST /v1, POST /           the API: a JSON array of tasks, ``Authorization: Bearer <any key>``
    GET  /images/<uuid>.<ext>  results made with outputType URL, until their ttl has passed
    GET  /_emulator/stats      counters, see ``RunwareEmulator.stats``
    GET  /_emulator/faults     the fault configuration in force
    PUT  /_emulator/faults     replace it: a JSON object of FaultConfig fields (omitted = default)
    POST /_emulator/reset      forget tasks, requests, images and counters (the faults stay)

Tasks
    upscale          model ``prunaai:p-image@upscale``; validated, then processed inline
                     (deliveryMethod sync) or acknowledged at once and queued on a worker pool
                     (async). ``targetMegapixels`` is required here because no default is
                     documented. Unknown fields are ignored; ``null`` counts as absent for optional
                     fields. Only the first invalid field of a task is reported.
    getResponse      ``status`` processing | success (with the result); a failed task comes back in
                     ``errors`` with ``"status": "error"`` (HTTP 200: the poll itself worked).
    getTaskDetails   ``request`` (the array the task came in) and ``response`` (its envelope).

Processing an upscale task
    1. input: an http(s) URL (GET), a data URI, base64, or the imageUUID of an earlier result.
    2. resize: 1 MP = 1,000,000 px, target = min(targetMegapixels, 8) MP, aspect kept,
       scale = sqrt(target / (w * h)), Pillow LANCZOS; larger inputs are scaled down alike.
    3. classical filters, visible on purpose:
         settings.enhanceDetails  ImageFilter.UnsharpMask(radius=2, percent=120, threshold=3)
         settings.realism         ImageEnhance.Color(1.08), then ImageEnhance.Contrast(1.04)
    4. encode: JPG (alpha flattened on white), PNG or WEBP (alpha kept), quality=outputQuality.
    5. uploadEndpoint: HTTP PUT of the raw bytes, with no Content-Type unless a knob sets one.
    6. webhookURL: POST of the result (or error), retried with exponential backoff on non-2xx.
    ``cost`` (includeCost) is illustrative, 0.0025 USD per output megapixel: not Runware's price.
    Results made with outputType URL are kept in memory for ``ttl`` seconds (default one hour),
    at most ``max_stored_images`` of them (oldest evicted first).

Error codes (every error object has code, message, parameter, taskType, taskUUID, documentation)
    invalidApiKey 401          no or empty Bearer key
    invalidRequestBody 400     body is not a non-empty JSON array of objects
    invalid<Parameter> 400     a task field is missing or wrong; <Parameter> is the last segment of
                               the parameter path with its first letter upper-cased:
                               invalidTaskType, invalidTaskUUID, invalidInputs, invalidImage,
                               invalidTargetMegapixels, invalidSettings, invalidEnhanceDetails,
                               invalidRealism, invalidOutputType, invalidOutputFormat,
                               invalidOutputQuality, invalidDeliveryMethod, invalidWebhookURL,
                               invalidUploadEndpoint, invalidTtl, invalidIncludeCost
    invalidModel 400           a model other than prunaai:p-image@upscale
    duplicateTaskUUID 400      the taskUUID is already known (also within one request)
    taskNotFound 404           getResponse / getTaskDetails for an unknown taskUUID
    invalidImage               (task) the input could not be fetched or decoded
    uploadFailed               (task) the PUT to uploadEndpoint failed; the message has the status
    internalServerError 500    (task) an unexpected error inside the emulator
    Injected faults: tooManyRequests 429, serviceUnavailable 503 (internalServerError 500,
    badGateway 502, gatewayTimeout 504, serverError otherwise), invalidParameter 400,
    insufficientCredits 402, and task_failure_code (default timeoutProvider).
    A request whose tasks all fail answers with the HTTP status of the first error; a request
    with successes and failures answers 200 with both ``data`` and ``errors``.

Fault knobs (FaultConfig; CLI flag ``--latency-seconds``, env ``RUNWARE_EMULATOR_LATENCY_SECONDS``
and so on). Shares are drawn from ``random.Random(seed)`` so a run with the same seed, knobs and
request order makes the same choices; a task keeps the knobs in force when it was accepted.
    latency_seconds, latency_jitter_seconds   processing delay per task, plus uniform(0, jitter)
    task_failure_rate, task_failure_code      share of async tasks failing after acceptance
    reject_rate, reject_status                share of upscale requests refused at submission
                                              (400 invalidParameter or 402 insufficientCredits)
    burst_429, retry_after_seconds            the next N API requests answer 429 + Retry-After
    rate_5xx, status_5xx                      share of API requests answered with a 5xx
    drop_webhook_rate                         share of tasks whose webhook is never sent
    duplicate_webhook_rate                    share of tasks whose webhook is delivered twice
    webhook_delay_seconds                     wait before the first webhook attempt
    webhook_before_upload                     POST the webhook first, then PUT the output
    webhook_shape                             envelope ({"data": [..]} / {"errors": [..]}) | bare
    webhook_retry_base_seconds                first retry delay, doubled on each further retry
    webhook_max_attempts                      attempts before a webhook is abandoned
    upload_content_type                       Content-Type sent with the PUT (default: none)
Order of checks for an API request: key (401), burst_429, rate_5xx, body shape, reject_rate,
then each task.

Run it alone with ``python -m local.runware_emulator --port 8787 [--latency-seconds 0.5 ...]``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import functools
import heapq
import io
import ipaddress
import itertools
import json
import logging
import math
import os
import random
import re
import signal
import ssl
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import unquote_to_bytes, urlsplit

import certifi
import httpx
from PIL import Image, ImageEnhance, ImageFilter, UnidentifiedImageError

logger = logging.getLogger(__name__)

MODEL_ID = "prunaai:p-image@upscale"
ENV_PREFIX = "RUNWARE_EMULATOR_"
DOCUMENTATION_URL = "https://runware.ai/docs/platform/errors"
PIXELS_PER_MEGAPIXEL = 1_000_000
MAX_TARGET_MEGAPIXELS = 8
COST_PER_OUTPUT_MEGAPIXEL_USD = 0.0025
OUTPUT_TYPES = ("URL", "dataURI", "base64Data")
OUTPUT_FORMATS = ("JPG", "PNG", "WEBP")
DELIVERY_METHODS = ("sync", "async")
WEBHOOK_SHAPES = ("envelope", "bare")
DEFAULT_OUTPUT_QUALITY = 95
MIN_TTL_SECONDS = 60
MAX_REQUEST_BYTES = 64 * 1024 * 1024
MAX_INPUT_IMAGE_BYTES = 64 * 1024 * 1024

PROCESSING = "processing"
SUCCESS = "success"
ERROR = "error"

_API_PATHS = frozenset({"/", "/v1", "/v1/"})
_UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.IGNORECASE)
_ANY_UUID = re.compile(_UUID_PATTERN, re.IGNORECASE)
_IMAGE_PATH = re.compile(rf"/images/(?P<uuid>{_UUID_PATTERN})\.(?P<ext>jpg|png|webp)", re.IGNORECASE)
_FORMAT_DETAILS = {
    # outputFormat: (Pillow format, file extension, content type)
    "JPG": ("JPEG", "jpg", "image/jpeg"),
    "PNG": ("PNG", "png", "image/png"),
    "WEBP": ("WEBP", "webp", "image/webp"),
}
_SERVER_ERROR_CODES = {
    500: "internalServerError",
    502: "badGateway",
    503: "serviceUnavailable",
    504: "gatewayTimeout",
}
_REJECT_CODES = {400: "invalidParameter", 402: "insufficientCredits"}


# --------------------------------------------------------------------------------------------
# Fault configuration


def _knob(default: Any, help_text: str) -> Any:
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class FaultConfig:
    """Faults and delivery quirks to inject; every field is also a CLI flag and an env variable."""

    latency_seconds: float = _knob(0.0, "processing delay per task, in seconds")
    latency_jitter_seconds: float = _knob(0.0, "extra delay per task, uniform between 0 and this")
    task_failure_rate: float = _knob(0.0, "share (0..1) of async tasks that fail after acceptance")
    task_failure_code: str = _knob("timeoutProvider", "error code of those failed tasks")
    reject_rate: float = _knob(0.0, "share (0..1) of upscale requests refused at submission")
    reject_status: int = _knob(400, "HTTP status of refused requests: 400 or 402")
    burst_429: int = _knob(0, "the next N API requests answer HTTP 429")
    retry_after_seconds: int = _knob(1, "Retry-After header value sent with a 429")
    rate_5xx: float = _knob(0.0, "share (0..1) of API requests answered with a 5xx")
    status_5xx: int = _knob(503, "HTTP status of those answers, 500..599")
    drop_webhook_rate: float = _knob(0.0, "share (0..1) of tasks whose webhook is never sent")
    duplicate_webhook_rate: float = _knob(0.0, "share (0..1) of tasks whose webhook is delivered twice")
    webhook_delay_seconds: float = _knob(0.0, "delay before the first webhook attempt")
    webhook_before_upload: bool = _knob(False, "POST the webhook before the PUT to uploadEndpoint")
    webhook_shape: str = _knob("envelope", "webhook body: envelope ({'data': [...]}) or bare (the item)")
    webhook_retry_base_seconds: float = _knob(0.2, "first webhook retry delay, doubled on each retry")
    webhook_max_attempts: int = _knob(6, "webhook attempts before giving up")
    upload_content_type: str | None = _knob(None, "Content-Type header for the upload PUT (default none)")

    def __post_init__(self) -> None:
        problems: list[str] = []
        for name in ("task_failure_rate", "reject_rate", "rate_5xx", "drop_webhook_rate", "duplicate_webhook_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be between 0 and 1, got {value!r}")
        for name in (
            "latency_seconds",
            "latency_jitter_seconds",
            "webhook_delay_seconds",
            "webhook_retry_base_seconds",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                problems.append(f"{name} must be a finite number >= 0, got {value!r}")
        if self.reject_status not in _REJECT_CODES:
            problems.append(f"reject_status must be 400 or 402, got {self.reject_status!r}")
        if not 500 <= self.status_5xx <= 599:
            problems.append(f"status_5xx must be within 500..599, got {self.status_5xx!r}")
        if self.burst_429 < 0:
            problems.append(f"burst_429 must be >= 0, got {self.burst_429!r}")
        if self.retry_after_seconds < 0:
            problems.append(f"retry_after_seconds must be >= 0, got {self.retry_after_seconds!r}")
        if self.webhook_max_attempts < 1:
            problems.append(f"webhook_max_attempts must be >= 1, got {self.webhook_max_attempts!r}")
        if self.webhook_shape not in WEBHOOK_SHAPES:
            problems.append(f"webhook_shape must be one of {WEBHOOK_SHAPES}, got {self.webhook_shape!r}")
        if not self.task_failure_code:
            problems.append("task_failure_code must not be empty")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> FaultConfig:
        """Builds a config from JSON-like values, strict about names and types."""
        annotations = _fault_field_annotations()
        unknown = sorted(set(values) - set(annotations))
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(unknown)}")
        return cls(**{name: _coerce_json_value(name, annotations[name], value) for name, value in values.items()})

    @classmethod
    def from_env(cls, environ: Mapping[str, str], base: FaultConfig | None = None) -> FaultConfig:
        """``base`` (default: all defaults) overlaid with every RUNWARE_EMULATOR_<FIELD> that is set."""
        annotations = _fault_field_annotations()
        overrides: dict[str, Any] = {}
        for name, annotation in annotations.items():
            variable = fault_env_var(name)
            if variable in environ:
                try:
                    overrides[name] = _parse_text_value(annotation, environ[variable])
                except ValueError as error:
                    raise ValueError(f"{variable}: {error}") from None
        return dataclasses.replace(base or cls(), **overrides)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fault_env_var(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def fault_cli_flag(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _fault_field_annotations() -> dict[str, str]:
    # The annotations are strings (postponed evaluation); each must be one _parse_text_value knows.
    return {item.name: str(item.type) for item in dataclasses.fields(FaultConfig)}


def _parse_bool_text(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _parse_text_value(annotation: str, text: str) -> Any:
    if annotation == "float":
        return float(text)
    if annotation == "int":
        return int(text)
    if annotation == "bool":
        return _parse_bool_text(text)
    if annotation == "str":
        return text
    if annotation == "str | None":
        return text or None
    raise ValueError(f"unsupported setting type {annotation}")


def _coerce_json_value(name: str, annotation: str, value: Any) -> Any:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if annotation == "float" and is_number:
        return float(value)
    if annotation == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation == "bool" and isinstance(value, bool):
        return value
    if annotation == "str" and isinstance(value, str):
        return value
    if annotation == "str | None" and (value is None or isinstance(value, str)):
        return value or None
    raise ValueError(f"{name} must be of type {annotation}, got {value!r}")


# --------------------------------------------------------------------------------------------
# Errors, requests and records


class ApiError(Exception):
    """One entry of an ``errors`` array, with the HTTP status it gives a request it fails alone."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        parameter: str | None = None,
        http_status: int = 400,
        task_type: str | None = None,
        task_uuid: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.parameter = parameter
        self.http_status = http_status
        self.task_type = task_type
        self.task_uuid = task_uuid

    def for_task(self, task_type: str | None, task_uuid: str | None) -> ApiError:
        return ApiError(
            self.code,
            self.message,
            parameter=self.parameter,
            http_status=self.http_status,
            task_type=task_type,
            task_uuid=task_uuid,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "parameter": self.parameter,
            "taskType": self.task_type,
            "taskUUID": self.task_uuid,
            "documentation": f"{DOCUMENTATION_URL}#{self.code.lower()}",
        }


def _invalid(parameter: str, reason: str) -> ApiError:
    last = parameter.rsplit(".", 1)[-1]
    return ApiError(
        f"invalid{last[:1].upper()}{last[1:]}", f"Invalid value for {parameter}: {reason}.", parameter=parameter
    )


def _image_error(reason: str) -> ApiError:
    return ApiError("invalidImage", f"The input image could not be used: {reason}.", parameter="inputs.image")


@dataclass(frozen=True)
class UpscaleRequest:
    """A validated upscale task with Runware's defaults filled in."""

    task_uuid: str
    image: str
    target_megapixels: int
    enhance_details: bool
    realism: bool
    output_type: str
    output_format: str
    output_quality: int
    delivery_method: str
    webhook_url: str | None
    upload_endpoint: str | None
    ttl_seconds: int | None
    include_cost: bool


@dataclass
class TaskRecord:
    """What the emulator knows about one accepted task. Written under the emulator's lock."""

    task_uuid: str
    task_type: str
    delivery_method: str
    request: dict[str, Any]
    request_batch: list[Any]
    accepted_at: float
    generation: int
    status: str = PROCESSING
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    error_http_status: int | None = None
    output_width: int | None = None
    output_height: int | None = None
    output_format: str | None = None
    output_size: int | None = None
    completed_at: float | None = None
    webhook_attempts: int = 0
    webhook_deliveries: int = 0

    def response_envelope(self) -> dict[str, Any]:
        if self.status == SUCCESS and self.result is not None:
            return {"data": [self.result]}
        if self.status == ERROR and self.error is not None:
            return {"errors": [self.error]}
        return {"data": [{"taskType": self.task_type, "taskUUID": self.task_uuid, "status": PROCESSING}]}


@dataclass(frozen=True)
class RenderedImage:
    data: bytes
    width: int
    height: int
    output_format: str

    @property
    def extension(self) -> str:
        return _FORMAT_DETAILS[self.output_format][1]

    @property
    def content_type(self) -> str:
        return _FORMAT_DETAILS[self.output_format][2]


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> HttpResponse:
        return cls(status, json.dumps(payload).encode(), "application/json", headers or {})


@dataclass(frozen=True)
class _TaskFate:
    """The random choices for one task, drawn at acceptance so they follow request order."""

    faults: FaultConfig
    latency_seconds: float
    fail: bool
    drop_webhook: bool
    duplicate_webhook: bool


@dataclass
class _WebhookDelivery:
    record: TaskRecord
    url: str
    shape: str
    retry_base_seconds: float
    max_attempts: int
    copies_after_success: int
    attempts: int = 0


@dataclass
class _StoredImage:
    data: bytes
    extension: str
    content_type: str
    expires_at: float


@dataclass
class _Counters:
    requests: int = 0
    responses_by_status: dict[str, int] = field(default_factory=dict)
    webhook_attempts: int = 0
    webhook_deliveries: int = 0
    webhook_failures: int = 0
    webhooks_dropped: int = 0
    webhooks_abandoned: int = 0
    upload_attempts: int = 0
    uploads: int = 0
    upload_failures: int = 0


@dataclass(frozen=True)
class _TaskOutcome:
    item: dict[str, Any]
    is_error: bool
    http_status: int = 200


# --------------------------------------------------------------------------------------------
# Validation


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def validate_upscale(task: Mapping[str, Any]) -> UpscaleRequest:
    """Checks an upscale task field by field; raises ApiError naming the first bad parameter."""
    task_uuid = task.get("taskUUID")
    if not isinstance(task_uuid, str) or not _UUID4.fullmatch(task_uuid):
        raise _invalid("taskUUID", "must be a UUID version 4 string")
    model = task.get("model")
    if model != MODEL_ID:
        raise ApiError(
            "invalidModel", f"Unknown model {model!r}: this endpoint serves only {MODEL_ID}.", parameter="model"
        )
    inputs = task.get("inputs")
    if not isinstance(inputs, dict):
        raise _invalid("inputs", "must be an object holding image")
    image = inputs.get("image")
    if not isinstance(image, str) or not image.strip():
        raise _invalid("inputs.image", "must be a non-empty string (URL, data URI, base64 or image UUID)")
    target = task.get("targetMegapixels")
    if not _is_int(target) or not 1 <= target <= MAX_TARGET_MEGAPIXELS:
        raise _invalid("targetMegapixels", f"must be an integer from 1 to {MAX_TARGET_MEGAPIXELS}")
    settings = _optional(task, "settings", {})
    if not isinstance(settings, dict):
        raise _invalid("settings", "must be an object")
    enhance_details = _optional(settings, "enhanceDetails", False)
    if not isinstance(enhance_details, bool):
        raise _invalid("settings.enhanceDetails", "must be a boolean")
    realism = _optional(settings, "realism", False)
    if not isinstance(realism, bool):
        raise _invalid("settings.realism", "must be a boolean")
    output_type = _optional(task, "outputType", "URL")
    if output_type not in OUTPUT_TYPES:
        raise _invalid("outputType", f"must be one of {', '.join(OUTPUT_TYPES)}")
    output_format = _optional(task, "outputFormat", "JPG")
    if output_format not in OUTPUT_FORMATS:
        raise _invalid("outputFormat", f"must be one of {', '.join(OUTPUT_FORMATS)}")
    output_quality = _optional(task, "outputQuality", DEFAULT_OUTPUT_QUALITY)
    if not _is_int(output_quality) or not 20 <= output_quality <= 99:
        raise _invalid("outputQuality", "must be an integer from 20 to 99")
    delivery_method = _optional(task, "deliveryMethod", "sync")
    if delivery_method not in DELIVERY_METHODS:
        raise _invalid("deliveryMethod", f"must be one of {', '.join(DELIVERY_METHODS)}")
    webhook_url = _optional(task, "webhookURL", None)
    if webhook_url is not None and not _is_http_url(webhook_url):
        raise _invalid("webhookURL", "must be an http(s) URL")
    upload_endpoint = _optional(task, "uploadEndpoint", None)
    if upload_endpoint is not None and not _is_http_url(upload_endpoint):
        raise _invalid("uploadEndpoint", "must be an http(s) URL")
    ttl = _optional(task, "ttl", None)
    if ttl is not None and (not _is_int(ttl) or ttl < MIN_TTL_SECONDS):
        raise _invalid("ttl", f"must be an integer of at least {MIN_TTL_SECONDS} seconds")
    include_cost = _optional(task, "includeCost", False)
    if not isinstance(include_cost, bool):
        raise _invalid("includeCost", "must be a boolean")
    return UpscaleRequest(
        task_uuid=task_uuid,
        image=image.strip(),
        target_megapixels=target,
        enhance_details=enhance_details,
        realism=realism,
        output_type=output_type,
        output_format=output_format,
        output_quality=output_quality,
        delivery_method=delivery_method,
        webhook_url=webhook_url,
        upload_endpoint=upload_endpoint,
        ttl_seconds=ttl,
        include_cost=include_cost,
    )


def _optional(container: Mapping[str, Any], name: str, default: Any) -> Any:
    value = container.get(name)
    return default if value is None else value


# --------------------------------------------------------------------------------------------
# Image work (classical, deterministic)


def target_dimensions(width: int, height: int, target_megapixels: int) -> tuple[int, int]:
    """Output size for a target in megapixels (capped at 8), aspect ratio kept."""
    target_pixels = min(target_megapixels, MAX_TARGET_MEGAPIXELS) * PIXELS_PER_MEGAPIXEL
    scale = math.sqrt(target_pixels / (width * height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def upscale_image(
    image: Image.Image, target_megapixels: int, *, enhance_details: bool = False, realism: bool = False
) -> Image.Image:
    """Resizes with LANCZOS to the target and applies the documented classical filters."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    working = image.convert("RGBA" if has_alpha else "RGB")
    resized = working.resize(target_dimensions(*working.size, target_megapixels), Image.Resampling.LANCZOS)
    if enhance_details:
        resized = resized.filter(ImageFilter.UnsharpMask(radius=2, percent=120, threshold=3))
    if realism:
        resized = ImageEnhance.Color(resized).enhance(1.08)
        resized = ImageEnhance.Contrast(resized).enhance(1.04)
    return resized


def encode_image(image: Image.Image, output_format: str, quality: int) -> bytes:
    pillow_format = _FORMAT_DETAILS[output_format][0]
    buffer = io.BytesIO()
    if output_format == "JPG":
        if image.mode == "RGBA":
            flattened = Image.new("RGB", image.size, (255, 255, 255))
            flattened.paste(image, mask=image.getchannel("A"))
            image = flattened
        image.convert("RGB").save(buffer, format=pillow_format, quality=quality)
    elif output_format == "PNG":
        # A lower zlib level than Pillow's default: PNG size is not what the emulator is judged on.
        image.save(buffer, format=pillow_format, compress_level=3)
    else:
        image.save(buffer, format=pillow_format, quality=quality)
    return buffer.getvalue()


def decode_image(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
        raise _image_error(f"not a decodable image ({type(error).__name__}: {error})") from None
    return image


def _redacted(url: str) -> str:
    # Presigned URLs carry credentials in the query string; messages end up in job records.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


# --------------------------------------------------------------------------------------------
# Timer for webhook retries


class _DelayedCalls:
    """Runs callables after a delay on one timer thread, so back-off never holds a pool thread."""

    def __init__(self, name: str) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._condition = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call_later(self, delay_seconds: float, action: Callable[[], None]) -> bool:
        with self._condition:
            if self._closed:
                return False
            due = time.monotonic() + max(0.0, delay_seconds)
            heapq.heappush(self._heap, (due, next(self._order), action))
            self._condition.notify()
            return True

    def cancel_all(self) -> int:
        with self._condition:
            cancelled = len(self._heap)
            self._heap.clear()
            return cancelled

    def close(self) -> int:
        with self._condition:
            self._closed = True
            cancelled = len(self._heap)
            self._heap.clear()
            self._condition.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        return cancelled

    def _run(self) -> None:
        while True:
            with self._condition:
                action = None
                while action is None:
                    if self._closed:
                        return
                    if not self._heap:
                        self._condition.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait > 0:
                        self._condition.wait(wait)
                        continue
                    action = heapq.heappop(self._heap)[2]
            try:
                action()
            except Exception:
                logger.exception("delayed call failed")


# --------------------------------------------------------------------------------------------
# The emulator


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle costs ~20 ms; one context serves every emulator in the process.
    return ssl.create_default_context(cafile=certifi.where())


def _loopback_host(host: str) -> str:
    candidate = "127.0.0.1" if host == "localhost" else host
    try:
        address = ipaddress.IPv4Address(candidate)
    except ValueError:
        raise ValueError(f"host must be an IPv4 loopback address, got {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"host must be an IPv4 loopback address, got {host!r}")
    return candidate


class RunwareEmulator:
    """Runware's REST API for the upscale model, on loopback, with injectable faults.

    ``clock`` (monotonic seconds) decides when stored images expire; tests pass a fake one.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        workers: int = 4,
        faults: FaultConfig | None = None,
        seed: int | None = None,
        *,
        webhook_workers: int = 8,
        fetch_timeout_seconds: float = 30.0,
        upload_timeout_seconds: float = 60.0,
        webhook_timeout_seconds: float = 10.0,
        default_image_ttl_seconds: float = 3600.0,
        max_stored_images: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if workers < 1 or webhook_workers < 1:
            raise ValueError("workers and webhook_workers must be >= 1")
        self.host = _loopback_host(host)
        self._requested_port = port
        self._seed = seed
        self._clock = clock
        self._fetch_timeout = fetch_timeout_seconds
        self._upload_timeout = upload_timeout_seconds
        self._webhook_timeout = webhook_timeout_seconds
        self._default_image_ttl = default_image_ttl_seconds
        self._max_stored_images = max_stored_images

        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy = 0
        self._generation = 0
        self._faults = faults or FaultConfig()
        self._burst_429_remaining = self._faults.burst_429
        self._rng = random.Random(seed)
        self._tasks: dict[str, TaskRecord] = {}
        self._requests: list[Any] = []
        self._images: dict[str, _StoredImage] = {}
        self._counters = _Counters()

        self._stopping = threading.Event()
        self._task_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runware-emulator-task")
        self._webhook_pool = ThreadPoolExecutor(
            max_workers=webhook_workers, thread_name_prefix="runware-emulator-webhook"
        )
        self._delayed = _DelayedCalls("runware-emulator-timer")
        # trust_env=False: a proxy from the environment must never carry loopback traffic.
        self._http = httpx.Client(trust_env=False, follow_redirects=True, verify=_tls_context())
        self._server: _EmulatorHTTPServer | None = None
        self._server_thread: threading.Thread | None = None
        self._stopped = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> RunwareEmulator:
        if self._server is not None or self._stopped:
            raise RuntimeError("an emulator starts once")
        self._server = _EmulatorHTTPServer((self.host, self._requested_port), self)
        self._delayed.start()
        self._server_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="runware-emulator-http", daemon=True
        )
        self._server_thread.start()
        logger.info("Runware emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._server_thread is not None:
            self._server_thread.join(timeout=5)
        self._delayed.close()
        self._task_pool.shutdown(wait=True, cancel_futures=True)
        self._webhook_pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()
        with self._idle:
            self._idle.notify_all()

    def __enter__(self) -> RunwareEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The API endpoint, the stand-in for https://api.runware.ai/v1."""
        return f"{self.base_url}/v1"

    # -- state for tests and the admin API ---------------------------------------------------

    @property
    def faults(self) -> FaultConfig:
        with self._lock:
            return dataclasses.replace(self._faults, burst_429=self._burst_429_remaining)

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        with self._lock:
            self._faults = config
            self._burst_429_remaining = config.burst_429

    @property
    def tasks(self) -> dict[str, TaskRecord]:
        """taskUUID (lower case) -> record; a snapshot of the index, the records are live."""
        with self._lock:
            return dict(self._tasks)

    @property
    def requests(self) -> list[Any]:
        """Every API request body in arrival order: parsed JSON, or the text if it was not JSON."""
        with self._lock:
            return list(self._requests)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            by_status = {PROCESSING: 0, SUCCESS: 0, ERROR: 0}
            for record in self._tasks.values():
                by_status[record.status] += 1
            counters = dataclasses.asdict(self._counters)
            return {
                **counters,
                "tasks": by_status,
                "images_stored": len(self._images),
                "burst_429_remaining": self._burst_429_remaining,
                "busy": self._busy,
            }

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Blocks until no task is queued or processing and no webhook is pending; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0 or self._stopped, timeout)

    def reset(self) -> None:
        """Forgets tasks, requests, images and counters; keeps the faults (429 burst re-armed).

        Meant for an idle emulator: work still in flight finishes but sends no webhook.
        """
        cancelled = self._delayed.cancel_all()
        with self._lock:
            self._generation += 1
            self._tasks.clear()
            self._requests.clear()
            self._images.clear()
            self._counters = _Counters()
            self._burst_429_remaining = self._faults.burst_429
            self._rng = random.Random(self._seed)
        self._release_busy(cancelled)

    # -- HTTP routing ------------------------------------------------------------------------

    def handle_http(self, method: str, target: str, body: bytes, authorization: str | None) -> HttpResponse:
        """Answers one HTTP request; the server only moves bytes."""
        path = urlsplit(target).path
        if path in _API_PATHS:
            if method != "POST":
                return _method_not_allowed("POST")
            response = self._handle_api(body, authorization)
            with self._lock:
                key = str(response.status)
                self._counters.responses_by_status[key] = self._counters.responses_by_status.get(key, 0) + 1
            return response
        image_match = _IMAGE_PATH.fullmatch(path)
        if image_match:
            if method not in ("GET", "HEAD"):
                return _method_not_allowed("GET")
            return self._serve_image(image_match["uuid"].lower(), image_match["ext"].lower())
        if path == "/_emulator/stats":
            return HttpResponse.json(200, self.stats()) if method == "GET" else _method_not_allowed("GET")
        if path == "/_emulator/faults":
            if method == "GET":
                return HttpResponse.json(200, self.faults.to_json())
            if method == "PUT":
                return self._replace_faults(body)
            return _method_not_allowed("GET, PUT")
        if path == "/_emulator/reset":
            if method != "POST":
                return _method_not_allowed("POST")
            self.reset()
            return HttpResponse.json(200, self.stats())
        return HttpResponse.json(
            404, {"errors": [ApiError("notFound", f"No route for {path}.", http_status=404).to_json()]}
        )

    def _replace_faults(self, body: bytes) -> HttpResponse:
        try:
            values = json.loads(body or b"{}")
            if not isinstance(values, dict):
                raise ValueError("the body must be a JSON object of FaultConfig fields")
            config = FaultConfig.from_mapping(values)
        except ValueError as error:
            problem = ApiError("invalidFaultConfig", str(error), parameter=None)
            return HttpResponse.json(400, {"errors": [problem.to_json()]})
        self.faults = config
        return HttpResponse.json(200, config.to_json())

    def _serve_image(self, image_uuid: str, extension: str) -> HttpResponse:
        with self._lock:
            stored = self._images.get(image_uuid)
            if stored is not None and self._clock() >= stored.expires_at:
                del self._images[image_uuid]
                stored = None
        if stored is None or stored.extension != extension:
            problem = ApiError("imageNotFound", "No such image, or its ttl has passed.", http_status=404)
            return HttpResponse.json(404, {"errors": [problem.to_json()]})
        return HttpResponse(200, stored.data, stored.content_type)

    # -- the API -----------------------------------------------------------------------------

    def _handle_api(self, body: bytes, authorization: str | None) -> HttpResponse:
        try:
            payload: Any = json.loads(body)
            parsed = True
        except ValueError:
            payload = body.decode("utf-8", errors="replace")
            parsed = False
        with self._lock:
            self._requests.append(payload)
            self._counters.requests += 1
            faults = self._faults

        scheme, _, key = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            refusal = ApiError(
                "invalidApiKey", "Missing or empty API key: send Authorization: Bearer <key>.", http_status=401
            )
            return _request_wide_failure(refusal, payload)

        injected = self._draw_request_fault(faults)
        if injected is not None:
            headers = {"Retry-After": str(faults.retry_after_seconds)} if injected.http_status == 429 else {}
            return _request_wide_failure(injected, payload, headers)

        if not parsed or not isinstance(payload, list) or not payload:
            problem = ApiError("invalidRequestBody", "The body must be a non-empty JSON array of task objects.")
            return HttpResponse.json(400, {"errors": [problem.to_json()]})

        has_upscale = any(isinstance(task, dict) and task.get("taskType") == "upscale" for task in payload)
        if has_upscale and self._draw(faults.reject_rate):
            status = faults.reject_status
            refusal = ApiError(
                _REJECT_CODES[status], f"Request refused with HTTP {status} (injected fault).", http_status=status
            )
            return _request_wide_failure(refusal, payload)

        outcomes = [self._handle_task(task, payload) for task in payload]
        data = [outcome.item for outcome in outcomes if not outcome.is_error]
        errors = [outcome for outcome in outcomes if outcome.is_error]
        if not errors:
            return HttpResponse.json(200, {"data": data})
        error_items = [outcome.item for outcome in errors]
        if data:
            return HttpResponse.json(200, {"data": data, "errors": error_items})
        return HttpResponse.json(errors[0].http_status, {"errors": error_items})

    def _draw(self, rate: float) -> bool:
        # No draw for a disabled knob, so enabling one knob does not reshuffle the others.
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def _draw_request_fault(self, faults: FaultConfig) -> ApiError | None:
        with self._lock:
            if self._burst_429_remaining > 0:
                self._burst_429_remaining -= 1
                return ApiError("tooManyRequests", "Too many requests (injected fault).", http_status=429)
        if self._draw(faults.rate_5xx):
            status = faults.status_5xx
            code = _SERVER_ERROR_CODES.get(status, "serverError")
            return ApiError(code, f"Server error HTTP {status} (injected fault).", http_status=status)
        return None

    def _handle_task(self, task: Any, batch: list[Any]) -> _TaskOutcome:
        if not isinstance(task, dict):
            problem = ApiError("invalidRequestBody", "Each element of the body must be a task object.")
            return _TaskOutcome(problem.to_json(), True, problem.http_status)
        task_type = task.get("taskType")
        raw_uuid = task.get("taskUUID")
        try:
            if task_type == "upscale":
                return self._submit_upscale(task, batch)
            if task_type == "getResponse":
                return self._get_response(task)
            if task_type == "getTaskDetails":
                return self._get_task_details(task)
            raise _invalid("taskType", "must be upscale, getResponse or getTaskDetails")
        except ApiError as error:
            scoped = error.for_task(
                task_type if isinstance(task_type, str) else None, raw_uuid if isinstance(raw_uuid, str) else None
            )
            return _TaskOutcome(scoped.to_json(), True, scoped.http_status)

    def _find_record(self, task: Mapping[str, Any]) -> TaskRecord:
        task_uuid = task.get("taskUUID")
        if not isinstance(task_uuid, str) or not task_uuid:
            raise _invalid("taskUUID", "must be the UUID of a submitted task")
        with self._lock:
            record = self._tasks.get(task_uuid.lower())
        if record is None:
            raise ApiError("taskNotFound", f"No task with taskUUID {task_uuid}.", parameter="taskUUID", http_status=404)
        return record

    def _get_response(self, task: Mapping[str, Any]) -> _TaskOutcome:
        record = self._find_record(task)
        with self._lock:
            status, result, error = record.status, record.result, record.error
        if status == SUCCESS and result is not None:
            return _TaskOutcome({**result, "status": SUCCESS}, False)
        if status == ERROR and error is not None:
            return _TaskOutcome({**error, "status": ERROR}, True, 200)
        return _TaskOutcome({"taskType": record.task_type, "taskUUID": record.task_uuid, "status": PROCESSING}, False)

    def _get_task_details(self, task: Mapping[str, Any]) -> _TaskOutcome:
        record = self._find_record(task)
        with self._lock:
            details = {
                "taskType": "getTaskDetails",
                "taskUUID": record.task_uuid,
                "status": record.status,
                "request": record.request_batch,
                "response": record.response_envelope(),
            }
        return _TaskOutcome(details, False)

    def _submit_upscale(self, task: dict[str, Any], batch: list[Any]) -> _TaskOutcome:
        request = validate_upscale(task)
        with self._lock:
            key = request.task_uuid.lower()
            if key in self._tasks:
                raise ApiError(
                    "duplicateTaskUUID",
                    f"A task with taskUUID {request.task_uuid} already exists.",
                    parameter="taskUUID",
                )
            faults = self._faults
            record = TaskRecord(
                task_uuid=request.task_uuid,
                task_type="upscale",
                delivery_method=request.delivery_method,
                request=task,
                request_batch=batch,
                accepted_at=self._clock(),
                generation=self._generation,
            )
            self._tasks[key] = record
            fate = self._draw_fate_locked(faults, is_async=request.delivery_method == "async")
            self._busy += 1
        if request.delivery_method == "async":
            self._task_pool.submit(self._run_task, record, request, fate)
            return _TaskOutcome({"taskType": "upscale", "taskUUID": request.task_uuid}, False)
        self._run_task(record, request, fate)
        with self._lock:
            if record.status == SUCCESS and record.result is not None:
                return _TaskOutcome(record.result, False)
            error = record.error or {}
            return _TaskOutcome(error, True, record.error_http_status or 500)

    def _draw_fate_locked(self, faults: FaultConfig, *, is_async: bool) -> _TaskFate:
        def chance(rate: float) -> bool:
            return rate > 0 and self._rng.random() < rate

        jitter = self._rng.uniform(0, faults.latency_jitter_seconds) if faults.latency_jitter_seconds > 0 else 0.0
        return _TaskFate(
            faults=faults,
            latency_seconds=faults.latency_seconds + jitter,
            fail=is_async and chance(faults.task_failure_rate),
            drop_webhook=chance(faults.drop_webhook_rate),
            duplicate_webhook=chance(faults.duplicate_webhook_rate),
        )

    # -- processing --------------------------------------------------------------------------

    def _run_task(self, record: TaskRecord, request: UpscaleRequest, fate: _TaskFate) -> None:
        try:
            if fate.latency_seconds > 0 and self._stopping.wait(fate.latency_seconds):
                return
            self._process(record, request, fate)
        except Exception as unexpected:
            logger.exception("upscale task %s failed inside the emulator", record.task_uuid)
            problem = ApiError("internalServerError", f"Emulator error: {unexpected}", http_status=500)
            self._complete_with_error(record, problem)
        finally:
            self._release_busy()

    def _process(self, record: TaskRecord, request: UpscaleRequest, fate: _TaskFate) -> None:
        faults = fate.faults
        try:
            if fate.fail:
                raise ApiError(
                    faults.task_failure_code,
                    "The provider did not complete the task (injected fault).",
                    http_status=500,
                )
            rendered = self._render(request)
        except ApiError as error:
            self._complete_with_error(record, error)
            self._send_webhook(record, request, fate)
            return
        result = self._build_result(request, rendered)
        if request.output_type == "URL":
            self._store_image(result["imageUUID"], rendered, request.ttl_seconds)

        if faults.webhook_before_upload and request.webhook_url:
            self._complete_with_success(record, result, rendered)
            self._send_webhook(record, request, fate, first_attempt_inline=True)
            if request.upload_endpoint:
                upload_error = self._upload(request.upload_endpoint, rendered.data, faults.upload_content_type)
                if upload_error is not None:
                    # Retries still pending will now carry this error instead of the result.
                    self._complete_with_error(record, upload_error)
            return

        if request.upload_endpoint:
            upload_error = self._upload(request.upload_endpoint, rendered.data, faults.upload_content_type)
            if upload_error is not None:
                self._complete_with_error(record, upload_error)
                self._send_webhook(record, request, fate)
                return
        self._complete_with_success(record, result, rendered)
        self._send_webhook(record, request, fate)

    def _render(self, request: UpscaleRequest) -> RenderedImage:
        source = decode_image(self._load_input(request.image))
        try:
            upscaled = upscale_image(
                source, request.target_megapixels, enhance_details=request.enhance_details, realism=request.realism
            )
        except (ValueError, OSError) as error:
            raise _image_error(f"unsupported image ({error})") from None
        try:
            data = encode_image(upscaled, request.output_format, request.output_quality)
        except (ValueError, OSError) as error:
            raise _invalid(
                "outputFormat", f"the output cannot be encoded as {request.output_format} ({error})"
            ) from None
        return RenderedImage(data, upscaled.width, upscaled.height, request.output_format)

    def _load_input(self, image: str) -> bytes:
        lowered = image.lower()
        if lowered.startswith(("http://", "https://")):
            return self._fetch(image)
        if lowered.startswith("data:"):
            header, comma, encoded = image.partition(",")
            if not comma:
                raise _image_error("the data URI has no comma")
            if header.lower().endswith(";base64"):
                return _decode_base64(encoded, "the data URI")
            return unquote_to_bytes(encoded)
        if _ANY_UUID.fullmatch(image):
            with self._lock:
                stored = self._images.get(image.lower())
            if stored is None:
                raise _image_error(f"unknown image UUID {image} (only results of this emulator are known)")
            return stored.data
        if "://" in image:
            raise _image_error(f"unsupported URL scheme in {_redacted(image)}")
        return _decode_base64(image, "the value")

    def _fetch(self, url: str) -> bytes:
        try:
            with self._http.stream("GET", url, timeout=self._fetch_timeout) as response:
                if response.status_code != 200:
                    raise _image_error(f"GET {_redacted(url)} answered HTTP {response.status_code}")
                chunks: list[bytes] = []
                received = 0
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    if received > MAX_INPUT_IMAGE_BYTES:
                        raise _image_error(f"larger than {MAX_INPUT_IMAGE_BYTES} bytes")
                    chunks.append(chunk)
        except httpx.HTTPError as error:
            raise _image_error(f"GET {_redacted(url)} failed ({type(error).__name__}: {error})") from None
        return b"".join(chunks)

    def _build_result(self, request: UpscaleRequest, rendered: RenderedImage) -> dict[str, Any]:
        image_uuid = str(uuid.uuid4())
        result: dict[str, Any] = {"taskType": "upscale", "taskUUID": request.task_uuid, "imageUUID": image_uuid}
        if request.output_type == "URL":
            result["imageURL"] = f"{self.base_url}/images/{image_uuid}.{rendered.extension}"
        elif request.output_type == "dataURI":
            encoded = base64.b64encode(rendered.data).decode("ascii")
            result["imageDataURI"] = f"data:{rendered.content_type};base64,{encoded}"
        else:
            result["imageBase64Data"] = base64.b64encode(rendered.data).decode("ascii")
        if request.include_cost:
            megapixels = rendered.width * rendered.height / PIXELS_PER_MEGAPIXEL
            result["cost"] = round(COST_PER_OUTPUT_MEGAPIXEL_USD * megapixels, 6)
        return result

    def _store_image(self, image_uuid: str, rendered: RenderedImage, ttl_seconds: int | None) -> None:
        with self._lock:
            now = self._clock()
            for expired in [key for key, stored in self._images.items() if stored.expires_at <= now]:
                del self._images[expired]
            while len(self._images) >= self._max_stored_images:
                del self._images[next(iter(self._images))]
            lifetime = ttl_seconds if ttl_seconds is not None else self._default_image_ttl
            self._images[image_uuid] = _StoredImage(
                rendered.data, rendered.extension, rendered.content_type, now + lifetime
            )

    def _upload(self, url: str, data: bytes, content_type: str | None) -> ApiError | None:
        headers = {"Content-Type": content_type} if content_type else {}
        with self._lock:
            self._counters.upload_attempts += 1
        try:
            response = self._http.put(url, content=data, headers=headers, timeout=self._upload_timeout)
        except httpx.HTTPError as error:
            problem = f"PUT {_redacted(url)} failed ({type(error).__name__}: {error})"
        else:
            if 200 <= response.status_code < 300:
                with self._lock:
                    self._counters.uploads += 1
                return None
            problem = f"PUT {_redacted(url)} answered HTTP {response.status_code}: {response.text[:300]}"
        with self._lock:
            self._counters.upload_failures += 1
        return ApiError("uploadFailed", f"Uploading the output failed: {problem}.", parameter="uploadEndpoint")

    def _complete_with_success(self, record: TaskRecord, result: dict[str, Any], rendered: RenderedImage) -> None:
        with self._lock:
            record.status = SUCCESS
            record.result = result
            record.output_width = rendered.width
            record.output_height = rendered.height
            record.output_format = rendered.output_format
            record.output_size = len(rendered.data)
            record.completed_at = self._clock()

    def _complete_with_error(self, record: TaskRecord, error: ApiError) -> None:
        scoped = error.for_task(record.task_type, record.task_uuid)
        with self._lock:
            record.status = ERROR
            record.result = None
            record.error = scoped.to_json()
            record.error_http_status = scoped.http_status
            record.completed_at = self._clock()

    # -- webhooks ----------------------------------------------------------------------------

    def _send_webhook(
        self, record: TaskRecord, request: UpscaleRequest, fate: _TaskFate, *, first_attempt_inline: bool = False
    ) -> None:
        if request.webhook_url is None:
            return
        with self._lock:
            if record.generation != self._generation:
                return
            if fate.drop_webhook:
                self._counters.webhooks_dropped += 1
                return
            self._busy += 1
        faults = fate.faults
        delivery = _WebhookDelivery(
            record=record,
            url=request.webhook_url,
            shape=faults.webhook_shape,
            retry_base_seconds=faults.webhook_retry_base_seconds,
            max_attempts=faults.webhook_max_attempts,
            copies_after_success=1 if fate.duplicate_webhook else 0,
        )
        if first_attempt_inline:
            # The point of webhook_before_upload: the POST must happen before the PUT starts.
            if faults.webhook_delay_seconds > 0 and self._stopping.wait(faults.webhook_delay_seconds):
                self._release_busy()
                return
            self._attempt_webhook(delivery)
        else:
            self._schedule_attempt(delivery, faults.webhook_delay_seconds)

    def _schedule_attempt(self, delivery: _WebhookDelivery, delay_seconds: float) -> None:
        def submit() -> None:
            try:
                self._webhook_pool.submit(self._attempt_webhook, delivery)
            except RuntimeError:
                self._release_busy()

        if not self._delayed.call_later(delay_seconds, submit):
            self._release_busy()

    def _attempt_webhook(self, delivery: _WebhookDelivery) -> None:
        record = delivery.record
        with self._lock:
            current = record.generation == self._generation and not self._stopping.is_set()
            if current:
                body = _webhook_body(record, delivery.shape)
                delivery.attempts += 1
                record.webhook_attempts += 1
                self._counters.webhook_attempts += 1
        if not current:
            self._release_busy()
            return
        try:
            response = self._http.post(
                delivery.url,
                content=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
                timeout=self._webhook_timeout,
            )
            delivered = 200 <= response.status_code < 300
            outcome = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            delivered = False
            outcome = f"{type(error).__name__}: {error}"
        if delivered:
            with self._lock:
                self._counters.webhook_deliveries += 1
                record.webhook_deliveries += 1
            if delivery.copies_after_success > 0:
                with self._lock:
                    self._busy += 1
                copy = dataclasses.replace(delivery, copies_after_success=delivery.copies_after_success - 1, attempts=0)
                self._schedule_attempt(copy, 0)
            self._release_busy()
            return
        with self._lock:
            self._counters.webhook_failures += 1
            give_up = delivery.attempts >= delivery.max_attempts
            if give_up:
                self._counters.webhooks_abandoned += 1
        logger.info(
            "webhook for %s attempt %d failed: %s%s",
            record.task_uuid,
            delivery.attempts,
            outcome,
            " (giving up)" if give_up else "",
        )
        if give_up:
            self._release_busy()
            return
        self._schedule_attempt(delivery, delivery.retry_base_seconds * 2 ** (delivery.attempts - 1))

    def _release_busy(self, count: int = 1) -> None:
        if count <= 0:
            return
        with self._lock:
            self._busy -= count
            if self._busy == 0:
                self._idle.notify_all()


def _webhook_body(record: TaskRecord, shape: str) -> Any:
    if record.status == SUCCESS and record.result is not None:
        item, envelope_key = record.result, "data"
    elif record.error is not None:
        item, envelope_key = record.error, "errors"
    else:
        item, envelope_key = {"taskType": record.task_type, "taskUUID": record.task_uuid, "status": PROCESSING}, "data"
    return item if shape == "bare" else {envelope_key: [item]}


def _decode_base64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise _image_error(f"{what} is neither an http(s) URL, a data URI, an image UUID nor valid base64") from None


def _request_wide_failure(error: ApiError, payload: Any, headers: dict[str, str] | None = None) -> HttpResponse:
    """The same error for every task of the request (one unscoped error if there are no tasks)."""
    tasks = [task for task in payload if isinstance(task, dict)] if isinstance(payload, list) else []
    if tasks:
        items = []
        for task in tasks:
            task_type, task_uuid = task.get("taskType"), task.get("taskUUID")
            scoped = error.for_task(
                task_type if isinstance(task_type, str) else None, task_uuid if isinstance(task_uuid, str) else None
            )
            items.append(scoped.to_json())
    else:
        items = [error.to_json()]
    return HttpResponse.json(error.http_status, {"errors": items}, headers)


def _method_not_allowed(allowed: str) -> HttpResponse:
    problem = ApiError("methodNotAllowed", f"Allowed methods: {allowed}.", http_status=405)
    return HttpResponse.json(405, {"errors": [problem.to_json()]}, {"Allow": allowed})


# --------------------------------------------------------------------------------------------
# HTTP server


class _EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], emulator: RunwareEmulator) -> None:
        self.emulator = emulator
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _EmulatorHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "RunwareEmulator/1.0"
    # Headers and body go out in separate writes; with Nagle on, keep-alive clients wait ~40 ms.
    disable_nagle_algorithm = True
    # Idle keep-alive connections are closed after this many seconds.
    timeout: ClassVar[float] = 60

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        body = self._read_body()
        if body is None:
            return
        try:
            response = self.server.emulator.handle_http(method, self.path, body, self.headers.get("Authorization"))
        except Exception as unexpected:
            logger.exception("emulator failed on %s %s", method, self.path)
            problem = ApiError("internalServerError", f"Emulator error: {unexpected}", http_status=500)
            response = HttpResponse.json(500, {"errors": [problem.to_json()]})
        self._send(response, include_body=method != "HEAD")

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            problem = ApiError("lengthRequired", "Send a Content-Length; chunked bodies are not supported.")
            self._send(HttpResponse.json(411, {"errors": [problem.to_json()]}))
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_REQUEST_BYTES:
            self.close_connection = True
            problem = ApiError("payloadTooLarge", f"Bodies are limited to {MAX_REQUEST_BYTES} bytes.")
            self._send(HttpResponse.json(413, {"errors": [problem.to_json()]}))
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, response: HttpResponse, *, include_body: bool = True) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if include_body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


# --------------------------------------------------------------------------------------------
# Command line


@dataclass(frozen=True)
class CommandLine:
    host: str
    port: int
    workers: int
    seed: int | None
    faults: FaultConfig
    log_level: str


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local.runware_emulator",
        description=(
            "Loopback stand-in for Runware's REST API and P-Image Upscale. Resizes with Pillow LANCZOS "
            "(not the AI model). Every fault flag can also be set with its environment variable; "
            "flags win."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="IPv4 loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default 0)")
    parser.add_argument("--workers", type=int, default=4, help="async task worker threads (default 4)")
    parser.add_argument("--seed", type=int, default=None, help="seed for the fault draws (default random)")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    faults = parser.add_argument_group("faults")
    annotations = _fault_field_annotations()
    for item in dataclasses.fields(FaultConfig):
        help_text = f"{item.metadata['help']} (env {fault_env_var(item.name)}, default {item.default!r})"
        if annotations[item.name] == "bool":
            faults.add_argument(
                fault_cli_flag(item.name),
                dest=item.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            faults.add_argument(
                fault_cli_flag(item.name),
                dest=item.name,
                type=_text_parser(annotations[item.name]),
                default=None,
                metavar=item.name.upper(),
                help=help_text,
            )
    return parser


def _text_parser(annotation: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return _parse_text_value(annotation, text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def parse_command_line(argv: Sequence[str] | None, environ: Mapping[str, str]) -> CommandLine:
    """Flags over environment variables over defaults; exits with a usage error on bad input."""
    parser = build_arg_parser()
    arguments = parser.parse_args(argv)
    try:
        from_env = FaultConfig.from_env(environ)
        flags = {
            item.name: getattr(arguments, item.name)
            for item in dataclasses.fields(FaultConfig)
            if getattr(arguments, item.name) is not None
        }
        faults = dataclasses.replace(from_env, **flags)
        host = _loopback_host(arguments.host)
    except ValueError as error:
        parser.error(str(error))
    return CommandLine(host, arguments.port, arguments.workers, arguments.seed, faults, arguments.log_level)


def main(argv: Sequence[str] | None = None) -> int:
    command = parse_command_line(argv, os.environ)
    logging.basicConfig(level=command.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    emulator = RunwareEmulator(
        host=command.host, port=command.port, workers=command.workers, faults=command.faults, seed=command.seed
    )
    stop_requested = threading.Event()

    def request_stop(signal_number: int, frame: object) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    emulator.start()
    print(
        f"Runware emulator (Pillow LANCZOS stand-in, not the AI model) listening on {emulator.url}",
        flush=True,
    )
    try:
        while not stop_requested.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
