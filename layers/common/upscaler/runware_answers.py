"""Runware's answers, read in one place: an acknowledgement, a getResponse answer or a webhook body
becomes typed outcomes, and no other module reads Runware's raw fields.

Every shape read here is one of tests/contract/runware/, each with its source (Runware's
documentation or its official SDKs). Reading never raises on an answer's content: an item that
cannot be read is counted as malformed and hides nothing else; codes and messages are kept
(bounded), ids and URLs that are too long are dropped rather than cut.

Outcomes of one task:
- Accepted: the submission was acknowledged.
- AlreadySubmitted: Runware holds the taskUUID already (conflictTaskUUID); the task runs and is billed.
- Pending: getResponse says the task is not done yet.
- Succeeded: a finished task and its result.
- Failed: Runware's error for the task; `not_found` when Runware no longer knows the task.
And of a request as a whole: AccountRefusal (the key, the balance or the permission; no task's failure).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from typing import Any

from upscaler import json_bodies

# Bounds on what is kept of an answer: codes and messages are logged and stored whole up to these.
MAX_CODE_CHARS = 100
MAX_MESSAGE_CHARS = 1000
MAX_FIELD_CHARS = 200
MAX_URL_CHARS = 4096
MAX_TASK_UUID_CHARS = 100
# A task's cost in USD; outside this range (or not finite) it is not a cost DynamoDB can keep as-is.
MIN_COST = Decimal("1e-12")
MAX_COST = Decimal(1_000_000)
# A webhook refusal explains itself with at most this many problems; the body is never echoed back.
MAX_PROBLEMS = 3

# The account, not a task: 401 no valid API key, 402 balance insufficient, 403 the key lacks
# permission (https://runware.ai/docs/platform/errors, its HTTP status table).
ACCOUNT_STATUSES = frozenset({401, 402, 403})
# Runware's own invalidApiKey example carries taskType "authentication" and no taskUUID
# (https://runware.ai/docs/platform/errors).
ACCOUNT_TASK_TYPE = "authentication"
ACCOUNT_ERROR_CODES = frozenset(
    {
        "invalidApiKey",  # https://runware.ai/docs/platform/errors (its error example)
        "insufficientCredits",  # Runware/runware-python tests/test_errors.py (its quota case)
        "insufficientPermissions",  # Runware/runware-python runware/errors.py (_AUTH_CODES)
    }
)
# A taskUUID Runware holds already (Runware/sdk-python runware/base.py compares the code exactly;
# Runware/runware-typescript test/errors.test.ts): a re-submission, not a failure.
CONFLICT_TASK_UUID = "conflictTaskUUID"
# Runware no longer knows the task: Runware/runware-python runware/errors.py, _NOT_FOUND_CODES
# (unknownModel left out: it is about the model, not the task) and its rule for codes ending in
# NotFound or Expired. Such a task may well have finished: its output must be looked for.
# The PUT of a finished result to uploadEndpoint failed: Runware/runware-python runware/errors.py
# (a provider-side, retryable code). The result was made and billed; Runware may still hold it.
UPLOAD_FAILED = "uploadFailed"
NOT_FOUND_CODES = frozenset({"taskFailedOrNotFound", "taskCancelled"})
NOT_FOUND_SUFFIXES = ("NotFound", "Expired")
# getResponse statuses meaning "not done yet": processing and pending are documented
# (https://runware.ai/docs/platform/task-polling, .../utilities/task-responses); the others are the
# older not-done statuses the SDKs know.
NOT_DONE_STATUSES = frozenset({"processing", "pending", "queued", "scheduled", "waiting"})
FAILED_STATUSES = frozenset({"error", "failed"})


@dataclass(frozen=True)
class TaskError:
    """Runware's error object; codes are still being standardised, so every field is kept (bounded)."""

    code: str
    message: str
    parameter: str | None = None
    task_uuid: str | None = None
    task_type: str | None = None
    # Where Runware still holds the result, if the error says (not documented for any error: an
    # uploadFailed that carries an imageURL, at the top level or in its nested error, is read so).
    image_url: str | None = None

    @property
    def upload_failed(self) -> bool:
        """Runware made (and billed) the result but its PUT to uploadEndpoint failed."""
        return self.code == UPLOAD_FAILED


@dataclass(frozen=True)
class TaskResult:
    """A finished upscale as Runware reports it (sync data item, getResponse item or webhook body)."""

    task_uuid: str
    image_uuid: str | None
    image_url: str | None
    cost: Decimal | None


@dataclass(frozen=True)
class Accepted:
    """The submission of the task was acknowledged."""

    task_uuid: str


