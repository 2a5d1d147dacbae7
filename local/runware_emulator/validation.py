"""An upscale task checked field by field, with Runware's defaults filled in."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from local.runware_emulator.errors import invalid
from local.runware_emulator.protocol import (
    DEFAULT_OUTPUT_QUALITY,
    DELIVERY_METHODS,
    MAX_TARGET_MEGAPIXELS,
    MIN_TTL_SECONDS,
    MODEL_ID,
    OUTPUT_FORMATS,
    OUTPUT_TYPES,
)

_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.IGNORECASE)


@dataclass(frozen=True)
class UpscaleRequest:
    """A validated upscale task with Runware's defaults filled in."""

    task_uuid: str
    image: str
    target_megapixels: int | None  # None: not given (the model page marks it optional, with no default)
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


def validate_upscale(task: Mapping[str, Any]) -> UpscaleRequest:
    """Checks an upscale task field by field; raises ApiError invalidParameter naming the first bad one.

    Required are exactly the fields the model page marks required: taskType (checked by the caller),
    taskUUID, model and inputs.image. Which code Runware gives a missing required field is not
    documented; the emulator answers with the documented invalidParameter envelope naming the field
    (tests/contract/runware/rest/error-envelope.json).
    """
    task_uuid = task.get("taskUUID")
    if not isinstance(task_uuid, str) or not _UUID4.fullmatch(task_uuid):
        raise invalid("taskUUID", "must be a UUID version 4 string")
    model = task.get("model")
    if model != MODEL_ID:
        raise invalid("model", f"unknown model {model!r}: this endpoint serves only {MODEL_ID}")
    inputs = task.get("inputs")
    if not isinstance(inputs, dict):
        raise invalid("inputs", "must be an object holding image")
    image = inputs.get("image")
    if not isinstance(image, str) or not image.strip():
        raise invalid("inputs.image", "must be a non-empty string (URL, data URI, base64 or image UUID)")
    target = _optional(task, "targetMegapixels", None)
    if target is not None and (not _is_int(target) or not 1 <= target <= MAX_TARGET_MEGAPIXELS):
        raise invalid("targetMegapixels", f"must be an integer from 1 to {MAX_TARGET_MEGAPIXELS}")
    settings = _optional(task, "settings", {})
    if not isinstance(settings, dict):
        raise invalid("settings", "must be an object")
    enhance_details = _optional(settings, "enhanceDetails", False)
    if not isinstance(enhance_details, bool):
        raise invalid("settings.enhanceDetails", "must be a boolean")
    realism = _optional(settings, "realism", False)
    if not isinstance(realism, bool):
        raise invalid("settings.realism", "must be a boolean")
    output_type = _optional(task, "outputType", "URL")
    if output_type not in OUTPUT_TYPES:
        raise invalid("outputType", f"must be one of {', '.join(OUTPUT_TYPES)}")
    output_format = _optional(task, "outputFormat", "JPG")
    if output_format not in OUTPUT_FORMATS:
        raise invalid("outputFormat", f"must be one of {', '.join(OUTPUT_FORMATS)}")
    output_quality = _optional(task, "outputQuality", DEFAULT_OUTPUT_QUALITY)
    if not _is_int(output_quality) or not 20 <= output_quality <= 99:
        raise invalid("outputQuality", "must be an integer from 20 to 99")
    delivery_method = _optional(task, "deliveryMethod", "sync")
    if delivery_method not in DELIVERY_METHODS:
        raise invalid("deliveryMethod", f"must be one of {', '.join(DELIVERY_METHODS)}")
    webhook_url = _optional(task, "webhookURL", None)
    if webhook_url is not None and not _is_http_url(webhook_url):
        raise invalid("webhookURL", "must be an http(s) URL")
    upload_endpoint = _optional(task, "uploadEndpoint", None)
    if upload_endpoint is not None and not _is_http_url(upload_endpoint):
        raise invalid("uploadEndpoint", "must be an http(s) URL")
    ttl = _optional(task, "ttl", None)
    if ttl is not None and (not _is_int(ttl) or ttl < MIN_TTL_SECONDS):
        raise invalid("ttl", f"must be an integer of at least {MIN_TTL_SECONDS} seconds")
    include_cost = _optional(task, "includeCost", False)
    if not isinstance(include_cost, bool):
        raise invalid("includeCost", "must be a boolean")
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
    # null counts as absent for optional fields.
    value = container.get(name)
    return default if value is None else value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
