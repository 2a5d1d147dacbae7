"""The API: one POST of a JSON array of tasks in, Runware's envelope out.

Order of checks for a request: key (401), rate_limit_per_second, burst_429, rate_5xx, body shape,
reject_rate, then each task. A request whose tasks all fail answers with the HTTP status of the first error; a request
with successes and failures answers 200 with both ``data`` and ``errors``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from local.runware_emulator.activity import Activity, Counters
from local.runware_emulator.errors import ApiError, invalid, request_wide_failure
from local.runware_emulator.fault_state import FaultState
from local.runware_emulator.faults import FaultConfig
from local.runware_emulator.processing import TaskRunner
from local.runware_emulator.protocol import ERROR, SUCCESS, HttpResponse
from local.runware_emulator.rate_limit import retry_after_header
from local.runware_emulator.tasks import TaskRecord, TaskStore
from local.runware_emulator.validation import validate_upscale

_SERVER_ERROR_CODES = {
    500: "internalServerError",
    502: "badGateway",
    503: "serviceUnavailable",
    504: "gatewayTimeout",
}
_REJECT_CODES = {400: "invalidParameter", 402: "insufficientCredits"}


def _rate_limited() -> ApiError:
    return ApiError("rateLimitExceeded", "Too many requests.", http_status=429)


@dataclass(frozen=True)
class _TaskOutcome:
    item: dict[str, Any]
    is_error: bool
    http_status: int = 200


class ApiHandler:
    """Answers API requests: upscale, getResponse and getTaskDetails tasks."""

    def __init__(
        self, *, tasks: TaskStore, faults: FaultState, runner: TaskRunner, activity: Activity, counters: Counters
    ) -> None:
        self._tasks = tasks
        self._faults = faults
        self._runner = runner
        self._activity = activity
        self._counters = counters
        self._requests_lock = threading.Lock()
        self._requests: list[Any] = []

    @property
    def requests(self) -> list[Any]:
        with self._requests_lock:
            return list(self._requests)

    def forget_requests(self) -> None:
        with self._requests_lock:
            self._requests.clear()

    def handle(self, body: bytes, authorization: str | None) -> HttpResponse:
        response = self._answer(body, authorization)
        self._counters.count_response(response.status)
        return response

    def _answer(self, body: bytes, authorization: str | None) -> HttpResponse:
        try:
            payload: Any = json.loads(body)
            parsed = True
        except ValueError:
            payload = body.decode("utf-8", errors="replace")
            parsed = False
        with self._requests_lock:
            self._requests.append(payload)
        self._counters.add("requests")
        faults = self._faults.current()

        scheme, _, key = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            refusal = ApiError(
                "invalidApiKey", "Missing or empty API key: send Authorization: Bearer <key>.", http_status=401
            )
            return request_wide_failure(refusal, payload)

        wait = self._faults.take_rate_limit()
        if wait is not None:
            return request_wide_failure(_rate_limited(), payload, {"Retry-After": retry_after_header(wait)})

        injected = self._draw_request_fault(faults)
        if injected is not None:
            headers = {"Retry-After": str(faults.retry_after_seconds)} if injected.http_status == 429 else {}
            return request_wide_failure(injected, payload, headers)

        if not parsed or not isinstance(payload, list) or not payload:
            problem = ApiError("invalidRequestBody", "The body must be a non-empty JSON array of task objects.")
            return HttpResponse.json(400, {"errors": [problem.to_json()]})

        has_upscale = any(isinstance(task, dict) and task.get("taskType") == "upscale" for task in payload)
        if has_upscale and self._faults.draw(faults.reject_rate):
            status = faults.reject_status
            refusal = ApiError(
                _REJECT_CODES[status], f"Request refused with HTTP {status} (injected fault).", http_status=status
            )
            return request_wide_failure(refusal, payload)

        outcomes = [self._handle_task(task, payload, faults) for task in payload]
        data = [outcome.item for outcome in outcomes if not outcome.is_error]
        errors = [outcome for outcome in outcomes if outcome.is_error]
        if not errors:
            return HttpResponse.json(200, {"data": data})
        error_items = [outcome.item for outcome in errors]
        if data:
            return HttpResponse.json(200, {"data": data, "errors": error_items})
        return HttpResponse.json(errors[0].http_status, {"errors": error_items})

    def _draw_request_fault(self, faults: FaultConfig) -> ApiError | None:
        if self._faults.take_burst_429():
            return _rate_limited()
        if self._faults.draw(faults.rate_5xx):
            status = faults.status_5xx
            code = _SERVER_ERROR_CODES.get(status, "serverError")
            return ApiError(code, f"Server error HTTP {status} (injected fault).", http_status=status)
        return None

    def _handle_task(self, task: Any, batch: list[Any], faults: FaultConfig) -> _TaskOutcome:
        if not isinstance(task, dict):
            problem = ApiError("invalidRequestBody", "Each element of the body must be a task object.")
            return _TaskOutcome(problem.to_json(), True, problem.http_status)
        task_type = task.get("taskType")
        raw_uuid = task.get("taskUUID")
        try:
            if task_type == "upscale":
                return self._submit_upscale(task, batch, faults)
            if task_type == "getResponse":
                return self._get_response(task)
            if task_type == "getTaskDetails":
                return self._get_task_details(task)
            raise invalid("taskType", "must be upscale, getResponse or getTaskDetails")
        except ApiError as error:
            scoped = error.for_task(
                task_type if isinstance(task_type, str) else None, raw_uuid if isinstance(raw_uuid, str) else None
            )
            return _TaskOutcome(scoped.to_json(), True, scoped.http_status)

    def _find_record(self, task: Mapping[str, Any]) -> TaskRecord:
        task_uuid = task.get("taskUUID")
        if not isinstance(task_uuid, str) or not task_uuid:
            raise invalid("taskUUID", "must be the UUID of a submitted task")
        record = self._tasks.get(task_uuid)
        if record is None:
            raise ApiError("taskNotFound", f"No task with taskUUID {task_uuid}.", parameter="taskUUID", http_status=404)
        return self._tasks.snapshot(record)

    def _get_response(self, task: Mapping[str, Any]) -> _TaskOutcome:
        record = self._find_record(task)
        if record.status == SUCCESS and record.result is not None:
            return _TaskOutcome({**record.result, "status": SUCCESS}, False)
        if record.status == ERROR and record.error is not None:
            return _TaskOutcome({**record.error, "status": ERROR}, True, 200)
        return _TaskOutcome(record.processing_item(), False)

    def _get_task_details(self, task: Mapping[str, Any]) -> _TaskOutcome:
        record = self._find_record(task)
        details = {
            "taskType": "getTaskDetails",
            "taskUUID": record.task_uuid,
            "status": record.status,
            "request": record.request_batch,
            "response": record.response_envelope(),
        }
        return _TaskOutcome(details, False)

    def _submit_upscale(self, task: dict[str, Any], batch: list[Any], faults: FaultConfig) -> _TaskOutcome:
        request = validate_upscale(task)
        record = TaskRecord(
            task_uuid=request.task_uuid,
            task_type="upscale",
            delivery_method=request.delivery_method,
            request=task,
            request_batch=batch,
            accepted_at=self._tasks.now(),
            generation=self._activity.generation,
        )
        if not self._tasks.add(record):
            raise ApiError(
                "duplicateTaskUUID",
                f"A task with taskUUID {request.task_uuid} already exists.",
                parameter="taskUUID",
            )
        fate = self._faults.draw_fate(faults, is_async=request.delivery_method == "async")
        self._activity.begin()
        if request.delivery_method == "async":
            self._runner.queue(record, request, fate)
            return _TaskOutcome({"taskType": "upscale", "taskUUID": request.task_uuid}, False)
        self._runner.run(record, request, fate)
        done = self._tasks.snapshot(record)
        if done.status == SUCCESS and done.result is not None:
            return _TaskOutcome(done.result, False)
        return _TaskOutcome(done.error or {}, True, done.error_http_status or 500)
