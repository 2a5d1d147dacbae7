"""Counters for /_emulator/stats, and the work in flight that ``wait_idle`` waits for."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Counts:
    requests: int = 0
    responses_by_status: dict[str, int] = field(default_factory=dict)
    webhook_attempts: int = 0
    webhook_deliveries: int = 0
    webhook_failures: int = 0
    webhooks_dropped: int = 0
    webhooks_abandoned: int = 0
    upload_attempts: int = 0
    uploads: int = 0
    upload_failures: int = 0


class Counters:
    """Thread-safe event counts; ``snapshot()`` is what /_emulator/stats shows."""

    NAMES = tuple(item.name for item in dataclasses.fields(_Counts) if item.name != "responses_by_status")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = _Counts()

    def add(self, name: str, amount: int = 1) -> None:
        if name not in self.NAMES:
            raise KeyError(name)
        with self._lock:
            setattr(self._counts, name, getattr(self._counts, name) + amount)

    def count_response(self, status: int) -> None:
        with self._lock:
            by_status = self._counts.responses_by_status
            by_status[str(status)] = by_status.get(str(status), 0) + 1

    def reset(self) -> None:
        with self._lock:
            self._counts = _Counts()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dataclasses.asdict(self._counts)


class Activity:
    """Work in flight (queued or running tasks, pending webhooks) and the generation it belongs to.

    A reset starts a new generation: work of an older one may finish but sends no webhook.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._busy = 0
        self._generation = 0
        self._closed = False

    @property
    def busy(self) -> int:
        with self._condition:
            return self._busy

    @property
    def generation(self) -> int:
        with self._condition:
            return self._generation

    def is_current(self, generation: int) -> bool:
        with self._condition:
            return generation == self._generation

    def begin(self) -> None:
        with self._condition:
            self._busy += 1

    def begin_if_current(self, generation: int) -> bool:
        with self._condition:
            if generation != self._generation:
                return False
            self._busy += 1
            return True

    def end(self, count: int = 1) -> None:
        if count <= 0:
            return
        with self._condition:
            self._busy -= count
            if self._busy == 0:
                self._condition.notify_all()

    def new_generation(self) -> None:
        with self._condition:
            self._generation += 1

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def wait_idle(self, timeout: float | None) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: self._busy == 0 or self._closed, timeout)
