"""Reading Runware webhook bodies.

The documented body is the response envelope `{"data": [...]}`; the failure body is not documented.
So every plausible shape is accepted (tests/contract/runware/webhook/ lists them with their basis):
the envelope with `data` and/or `errors`, a bare result or error object, `{"error": {...}}`, a
data item with `status: "error"` and a nested error, and a JSON array of items. An unreadable
item is counted and skipped; it never hides the readable ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from upscaler.models import TaskError, TaskResult

# Kept to explain a refusal; the body itself is never echoed back.
MAX_PROBLEMS = 3


class MalformedPayload(ValueError):
    """The body is JSON but holds no result or error this pipeline can read."""


Report = TaskResult | TaskError


@dataclass
class WebhookBody:
    """What a webhook body holds: the reports it could read, and how many items it could not."""

    reports: list[Report] = field(default_factory=list)
    malformed: int = 0
    problems: list[str] = field(default_factory=list)

    def skip(self, problem: str) -> None:
        self.malformed += 1
        if problem not in self.problems and len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    @property
    def problem(self) -> str:
        return "; ".join(self.problems) or "the body holds no result and no error"


def read_webhook_body(payload: Any, default_task_uuid: str) -> WebhookBody:
    """Every readable result and error in a parsed webhook body; never raises on its content."""
    body = WebhookBody()
    if isinstance(payload, list):
        items: list[tuple[Any, bool]] = [(item, False) for item in payload]
    elif isinstance(payload, Mapping) and ("data" in payload or "errors" in payload):
        items = [(item, False) for item in _as_items(payload.get("data"), body)]
        items += [(item, True) for item in _as_items(payload.get("errors"), body)]
    elif isinstance(payload, Mapping):
        # A bare result or error object, or {"error": {...}, "taskUUID": ...} (TaskError reads the nesting).
        items = [(payload, isinstance(payload.get("error"), Mapping))]
    else:
        body.skip("the body is not a JSON object or array")
        return body
    for item, is_error in items:
        if not isinstance(item, Mapping):
            body.skip("an item of the body is not a JSON object")
            continue
        try:
            body.reports.append(report_from_item(item, default_task_uuid, is_error=is_error))
        except MalformedPayload as error:
            body.skip(str(error))
    return body


def reports_from_payload(payload: Any, default_task_uuid: str) -> list[Report]:
    """The readable reports of a body; raises MalformedPayload when there is none."""
    body = read_webhook_body(payload, default_task_uuid)
    if not body.reports:
        raise MalformedPayload(body.problem)
    return body.reports


def _as_items(value: Any, body: WebhookBody) -> list[Any]:
    # A lone object where a list is expected is read as a list of one (the shape is not documented).
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return value
    body.skip("data or errors is neither a list nor an object")
    return []


def report_from_item(item: Mapping[str, Any], default_task_uuid: str, *, is_error: bool = False) -> Report:
    """One result or error; items without a taskUUID belong to the URL's job."""
    task_uuid = item.get("taskUUID")
    if task_uuid is not None and not isinstance(task_uuid, str):
        raise MalformedPayload("an item's taskUUID is not a string")
    filled = {**item, "taskUUID": task_uuid or default_task_uuid}
    status = item.get("status")
    status = status.lower() if isinstance(status, str) else ""
    nested_error = isinstance(item.get("error"), Mapping)
    looks_failed = status in ("error", "failed") or nested_error or ("code" in item and "imageUUID" not in item)
    if is_error or looks_failed:
        return TaskError.from_json(filled)
    try:
        result = TaskResult.from_json(filled)
    except ValueError as error:
        raise MalformedPayload(str(error)) from None
    if not (result.image_uuid or result.image_url):
        raise MalformedPayload("a result item has neither imageUUID nor imageURL")
    return result
