"""A small client for Runware's REST API: JSON arrays of tasks, results matched by taskUUID.

Transient failures (429, 5xx, timeouts, connection errors) are retried inside a deadline: a 429
when its Retry-After says, the others with exponential backoff and full jitter. Each container
also spaces its requests out once it has been refused for the rate (upscaler.request_pacing).
Other answers are parsed, never raised: per-task errors carry Runware's code and message; a
refusal of the account (key, balance, permission) comes back once as `account_error`, never as a
failure of each task. The shapes handled are those of tests/contract/runware/, each with its source.
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

from upscaler import json_bodies
from upscaler.models import TaskError
from upscaler.request_pacing import RequestPacer

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
PERMANENT_STATUSES = frozenset({400, 401, 402, 403, 404})
# 401 no valid key, 402 balance insufficient, 403 key lacks permission (Runware's errors page).
ACCOUNT_STATUSES = frozenset({401, 402, 403})
# Retries of a 429 go a little after its Retry-After, a little later each time, so that containers
# told the same wait do not all come back at the same instant.
RETRY_AFTER_JITTER_SECONDS = 0.1
# Codes that describe the key, the balance or the permission rather than one task
# (Runware/runware-python runware/errors.py: its auth and quota codes).
ACCOUNT_CODES = frozenset(
    {
        "invalidApiKey",
        "missingApiKey",
        "insufficientCredits",
        "insufficientPermissions",
        "quotaExceeded",
        "paymentRequired",
        "unauthorized",
        "forbidden",
        "permissionDenied",
        "authenticationFailed",
        "authFailed",
        "invalidAuthentication",
        "invalidCredentials",
        "missingAuthentication",
        "tokenExpired",
        "tokenInvalid",
        "tokenMissing",
        "tokenRevoked",
        "accountSuspended",
        "accountDisabled",
        "organizationSuspended",
        "organizationDisabled",
        "workspaceSuspended",
        "workspaceDisabled",
    }
)
# The SDK also classes any code naming an API key, credits or a balance as the account's.
ACCOUNT_CODE_PARTS = ("ApiKey", "Credits", "Balance")
# conflictTaskUUID is Runware's answer to a taskUUID it already holds (the SDKs treat it as submitted);
# the looser hints stay for codes of that meaning seen elsewhere, since a re-submission is not a failure.
DUPLICATE_TASK_HINTS = ("conflicttaskuuid", "duplicate", "alreadyexists", "existingtask")
# getResponse statuses meaning "not done yet": processing and pending are documented, the others older.
NOT_DONE_STATUSES = frozenset({"processing", "pending", "queued", "scheduled", "waiting"})
FAILED_STATUSES = frozenset({"error", "failed"})
MAX_TASK_UUID_CHARS = 100


class RunwareUnavailable(Exception):
    """Runware could not be reached or kept refusing within the time budget; try again later."""


@dataclass
class BatchResponse:
    """What one request returned, keyed by taskUUID.

    `account_error` is set when Runware refused the account (key, balance, permission): it describes
    no task, so it is never copied into `errors`. `malformed` counts items that could not be read;
    they are skipped and hide nothing else.
    """

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, TaskError] = field(default_factory=dict)
    status_code: int = 200
    account_error: TaskError | None = None
    malformed: int = 0

    def error_for(self, task_uuid: str) -> TaskError | None:
        return self.errors.get(task_uuid)


def is_duplicate_task(error: TaskError) -> bool:
    """Runware already holds a task with this UUID: it runs and will be billed, so it counts as submitted."""
    code = error.code.replace("_", "").lower()
    return any(hint in code for hint in DUPLICATE_TASK_HINTS)


def is_account_error(error: TaskError, status_code: int | None = None) -> bool:
    """The refusal is about the account, not the task: retrying later (after a fix) can succeed."""
    if status_code in ACCOUNT_STATUSES or error.task_type == "authentication":
        return True
    if error.code in {f"http{status}" for status in ACCOUNT_STATUSES}:
        return True  # made by _parse from a bodiless 401/402/403
    return error.code in ACCOUNT_CODES or any(part in error.code for part in ACCOUNT_CODE_PARTS)


def is_not_found(error: TaskError) -> bool:
    """Runware no longer finds the task (taskFailedOrNotFound and the like): it may well have finished,
    so its output must be looked for before anything else is concluded."""
    code = error.code.replace("_", "").lower()
    return "notfound" in code or code in ("taskexpired", "taskcancelled")


class RunwareClient:
    def __init__(
        self,
        api_url: str,
        api_key: Callable[[], str],
        *,
        http: httpx.Client | None = None,
        timeout_seconds: float = 20.0,
        max_attempts: int = 5,
        max_throttled_attempts: int = 30,
        least_request_spacing_seconds: float = 0.0,
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
        self.max_throttled_attempts = max_throttled_attempts
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._pacers = threading.local()
        self.least_request_spacing_seconds = least_request_spacing_seconds
        self.requests_sent = 0

    @property
    def pacer(self) -> RequestPacer:
        """The spacing learnt by the thread sending: in Lambda a container's invocations all run on one
        thread, so this is the container's own; where one process runs several invocations at once
        (the local stack's concurrent pollers), each keeps its own, as separate containers would."""
        pacer: RequestPacer | None = getattr(self._pacers, "pacer", None)
        if pacer is None:
            pacer = self._pacers.pacer = RequestPacer(self.least_request_spacing_seconds)
        return pacer

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
        """POST the tasks in one request; retry transient failures until `deadline` (monotonic).

        A 429 is retried when its Retry-After says, for as long as the deadline allows (up to
        max_throttled_attempts): the request was refused for the account's rate, not for anything
        in it. Other transient failures get max_attempts in all. The first try waits for this
        container's learnt spacing (upscaler.request_pacing) first.
        """
        task_uuids = [str(task["taskUUID"]) for task in tasks]
        body = json.dumps(list(tasks)).encode()
        paced = _within(self.pacer.wait_seconds(), deadline)
        if paced > 0:
            self._sleep(paced)
        attempt = throttled = failed = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            sent_at = time.monotonic()
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
                    self.pacer.accepted(first_try=attempt == 1, sent_at=sent_at)
                    return _parse(response, task_uuids)
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
                if response.status_code == 429:
                    self.pacer.refused(retry_after, first_try=attempt == 1)
            if retry_after is not None and response.status_code == 429:
                throttled += 1
                pause = retry_after + self._rng.uniform(0, RETRY_AFTER_JITTER_SECONDS * throttled)
                out_of_attempts = throttled >= self.max_throttled_attempts
            else:
                failed += 1
                pause = self._backoff(failed, retry_after)
                out_of_attempts = failed >= self.max_attempts
            out_of_time = deadline is not None and time.monotonic() + pause >= deadline
            if out_of_attempts or out_of_time:
                raise RunwareUnavailable(f"Runware unavailable after {attempt} attempt(s): {problem}")
            self._sleep(pause)

    def get_responses(self, task_uuids: Iterable[str], *, deadline: float | None = None) -> BatchResponse:
        tasks = [{"taskType": "getResponse", "taskUUID": task_uuid} for task_uuid in task_uuids]
        return self.send(tasks, deadline=deadline) if tasks else BatchResponse()

    def _backoff(self, failure: int, retry_after: float | None) -> float:
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** (failure - 1))
        jittered = self._rng.uniform(0, ceiling)
        return retry_after + jittered if retry_after is not None else jittered


