"""A small client for Runware's REST API: JSON arrays of tasks, results matched by taskUUID.

Transient failures (429, 5xx, timeouts, connection errors) are retried inside a deadline: a 429
when its Retry-After says, the others with exponential backoff and full jitter. Each container
also spaces its requests out once it has been refused for the rate (upscaler.request_pacing).
This module is the transport only: every other answer is handed, unraised, to
upscaler.runware_answers, which reads it into typed outcomes per task (and an account refusal once
for the whole request, never as a failure of each task).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from upscaler.request_pacing import RequestPacer
from upscaler.runware_answers import PollAnswer, SubmissionAnswer, read_poll, read_submission

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Retries of a 429 go a little after its Retry-After, a little later each time, so that containers
# told the same wait do not all come back at the same instant.
RETRY_AFTER_JITTER_SECONDS = 0.1


class RunwareUnavailable(Exception):
    """Runware could not be reached or kept refusing within the time budget; try again later."""


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

    def send(self, tasks: Sequence[Mapping[str, Any]], *, deadline: float | None = None) -> SubmissionAnswer:
        """Submit the tasks in one request: what Runware said of each (upscaler.runware_answers)."""
        task_uuids = [str(task["taskUUID"]) for task in tasks]
        response = self._post(tasks, deadline)
        return read_submission(response.status_code, response.content, task_uuids)

    def get_responses(self, task_uuids: Iterable[str], *, deadline: float | None = None) -> PollAnswer:
        """Ask getResponse about the tasks in one request: what Runware said of each."""
        asked = list(task_uuids)
        if not asked:
            return PollAnswer(200)
        response = self._post([{"taskType": "getResponse", "taskUUID": task_uuid} for task_uuid in asked], deadline)
        return read_poll(response.status_code, response.content, asked)

    def _post(self, tasks: Sequence[Mapping[str, Any]], deadline: float | None) -> httpx.Response:
        """POST the tasks in one request; retry transient failures until `deadline` (monotonic).

        A 429 is retried when its Retry-After says, for as long as the deadline allows (up to
        max_throttled_attempts): the request was refused for the account's rate, not for anything
        in it. Other transient failures get max_attempts in all. The first try waits for this
        container's learnt spacing (upscaler.request_pacing) first.
        """
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
                    return response
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
