"""A small client for Runware's REST API: JSON arrays of tasks, results matched by taskUUID.

Transient failures (429, 5xx, timeouts, connection errors) are retried with exponential backoff
and full jitter inside a deadline, honouring Retry-After. 400/401/402/403 are answers, not
failures: they come back as per-task errors carrying Runware's code and message.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from upscaler.models import TaskError

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
PERMANENT_STATUSES = frozenset({400, 401, 402, 403, 404})
# Error codes under which Runware says it already holds a task with this UUID. Not documented:
# matched loosely, since a re-submission after a crash must count as accepted, not failed.
DUPLICATE_TASK_HINTS = ("duplicate", "alreadyexists", "existingtask")


class RunwareUnavailable(Exception):
    """Runware could not be reached or kept refusing within the time budget; try again later."""


@dataclass
class BatchResponse:
    """What one request returned, keyed by taskUUID."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, TaskError] = field(default_factory=dict)
    status_code: int = 200
    account_error: TaskError | None = None

    def error_for(self, task_uuid: str) -> TaskError | None:
        return self.errors.get(task_uuid)


def is_duplicate_task(error: TaskError) -> bool:
    code = error.code.replace("_", "").lower()
    return any(hint in code for hint in DUPLICATE_TASK_HINTS)


def is_not_found(error: TaskError) -> bool:
    return "notfound" in error.code.replace("_", "").lower()


class RunwareClient:
    def __init__(
        self,
        api_url: str,
        api_key: Callable[[], str],
        *,
        http: httpx.Client | None = None,
        timeout_seconds: float = 20.0,
        max_attempts: int = 5,
        backoff_base_seconds: float = 0.5,
        backoff_max_seconds: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.api_url = api_url
        self._api_key = api_key
        self._http = http
        self._http_lock = threading.Lock()
        self._timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.requests_sent = 0

    @property
    def http(self) -> httpx.Client:
        """One connection pool per container, kept across warm invocations. Made on first use: its
        TLS context costs tens of milliseconds, which a reconcile run with nothing to poll never needs."""
        if self._http is None:
            with self._http_lock:
                if self._http is None:
                    self._http = httpx.Client(
                        timeout=httpx.Timeout(self._timeout_seconds, connect=5.0),
                        limits=httpx.Limits(max_connections=10, max_keepalive_connections=5),
                    )
        return self._http

    def send(self, tasks: Sequence[Mapping[str, Any]], *, deadline: float | None = None) -> BatchResponse:
        """POST the tasks in one request; retry transient failures until `deadline` (monotonic)."""
        task_uuids = [str(task["taskUUID"]) for task in tasks]
        body = json.dumps(list(tasks)).encode()
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                self.requests_sent += 1
                response = self.http.post(
                    self.api_url,
                    content=body,
                    headers={
                        "Authorization": f"Bearer {self._api_key()}",
                        "Content-Type": "application/json",
                        "Accept": "application/json",
                    },
                )
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if response.status_code not in RETRYABLE_STATUSES:
                    return _parse(response, task_uuids)
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            pause = self._backoff(attempt, retry_after)
            out_of_time = deadline is not None and time.monotonic() + pause >= deadline
            if attempt >= self.max_attempts or out_of_time:
                raise RunwareUnavailable(f"Runware unavailable after {attempt} attempt(s): {problem}")
            self._sleep(pause)

    def get_responses(self, task_uuids: Iterable[str], *, deadline: float | None = None) -> BatchResponse:
        tasks = [{"taskType": "getResponse", "taskUUID": task_uuid} for task_uuid in task_uuids]
        return self.send(tasks, deadline=deadline) if tasks else BatchResponse()

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** (attempt - 1))
        jittered = self._rng.uniform(0, ceiling)
        return max(jittered, retry_after) if retry_after is not None else jittered


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _parse(response: httpx.Response, task_uuids: list[str]) -> BatchResponse:
    batch = BatchResponse(status_code=response.status_code)
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        payload = {}
    for item in payload.get("data") or []:
        if isinstance(item, dict) and item.get("taskUUID"):
            batch.items[str(item["taskUUID"])] = item
    unscoped: list[TaskError] = []
    for raw in payload.get("errors") or []:
        if not isinstance(raw, dict):
            continue
        error = TaskError.from_json(raw)
        if error.task_uuid in task_uuids:
            batch.errors[error.task_uuid] = error
        else:
            unscoped.append(error)
    if response.status_code >= 400 and not unscoped and not batch.errors:
        unscoped.append(
            TaskError(code=f"http{response.status_code}", message=response.text[:500] or response.reason_phrase)
        )
    # An error that names no task (a bad key, say) applies to every task without an answer.
    if unscoped:
        for task_uuid in task_uuids:
            if task_uuid not in batch.items and task_uuid not in batch.errors:
                first = unscoped[0]
                batch.errors[task_uuid] = TaskError(first.code, first.message, first.parameter, task_uuid)
    return batch