@dataclass(frozen=True)
class AlreadySubmitted:
    """Runware holds this taskUUID already (conflictTaskUUID): the task runs and will be billed."""

    error: TaskError

    @property
    def task_uuid(self) -> str | None:
        return self.error.task_uuid


@dataclass(frozen=True)
class Pending:
    """getResponse: the task is not done yet (`status` as Runware said it, lower case)."""

    task_uuid: str
    status: str


@dataclass(frozen=True)
class Succeeded:
    result: TaskResult

    @property
    def task_uuid(self) -> str:
        return self.result.task_uuid


@dataclass(frozen=True)
class Failed:
    error: TaskError

    @property
    def task_uuid(self) -> str | None:
        return self.error.task_uuid

    @property
    def not_found(self) -> bool:
        """Runware no longer knows the task: it may well have finished, so look for its output first."""
        code = self.error.code
        return code in NOT_FOUND_CODES or code.endswith(NOT_FOUND_SUFFIXES)


@dataclass(frozen=True)
class AccountRefusal:
    """Runware refused the request for the account (key, balance, permission): it describes no task."""

    error: TaskError
    status_code: int


SubmissionOutcome = Accepted | AlreadySubmitted | Failed
PollOutcome = Pending | Succeeded | Failed
Report = Succeeded | Failed


@dataclass(frozen=True)
class SubmissionAnswer:
    """The answer to a submission: per task its outcome (a task absent here was left unanswered and
    may not have been accepted), or the account refusal (then no task has an outcome)."""

    status_code: int
    outcomes: dict[str, SubmissionOutcome] = field(default_factory=dict)
    account: AccountRefusal | None = None
    malformed: int = 0

    def outcome(self, task_uuid: str) -> SubmissionOutcome | None:
        return self.outcomes.get(task_uuid)


@dataclass(frozen=True)
class PollAnswer:
    """The answer to getResponse: per task what Runware said (nothing, for a task it did not mention),
    or the account refusal (then no task has an outcome)."""

    status_code: int
    outcomes: dict[str, PollOutcome] = field(default_factory=dict)
    account: AccountRefusal | None = None
    malformed: int = 0

    def outcome(self, task_uuid: str) -> PollOutcome | None:
        return self.outcomes.get(task_uuid)


@dataclass
class WebhookReports:
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


def is_account_refusal(error: TaskError, status_code: int | None = None) -> bool:
    """The refusal is about the account, not the task: retrying later (after a fix) can succeed."""
    return status_code in ACCOUNT_STATUSES or error.task_type == ACCOUNT_TASK_TYPE or error.code in ACCOUNT_ERROR_CODES


# --- acknowledgements and getResponse ------------------------------------------------------------


def read_submission(status_code: int, body: bytes, task_uuids: list[str]) -> SubmissionAnswer:
    """What Runware said of each submitted task. A 2xx that names no task accepted it (Runware may
    acknowledge with an empty list); a refused request (>= 400) that names other tasks but not this
    one leaves it unanswered; conflictTaskUUID means Runware holds the task already."""
    sorted_ = _sort(status_code, body, task_uuids)
    if sorted_.account is not None:
        return SubmissionAnswer(status_code, account=sorted_.account, malformed=sorted_.malformed)
    outcomes: dict[str, SubmissionOutcome] = {}
    for task_uuid in task_uuids:
        error = sorted_.errors.get(task_uuid)
        if error is not None:
            outcomes[task_uuid] = AlreadySubmitted(error) if error.code == CONFLICT_TASK_UUID else Failed(error)
        elif task_uuid in sorted_.items or status_code < 400:
            outcomes[task_uuid] = Accepted(task_uuid)
    return SubmissionAnswer(status_code, outcomes, None, sorted_.malformed)


def read_poll(status_code: int, body: bytes, task_uuids: list[str]) -> PollAnswer:
    """What getResponse said of each task: not done yet, its result, or its failure."""
    sorted_ = _sort(status_code, body, task_uuids)
    if sorted_.account is not None:
        return PollAnswer(status_code, account=sorted_.account, malformed=sorted_.malformed)
    outcomes: dict[str, PollOutcome] = {}
    malformed = sorted_.malformed
    for task_uuid in task_uuids:
        error = sorted_.errors.get(task_uuid)
        item = sorted_.items.get(task_uuid)
        if error is not None:
            outcomes[task_uuid] = Failed(error)
        elif item is not None and _status(item) in NOT_DONE_STATUSES:
            outcomes[task_uuid] = Pending(task_uuid, _status(item))
        elif item is not None:
            try:
                outcomes[task_uuid] = _report(item, task_uuid)
            except _Unreadable:
                malformed += 1  # finished, but neither a result nor an error: Runware will say again
    return PollAnswer(status_code, outcomes, None, malformed)


