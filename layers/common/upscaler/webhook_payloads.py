"""Reading Runware webhook bodies.

Whether Runware POSTs the `{"data": [...]}` / `{"errors": [...]}` envelope or a bare result or
error object is not documented, so every one of those shapes is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from upscaler.models import TaskError, TaskResult


class MalformedPayload(ValueError):
    """The body is JSON but holds no result or error this pipeline can read."""


Report = TaskResult | TaskError


def reports_from_payload(payload: Any, default_task_uuid: str) -> list[Report]:
    """Results and errors in a webhook body; items without a taskUUID belong to the URL's job."""
    if isinstance(payload, list):
        items: list[tuple[Any, bool]] = [(item, False) for item in payload]
    elif isinstance(payload, Mapping) and ("data" in payload or "errors" in payload):
        items = [(item, False) for item in _as_items(payload.get("data"))]
        items += [(item, True) for item in _as_items(payload.get("errors"))]
    elif isinstance(payload, Mapping) and isinstance(payload.get("error"), Mapping):
        items = [(payload["error"], True)]
    elif isinstance(payload, Mapping):
        items = [(payload, False)]
    else:
        raise MalformedPayload("the body is not a JSON object or array")
    reports: list[Report] = []
    for item, is_error in items:
        if not isinstance(item, Mapping):
            raise MalformedPayload("an item of the body is not a JSON object")
        reports.append(report_from_item(item, default_task_uuid, is_error=is_error))
    if not reports:
        raise MalformedPayload("the body holds no result and no error")
    return reports


def _as_items(value: Any) -> list[Any]:
    # A lone object where a list is expected is read as a list of one (the shape is not documented).
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return value
    raise MalformedPayload("data or errors is neither a list nor an object")


def report_from_item(item: Mapping[str, Any], default_task_uuid: str, *, is_error: bool = False) -> Report:
    filled = dict(item)
    if not filled.get("taskUUID"):
        filled["taskUUID"] = default_task_uuid
    status = str(item.get("status", "")).lower()
    looks_failed = status in ("error", "failed") or ("code" in item and "imageUUID" not in item)
    if is_error or looks_failed:
        return TaskError.from_json(filled)
    if not (item.get("imageUUID") or item.get("imageURL")):
        raise MalformedPayload("a result item has neither imageUUID nor imageURL")
    return TaskResult.from_json(filled)
