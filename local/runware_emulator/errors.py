"""Runware's error objects as the emulator builds them, and the one registry of codes it may emit.

Every code comes from the Runware contract (tests/contract/runware/); a unit test holds
``ERROR_CODES`` against it, and ApiError refuses any code that is not registered here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from local.runware_emulator.protocol import HttpResponse

ERROR_CODES: dict[str, str] = {
    # code: when the emulator emits it (contract fixture in brackets)
    "invalidParameter": "a task field (named in parameter) or the body is wrong [rest/error-envelope]",
    "conflictTaskUUID": "an upscale task whose taskUUID the emulator already holds [rest/conflict-task-uuid]",
    "invalidApiKey": "no Bearer key, or account_error_status 401 [rest/account-invalid-api-key-401]",
    "insufficientCredits": "account_error_status 402, or reject_status 402 [rest/account-insufficient-credits-402]",
    "insufficientPermissions": "account_error_status 403 [rest/account-forbidden-403]",
    "rateLimitExceeded": "rate_limit_per_second or burst_429 [rest/rate-limited-429]",
    "uploadFailed": "the PUT to uploadEndpoint failed [rest/upload-failed]",
    "timeoutProvider": "an injected task failure, the default task_failure_code [getResponse/error-top-level]",
    "inferenceError": "the task failed inside the emulator, or task_failure_code [getResponse/error-nested-data-item]",
    "taskFailedOrNotFound": "getResponse/getTaskDetails for a task not held or forgotten [getResponse/not-found]",
}

# Codes a task may fail with after acceptance (the choices for task_failure_code).
TASK_FAILURE_CODES = ("timeoutProvider", "inferenceError", "uploadFailed")

# Where invalidParameter errors point, as the contract's error envelope does.
MODEL_DOCUMENTATION_URL = "https://runware.ai/models/prunaai-p-image-upscale"


class ApiError(Exception):
    """One entry of an ``errors`` array, with the HTTP status it gives a request it fails alone.

    Fields that are None are left out of the JSON, as in the contract's fixtures.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        parameter: str | None = None,
        http_status: int = 400,
        task_type: str | None = None,
        task_uuid: str | None = None,
        documentation: str | None = None,
    ) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"{code!r} is not in the emulator's registry of Runware error codes")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.parameter = parameter
        self.http_status = http_status
        self.task_type = task_type
        self.task_uuid = task_uuid
        self.documentation = documentation

    def for_task(self, task_type: Any, task_uuid: Any) -> ApiError:
        """The same error scoped to a task (values that are not strings are left out)."""
        return ApiError(
            self.code,
            self.message,
            parameter=self.parameter,
            http_status=self.http_status,
            task_type=task_type if isinstance(task_type, str) else None,
            task_uuid=task_uuid if isinstance(task_uuid, str) else None,
            documentation=self.documentation,
        )

    def to_json(self) -> dict[str, Any]:
        fields = {
            "code": self.code,
            "message": self.message,
            "parameter": self.parameter,
            "taskType": self.task_type,
            "taskUUID": self.task_uuid,
            "documentation": self.documentation,
        }
        return {name: value for name, value in fields.items() if value is not None}


def invalid(parameter: str | None, reason: str) -> ApiError:
    """invalidParameter naming the field (dotted path); the contract knows no per-field codes."""
    message = f"Invalid value for {parameter} parameter: {reason}." if parameter else f"Invalid request: {reason}."
    return ApiError("invalidParameter", message, parameter=parameter, documentation=MODEL_DOCUMENTATION_URL)


def image_error(reason: str) -> ApiError:
    """The input image could not be fetched or decoded: invalidParameter on inputs.image."""
    return invalid("inputs.image", f"the input image could not be used: {reason}")


def conflict(task_type: str, task_uuid: str) -> ApiError:
    return ApiError("conflictTaskUUID", f"Task {task_uuid} already exists.", task_type=task_type, task_uuid=task_uuid)


def not_found(task_type: Any, task_uuid: Any) -> ApiError:
    return ApiError("taskFailedOrNotFound", "Task failed or not found.", http_status=200).for_task(task_type, task_uuid)


def rate_limited() -> ApiError:
    return ApiError("rateLimitExceeded", "Too many requests.", http_status=429)


def inference_error(message: str) -> ApiError:
    return ApiError("inferenceError", message, http_status=500)


def account_refusal(status: int, first_task_type: Any) -> HttpResponse:
    """A 401/402/403 about the key, the balance or the permission: one error, no taskUUID."""
    if status == 401:
        # Runware's own example, verbatim [rest/account-invalid-api-key-401].
        error = ApiError(
            "invalidApiKey",
            "Invalid API key. Get one at https://my.runware.ai/signup",
            parameter="apiKey",
            task_type="authentication",
            http_status=401,
        )
    elif status == 402:
        error = ApiError("insufficientCredits", "Insufficient credits.", http_status=402)
    elif status == 403:
        error = ApiError(
            "insufficientPermissions", "The API key does not have permission for this request.", http_status=403
        )
    else:
        raise ValueError(f"no account-level error for HTTP {status}")
    if status != 401 and isinstance(first_task_type, str):
        error = error.for_task(first_task_type, None)
    return HttpResponse.json(status, {"errors": [error.to_json()]})


def request_wide_failure(error: ApiError, payload: Any, headers: dict[str, str] | None = None) -> HttpResponse:
    """The same error scoped to every task of the request (one unscoped error if there are no tasks)."""
    tasks = [task for task in payload if isinstance(task, dict)] if isinstance(payload, list) else []
    items = [error.for_task(task.get("taskType"), task.get("taskUUID")).to_json() for task in tasks]
    return HttpResponse.json(error.http_status, {"errors": items or [error.to_json()]}, headers)


def first_task_type(payload: Any) -> Any:
    if isinstance(payload, list) and payload and isinstance(payload[0], dict):
        return payload[0].get("taskType")
    return None


def redacted(url: str) -> str:
    """The URL without its query: presigned URLs carry credentials there, and messages end up in job records."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