@dataclass
class _Sorted:
    items: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    errors: dict[str, TaskError] = field(default_factory=dict)
    account: AccountRefusal | None = None
    malformed: int = 0


def _sort(status_code: int, body: bytes, task_uuids: list[str]) -> _Sorted:
    """Sort an answer into items, per-task errors and an account refusal; never raises on its content."""
    sorted_ = _Sorted()
    payload = _json_body(body, sorted_)
    wanted = set(task_uuids)
    account = status_code in ACCOUNT_STATUSES
    account_error: TaskError | None = None
    unscoped: list[TaskError] = []

    def file_error(error: TaskError) -> None:
        nonlocal account_error
        if account or is_account_refusal(error):
            account_error = account_error or error
        elif error.task_uuid is None:
            unscoped.append(error)
        elif error.task_uuid in wanted:
            sorted_.errors.setdefault(error.task_uuid, error)
        else:
            sorted_.malformed += 1  # an error about a task this request did not send belongs to nobody here

    for raw in _entries(payload.get("data"), sorted_):
        task_uuid = _task_uuid(raw)
        if task_uuid is None:
            sorted_.malformed += 1
        elif _is_failed_item(raw):
            file_error(_task_error(raw))
        elif not _is_done(sorted_.items.get(task_uuid)) or _is_done(raw):
            # REST polling repeats cumulative state: a finished item is never replaced by a running one.
            sorted_.items[task_uuid] = raw
    for raw in _entries(payload.get("errors"), sorted_):
        file_error(_task_error(raw))
    if status_code >= 400 and not unscoped and not sorted_.errors and account_error is None:
        unscoped.append(TaskError(f"http{status_code}", _text_excerpt(status_code, body)))
    if account and account_error is None:
        account_error = unscoped[0] if unscoped else TaskError(f"http{status_code}", "refused")
    if account_error is not None:
        sorted_.account = AccountRefusal(account_error, status_code)
        return sorted_
    # An error that names no task (and is not about the account) applies to every task without an answer.
    if unscoped:
        first = unscoped[0]
        for task_uuid in task_uuids:
            if task_uuid not in sorted_.items and task_uuid not in sorted_.errors:
                sorted_.errors[task_uuid] = TaskError(
                    first.code, first.message, first.parameter, task_uuid, first.task_type
                )
    return sorted_


def _json_body(body: bytes, sorted_: _Sorted) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        # Values nested too deep read as null, so one hostile item does not hide the others.
        payload = json_bodies.loads(body)
    except (ValueError, RecursionError):
        sorted_.malformed += 1
        return {}
    if isinstance(payload, list):
        # The SDKs accept a bare list of items where the envelope is expected.
        return {"data": payload}
    if not isinstance(payload, dict):
        sorted_.malformed += 1
        return {}
    return payload


def _entries(value: Any, sorted_: _Sorted) -> list[dict[str, Any]]:
    if value is None:
        return []
    entries = [value] if isinstance(value, dict) else value if isinstance(value, list) else None
    if entries is None:
        sorted_.malformed += 1
        return []
    readable = [entry for entry in entries if isinstance(entry, dict)]
    sorted_.malformed += len(entries) - len(readable)
    return readable


def _task_uuid(item: Mapping[str, Any]) -> str | None:
    value = item.get("taskUUID")
    return value if isinstance(value, str) and value and len(value) <= MAX_TASK_UUID_CHARS else None


def _status(item: Mapping[str, Any] | None) -> str:
    status = item.get("status") if item else None
    return status.lower() if isinstance(status, str) else ""


def _is_failed_item(item: Mapping[str, Any]) -> bool:
    return _status(item) in FAILED_STATUSES or isinstance(item.get("error"), Mapping)


def _is_done(item: Mapping[str, Any] | None) -> bool:
    return item is not None and _status(item) not in NOT_DONE_STATUSES


def _text_excerpt(status_code: int, body: bytes) -> str:
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        phrase = ""
    return body[:500].decode(errors="replace") or phrase


# --- webhook bodies ------------------------------------------------------------------------------


