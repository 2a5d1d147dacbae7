"""Runware's error objects, as the emulator builds them, and the envelopes that carry them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from local.runware_emulator.protocol import DOCUMENTATION_URL, HttpResponse


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


def invalid(parameter: str, reason: str) -> ApiError:
    """invalid<Parameter>: the last segment of the parameter path, first letter upper-cased."""
    last = parameter.rsplit(".", 1)[-1]
    return ApiError(
        f"invalid{last[:1].upper()}{last[1:]}", f"Invalid value for {parameter}: {reason}.", parameter=parameter
    )


def image_error(reason: str) -> ApiError:
    return ApiError("invalidImage", f"The input image could not be used: {reason}.", parameter="inputs.image")


def request_wide_failure(error: ApiError, payload: Any, headers: dict[str, str] | None = None) -> HttpResponse:
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


def redacted(url: str) -> str:
    """The URL without its query: presigned URLs carry credentials there, and messages end up in job records."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