def _within(pause: float, deadline: float | None) -> float:
    """A wait cut short where it would pass the deadline."""
    return pause if deadline is None else max(0.0, min(pause, deadline - time.monotonic()))


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
    """Sort an answer into results, per-task errors and an account refusal; never raises on its content."""
    batch = BatchResponse(status_code=response.status_code)
    payload = _json_body(response, batch)
    wanted = set(task_uuids)
    account = response.status_code in ACCOUNT_STATUSES
    unscoped: list[TaskError] = []
    for raw in _entries(payload.get("data"), batch):
        task_uuid = _task_uuid(raw)
        if task_uuid is None:
            batch.malformed += 1
        elif _is_failed_item(raw):
            _file_error(batch, TaskError.from_json(raw), wanted, unscoped, account)
        elif not _is_done(batch.items.get(task_uuid)) or _is_done(raw):
            # REST polling repeats cumulative state: a finished item is never replaced by a running one.
            batch.items[task_uuid] = raw
    for raw in _entries(payload.get("errors"), batch):
        _file_error(batch, TaskError.from_json(raw), wanted, unscoped, account)
    if response.status_code >= 400 and not unscoped and not batch.errors and batch.account_error is None:
        unscoped.append(TaskError(f"http{response.status_code}", _text_excerpt(response)))
    if account and batch.account_error is None:
        batch.account_error = unscoped[0] if unscoped else TaskError(f"http{response.status_code}", "refused")
        return batch
    # An error that names no task (and is not about the account) applies to every task without an answer.
    if unscoped:
        first = unscoped[0]
        for task_uuid in task_uuids:
            if task_uuid not in batch.items and task_uuid not in batch.errors:
                batch.errors[task_uuid] = TaskError(
                    first.code, first.message, first.parameter, task_uuid, first.task_type
                )
    return batch


def _json_body(response: httpx.Response, batch: BatchResponse) -> dict[str, Any]:
    if not response.content.strip():
        return {}
    try:
        # Values nested too deep read as null, so one hostile item does not hide the others.
        payload = json_bodies.loads(response.content)
    except (ValueError, RecursionError):
        batch.malformed += 1
        return {}
    if isinstance(payload, list):
        # The SDKs accept a bare list of items where the envelope is expected.
        return {"data": payload}
    if not isinstance(payload, dict):
        batch.malformed += 1
        return {}
    return payload


def _entries(value: Any, batch: BatchResponse) -> list[dict[str, Any]]:
    if value is None:
        return []
    entries = [value] if isinstance(value, dict) else value if isinstance(value, list) else None
    if entries is None:
        batch.malformed += 1
        return []
    readable = [entry for entry in entries if isinstance(entry, dict)]
    batch.malformed += len(entries) - len(readable)
    return readable


def _file_error(
    batch: BatchResponse, error: TaskError, wanted: set[str], unscoped: list[TaskError], account: bool
) -> None:
    if account or is_account_error(error):
        batch.account_error = batch.account_error or error
    elif error.task_uuid is None:
        unscoped.append(error)
    elif error.task_uuid in wanted:
        batch.errors.setdefault(error.task_uuid, error)
    else:
        # An error about a task this request did not send belongs to nobody here.
        batch.malformed += 1


def _task_uuid(item: dict[str, Any]) -> str | None:
    value = item.get("taskUUID")
    return value if isinstance(value, str) and value and len(value) <= MAX_TASK_UUID_CHARS else None


def _status(item: dict[str, Any] | None) -> str:
    status = item.get("status") if item else None
    return status.lower() if isinstance(status, str) else ""


def _is_failed_item(item: dict[str, Any]) -> bool:
    return _status(item) in FAILED_STATUSES or isinstance(item.get("error"), dict)


def _is_done(item: dict[str, Any] | None) -> bool:
    return item is not None and _status(item) not in NOT_DONE_STATUSES


def _text_excerpt(response: httpx.Response) -> str:
    return response.content[:500].decode(errors="replace") or response.reason_phrase
