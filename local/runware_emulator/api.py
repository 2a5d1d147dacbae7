"""The API: one POST of a JSON array of tasks in, Runware's envelope out (shapes from the contract).

Order of checks for a request: key (401: no key, or with ``api_key`` set any other key),
account_error_status, rate_limit_per_second, burst_429, rate_5xx, body shape, reject_rate, then
each task. Account-level refusals carry one error and no taskUUID. A request whose tasks all fail
answers with the HTTP status of the first error (with ``data: []`` beside conflictTaskUUID and
getResponse errors, as the contract shows); a request with successes and failures answers 200 with
both ``data`` and ``errors``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from local.runware_emulator.activity import Activity, Counters
from local.runware_emulator.errors import (
    ApiError,
    account_refusal,
    conflict,
    first_task_type,
    invalid,
    not_found,
    rate_limited,
    request_wide_failure,
)
from local.runware_emulator.fault_state import FaultState
from local.runware_emulator.faults import FaultConfig
from local.runware_emulator.hostile import hostile_items
from local.runware_emulator.processing import TaskRunner
from local.runware_emulator.protocol import ERROR, SUCCESS, HttpResponse
from local.runware_emulator.rate_limit import retry_after_header
from local.runware_emulator.tasks import TaskRecord, TaskStore
from local.runware_emulator.validation import validate_upscale

_SERVER_ERROR_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass(frozen=True)
class _TaskOutcome:
    item: dict[str, Any]
    is_error: bool
    http_status: int = 200
    # conflictTaskUUID and getResponse errors come with an empty data list beside them.
    empty_data_beside: bool = False


class ApiHandler:
    """Answers API requests: upscale, getResponse and getTaskDetails tasks."""

    def __init__(
        self,
        *,
        tasks: TaskStore,
        faults: FaultState,
        runner: TaskRunner,
        activity: Activity,
        counters: Counters,
        api_key: str | None = None,
    ) -> None:
        # None: any non-empty Bearer key is accepted; otherwise only this one, as Runware accepts only
        # the account's own keys.
        self.api_key = api_key
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
            return account_refusal(401, first_task_type(payload))
        if self.api_key is not None and key.strip() != self.api_key:
            return account_refusal(401, first_task_type(payload))
        if faults.account_error_status is not None:
            return account_refusal(faults.account_error_status, first_task_type(payload))

        wait = self._faults.take_rate_limit()
        if wait is not None:
            return request_wide_failure(rate_limited(), payload, {"Retry-After": retry_after_header(wait)})
        if self._faults.take_burst_429():
            return request_wide_failure(rate_limited(), payload, {"Retry-After": str(faults.retry_after_seconds)})
        if self._faults.draw(faults.rate_5xx):
            # The body of a 5xx is not documented: plain text, so no shape is invented for it.
            status = faults.status_5xx
            reason = _SERVER_ERROR_REASONS.get(status, "Server Error")
            return HttpResponse.text(status, f"HTTP {status} {reason} (injected fault).")

        if not parsed or not isinstance(payload, list) or not payload:
            problem = invalid(None, "the body must be a non-empty JSON array of task objects")
            return HttpResponse.json(400, {"errors": [problem.to_json()]})

        has_upscale = any(isinstance(task, dict) and task.get("taskType") == "upscale" for task in payload)
        if has_upscale and self._faults.draw(faults.reject_rate):
            if faults.reject_status == 402:
                return account_refusal(402, first_task_type(payload))
            return request_wide_failure(invalid(None, "request refused (injected fault)"), payload)

        outcomes = [self._handle_task(task, faults) for task in payload]
        return self._envelope(outcomes, payload, faults)

    def _envelope(self, outcomes: list[_TaskOutcome], payload: list[Any], faults: FaultConfig) -> HttpResponse:
        data = [outcome.item for outcome in outcomes if not outcome.is_error]
        errors = [outcome for outcome in outcomes if outcome.is_error]
        error_items = [outcome.item for outcome in errors]
        polls = any(isinstance(task, dict) and task.get("taskType") == "getResponse" for task in payload)
        if polls and faults.getresponse_junk_items > 0:
            return _with_junk(data, error_items, hostile_items(faults.getresponse_junk_items))
        if not errors:
            return HttpResponse.json(200, {"data": data})
        if data:
            return HttpResponse.json(200, {"data": data, "errors": error_items})
        if any(outcome.empty_data_beside for outcome in errors):
            return HttpResponse.json(errors[0].http_status, {"data": [], "errors": error_items})
        return HttpResponse.json(errors[0].http_status, {"errors": error_items})

    def _handle_task(self, task: Any, faults: FaultConfig) -> _TaskOutcome:
        if not isinstance(task, dict):
            problem = invalid(None, "each element of the body must be a task object")
            return _TaskOutcome(problem.to_json(), True, problem.http_status)
        task_type = task.get("taskType")
        try:
            if task_type == "upscale":
                return self._submit_upscale(task, faults)
            if task_type == "getResponse":
                return self._get_response(task, faults)
            if task_type == "getTaskDetails":
                return self._get_task_details(task)
            raise invalid("taskType", "must be upscale, getResponse or getTaskDetails")
        except ApiError as error:
            scoped = error.for_task(task_type, task.get("taskUUID"))
            beside = scoped.code in ("conflictTaskUUID", "taskFailedOrNotFound")
            return _TaskOutcome(scoped.to_json(), True, scoped.http_status, empty_data_beside=beside)

    def _find_record(self, task: Mapping[str, Any]) -> TaskRecord | None:
        task_uuid = task.get("taskUUID")
        if not isinstance(task_uuid, str) or not task_uuid:
            raise invalid("taskUUID", "must be the UUID of a submitted task")
        record = self._tasks.get(task_uuid)
        return None if record is None else self._tasks.snapshot(record)

    def _get_response(self, task: Mapping[str, Any], faults: FaultConfig) -> _TaskOutcome:
        record = self._find_record(task)
        forgotten = record is not None and self._tasks.finished_longer_ago(record, faults.forget_after_seconds)
        if record is None or forgotten:
            return _task_error(not_found("getResponse", task.get("taskUUID")).to_json(), faults)
        if record.status == SUCCESS and record.result is not None:
            return _TaskOutcome({**record.result, "status": SUCCESS}, False)
        if record.status == ERROR and record.error is not None:
            return _task_error(record.error, faults)
        return _TaskOutcome(record.processing_item(), False)

    def _get_task_details(self, task: Mapping[str, Any]) -> _TaskOutcome:
        # Documented to return past tasks: forget_after_seconds does not apply here.
        record = self._find_record(task)
        if record is None:
            raise not_found("getTaskDetails", task.get("taskUUID"))
        details = {
            "taskType": "getTaskDetails",
            "taskUUID": record.task_uuid,
            "request": record.request,
            "response": record.response_envelope(),
        }
        return _TaskOutcome(details, False)

    def _submit_upscale(self, task: dict[str, Any], faults: FaultConfig) -> _TaskOutcome:
        request = validate_upscale(task)
        record = TaskRecord(
            task_uuid=request.task_uuid,
            task_type="upscale",
            delivery_method=request.delivery_method,
            request=task,
            accepted_at=self._tasks.now(),
            generation=self._activity.generation,
        )
        if not self._tasks.add(record):
            raise conflict("upscale", request.task_uuid)
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


def _task_error(error: dict[str, Any], faults: FaultConfig) -> _TaskOutcome:
    """A failed or unknown task as getResponse reports it, in the configured contract shape."""
    if faults.getresponse_error_shape == "nested":
        item = {
            "taskType": error.get("taskType"),
            "taskUUID": error.get("taskUUID"),
            "status": ERROR,
            "error": {"code": error["code"], "message": error["message"]},
        }
        return _TaskOutcome({name: value for name, value in item.items() if value is not None}, False)
    return _TaskOutcome(error, True, 200, empty_data_beside=True)


def _with_junk(data: list[Any], errors: list[Any], junk: list[str]) -> HttpResponse:
    # Written as text: the hostile items are deeper than json.dumps goes, and hold NaN tokens.
    items = [json.dumps(item) for item in data] + junk
    body = '{"data": [' + ", ".join(items) + "]"
    if errors:
        body += ', "errors": ' + json.dumps(errors)
    return HttpResponse(200, (body + "}").encode())