def read_webhook(payload: Any, job_id: str) -> WebhookReports:
    """Every readable result and error in a parsed webhook body; items naming no task are the job's.

    The documented body is the response envelope {"data": [...]}; the failure body is not documented,
    so every plausible shape is read: the envelope with data and/or errors, a bare result or error
    object, {"error": {...}}, a data item with status error and a nested error, a JSON array of items.
    """
    body = WebhookReports()
    if isinstance(payload, list):
        items: list[tuple[Any, bool]] = [(item, False) for item in payload]
    elif isinstance(payload, Mapping) and ("data" in payload or "errors" in payload):
        items = [(item, False) for item in _as_items(payload.get("data"), body)]
        items += [(item, True) for item in _as_items(payload.get("errors"), body)]
    elif isinstance(payload, Mapping):
        # A bare result or error object, or {"error": {...}, "taskUUID": ...} (read with its nesting).
        items = [(payload, isinstance(payload.get("error"), Mapping))]
    else:
        body.skip("the body is not a JSON object or array")
        return body
    for item, is_error in items:
        if not isinstance(item, Mapping):
            body.skip("an item of the body is not a JSON object")
            continue
        try:
            body.reports.append(_report(item, job_id, is_error=is_error))
        except _Unreadable as problem:
            body.skip(str(problem))
    return body


def _as_items(value: Any, body: WebhookReports) -> list[Any]:
    # A lone object where a list is expected is read as a list of one (the shape is not documented).
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return value
    body.skip("data or errors is neither a list nor an object")
    return []


# --- one item ------------------------------------------------------------------------------------


class _Unreadable(ValueError):
    """The item holds no result or error this pipeline can read."""


def _report(item: Mapping[str, Any], default_task_uuid: str, *, is_error: bool = False) -> Report:
    """One finished task's result or error; an item without a taskUUID is the default task's."""
    task_uuid = item.get("taskUUID")
    if task_uuid is not None and not isinstance(task_uuid, str):
        raise _Unreadable("an item's taskUUID is not a string")
    filled = {**item, "taskUUID": task_uuid or default_task_uuid}
    looks_failed = _is_failed_item(item) or ("code" in item and "imageUUID" not in item)
    if is_error or looks_failed:
        return Failed(_task_error(filled))
    result = _task_result(filled)
    if not (result.image_uuid or result.image_url):
        raise _Unreadable("a result item has neither imageUUID nor imageURL")
    return Succeeded(result)


def _task_error(item: Mapping[str, Any]) -> TaskError:
    """A top-level error, a data item with a nested `error: {code, message}`, or an error whose task is
    named only in `context` (the SDKs read all three). Never fails, never keeps a repr."""
    nested = item.get("error") if isinstance(item.get("error"), Mapping) else {}
    context = item.get("context") if isinstance(item.get("context"), Mapping) else {}
    return TaskError(
        code=_code(nested.get("code")) or _code(item.get("code")) or "unknownError",
        message=_first_text(MAX_MESSAGE_CHARS, nested.get("message"), item.get("message"), item.get("error"))
        or "no message",
        parameter=_first_text(MAX_FIELD_CHARS, nested.get("parameter"), item.get("parameter")),
        task_uuid=_first_text(MAX_FIELD_CHARS, item.get("taskUUID"), nested.get("taskUUID"), context.get("taskUUID")),
        task_type=_first_text(MAX_FIELD_CHARS, item.get("taskType"), nested.get("taskType"), context.get("taskType")),
        image_url=_bounded_text(item.get("imageURL"), MAX_URL_CHARS)
        or _bounded_text(nested.get("imageURL"), MAX_URL_CHARS),
    )


def _task_result(item: Mapping[str, Any]) -> TaskResult:
    task_uuid = item.get("taskUUID")
    if not isinstance(task_uuid, str) or not task_uuid or len(task_uuid) > MAX_FIELD_CHARS:
        raise _Unreadable("taskUUID is not a string of a sane length")
    return TaskResult(
        task_uuid=task_uuid,
        image_uuid=_bounded_text(item.get("imageUUID"), MAX_FIELD_CHARS),
        image_url=_bounded_text(item.get("imageURL"), MAX_URL_CHARS),
        cost=_cost(item.get("cost")),
    )


def _code(value: object) -> str | None:
    # Some answers carry numeric ids; a code that is an object or a list is no code at all.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)[:MAX_CODE_CHARS]
    return value[:MAX_CODE_CHARS] if isinstance(value, str) and value else None


def _first_text(limit: int, *values: object) -> str | None:
    for value in values:
        if isinstance(value, str) and value:
            return value[:limit]
    return None


def _bounded_text(value: object, limit: int) -> str | None:
    # Truncating an id or a URL would make it point elsewhere, so an oversized one is dropped.
    return value if isinstance(value, str) and value and len(value) <= limit else None


def _cost(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    # Decimal via str keeps the figure exact in DynamoDB, which refuses floats.
    cost = Decimal(str(value))
    return cost if cost == 0 or MIN_COST <= cost <= MAX_COST else None
