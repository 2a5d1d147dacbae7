"""Getting results out: the PUT to uploadEndpoint, and webhook POSTs with retries, drops and duplicates."""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from local.runware_emulator.activity import Activity, Counters
from local.runware_emulator.errors import ApiError, redacted
from local.runware_emulator.fault_state import TaskFate
from local.runware_emulator.tasks import TaskRecord, TaskStore

logger = logging.getLogger(__name__)


class Uploader:
    """PUTs the raw bytes of a result, with no Content-Type unless a knob sets one."""

    def __init__(self, http: httpx.Client, counters: Counters, timeout_seconds: float) -> None:
        self._http = http
        self._counters = counters
        self._timeout = timeout_seconds

    def upload(self, url: str, data: bytes, content_type: str | None) -> ApiError | None:
        """None once the PUT answered 2xx, else the task's uploadFailed error."""
        headers = {"Content-Type": content_type} if content_type else {}
        self._counters.add("upload_attempts")
        try:
            response = self._http.put(url, content=data, headers=headers, timeout=self._timeout)
        except httpx.HTTPError as error:
            problem = f"PUT {redacted(url)} failed ({type(error).__name__}: {error})"
        else:
            if 200 <= response.status_code < 300:
                self._counters.add("uploads")
                return None
            problem = f"PUT {redacted(url)} answered HTTP {response.status_code}: {response.text[:300]}"
        self._counters.add("upload_failures")
        # HTTP 200 if a sync request fails on it alone, as in the contract's rest/upload-failed.
        message = f"Failed to upload the result to uploadEndpoint: {problem}."
        return ApiError("uploadFailed", message, parameter="uploadEndpoint", http_status=200)


def webhook_body(record: TaskRecord, shape: str) -> Any:
    """What the webhook carries: the envelope ({"data": [..]} / {"errors": [..]}) or the bare item."""
    envelope = record.response_envelope()
    if shape == "bare":
        [items] = envelope.values()
        return items[0]
    return envelope


@dataclass
class _WebhookDelivery:
    record: TaskRecord
    url: str
    shape: str
    retry_base_seconds: float
    max_attempts: int
    copies_after_success: int
    attempts: int = 0


class WebhookSender:
    """POSTs a task's outcome to its webhookURL, retrying non-2xx with exponential back-off."""

    def __init__(
        self,
        http: httpx.Client,
        tasks: TaskStore,
        activity: Activity,
        counters: Counters,
        stopping: threading.Event,
        *,
        workers: int,
        timeout_seconds: float,
    ) -> None:
        self._http = http
        self._tasks = tasks
        self._activity = activity
        self._counters = counters
        self._stopping = stopping
        self._timeout = timeout_seconds
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runware-emulator-webhook")
        self._delayed = DelayedCalls("runware-emulator-timer")

    def start(self) -> None:
        self._delayed.start()

    def cancel_pending(self) -> None:
        """Drops every scheduled retry (their work is no longer in flight)."""
        self._activity.end(self._delayed.cancel_all())

    def stop(self) -> None:
        self._delayed.close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def send(self, record: TaskRecord, webhook_url: str | None, fate: TaskFate, *, inline: bool = False) -> None:
        """Schedules the first attempt; ``inline`` makes it now, on the caller's thread."""
        if webhook_url is None:
            return
        if not self._activity.is_current(record.generation):
            return
        if fate.drop_webhook:
            self._counters.add("webhooks_dropped")
            return
        if not self._activity.begin_if_current(record.generation):
            return
        faults = fate.faults
        delivery = _WebhookDelivery(
            record=record,
            url=webhook_url,
            shape=faults.webhook_shape,
            retry_base_seconds=faults.webhook_retry_base_seconds,
            max_attempts=faults.webhook_max_attempts,
            copies_after_success=1 if fate.duplicate_webhook else 0,
        )
        if inline:
            # The point of webhook_before_upload: the POST must happen before the PUT starts.
            if faults.webhook_delay_seconds > 0 and self._stopping.wait(faults.webhook_delay_seconds):
                self._activity.end()
                return
            self._attempt(delivery)
        else:
            self._schedule(delivery, faults.webhook_delay_seconds)

    def _schedule(self, delivery: _WebhookDelivery, delay_seconds: float) -> None:
        def submit() -> None:
            try:
                self._pool.submit(self._attempt, delivery)
            except RuntimeError:
                self._activity.end()

        if not self._delayed.call_later(delay_seconds, submit):
            self._activity.end()

    def _attempt(self, delivery: _WebhookDelivery) -> None:
        record = delivery.record
        if not self._activity.is_current(record.generation) or self._stopping.is_set():
            self._activity.end()
            return
        body = webhook_body(self._tasks.snapshot(record), delivery.shape)
        delivery.attempts += 1
        self._tasks.note_webhook_attempt(record)
        self._counters.add("webhook_attempts")
        try:
            response = self._http.post(
                delivery.url,
                content=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
                timeout=self._timeout,
            )
            delivered = 200 <= response.status_code < 300
            outcome = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            delivered = False
            outcome = f"{type(error).__name__}: {error}"
        if delivered:
            self._counters.add("webhook_deliveries")
            self._tasks.note_webhook_delivery(record)
            if delivery.copies_after_success > 0:
                self._activity.begin()
                copy = dataclasses.replace(delivery, copies_after_success=delivery.copies_after_success - 1, attempts=0)
                self._schedule(copy, 0)
            self._activity.end()
            return
        self._counters.add("webhook_failures")
        give_up = delivery.attempts >= delivery.max_attempts
        if give_up:
            self._counters.add("webhooks_abandoned")
        logger.info(
            "webhook for %s attempt %d failed: %s%s",
            record.task_uuid,
            delivery.attempts,
            outcome,
            " (giving up)" if give_up else "",
        )
        if give_up:
            self._activity.end()
            return
        self._schedule(delivery, delivery.retry_base_seconds * 2 ** (delivery.attempts - 1))


class DelayedCalls:
    """Runs callables after a delay on one timer thread, so back-off never holds a pool thread."""

    def __init__(self, name: str) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._condition = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def call_later(self, delay_seconds: float, action: Callable[[], None]) -> bool:
        with self._condition:
            if self._closed:
                return False
            due = time.monotonic() + max(0.0, delay_seconds)
            heapq.heappush(self._heap, (due, next(self._order), action))
            self._condition.notify()
            return True

    def cancel_all(self) -> int:
        with self._condition:
            cancelled = len(self._heap)
            self._heap.clear()
            return cancelled

    def close(self) -> int:
        with self._condition:
            self._closed = True
            cancelled = len(self._heap)
            self._heap.clear()
            self._condition.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        return cancelled

    def _run(self) -> None:
        while True:
            with self._condition:
                action = None
                while action is None:
                    if self._closed:
                        return
                    if not self._heap:
                        self._condition.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait > 0:
                        self._condition.wait(wait)
                        continue
                    action = heapq.heappop(self._heap)[2]
            try:
                action()
            except Exception:
                logger.exception("delayed call failed")
