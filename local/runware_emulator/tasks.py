"""Task records and their lifecycle: accepted (processing), then success or error, looked up by taskUUID."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local.runware_emulator.errors import ApiError
from local.runware_emulator.images import RenderedImage
from local.runware_emulator.protocol import ERROR, PROCESSING, SUCCESS


@dataclass
class TaskRecord:
    """What the emulator knows about one accepted task. Written under the store's lock."""

    task_uuid: str
    task_type: str
    delivery_method: str
    request: dict[str, Any]
    accepted_at: float
    generation: int
    status: str = PROCESSING
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    error_http_status: int | None = None
    output_width: int | None = None
    output_height: int | None = None
    output_format: str | None = None
    output_size: int | None = None
    completed_at: float | None = None
    webhook_attempts: int = 0
    webhook_deliveries: int = 0

    def processing_item(self) -> dict[str, Any]:
        return {"taskType": self.task_type, "taskUUID": self.task_uuid, "status": PROCESSING}

    def response_envelope(self) -> dict[str, Any]:
        """The task's answer as an envelope: its result, its error, or a processing item."""
        if self.status == SUCCESS and self.result is not None:
            return {"data": [self.result]}
        if self.status == ERROR and self.error is not None:
            return {"errors": [self.error]}
        return {"data": [self.processing_item()]}


class TaskStore:
    """taskUUID (lower case) -> TaskRecord, and every change to a record, under one lock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._records: dict[str, TaskRecord] = {}

    def now(self) -> float:
        return self._clock()

    def add(self, record: TaskRecord) -> bool:
        """Registers a new task; False if its taskUUID is already held."""
        key = record.task_uuid.lower()
        with self._lock:
            if key in self._records:
                return False
            self._records[key] = record
            return True

    def finished_longer_ago(self, record: TaskRecord, seconds: float | None) -> bool:
        """True if ``seconds`` is set and the task finished more than that long ago."""
        if seconds is None or record.completed_at is None:
            return False
        return self._clock() - record.completed_at > seconds

    def get(self, task_uuid: str) -> TaskRecord | None:
        with self._lock:
            return self._records.get(task_uuid.lower())

    def snapshot(self, record: TaskRecord) -> TaskRecord:
        """A consistent copy of a live record, for answers built outside the lock."""
        with self._lock:
            return dataclasses.replace(record)

    def all(self) -> dict[str, TaskRecord]:
        with self._lock:
            return dict(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def count_by_status(self) -> dict[str, int]:
        with self._lock:
            counts = {PROCESSING: 0, SUCCESS: 0, ERROR: 0}
            for record in self._records.values():
                counts[record.status] += 1
            return counts

    def complete_with_success(self, record: TaskRecord, result: dict[str, Any], rendered: RenderedImage) -> None:
        with self._lock:
            record.status = SUCCESS
            record.result = result
            record.output_width = rendered.width
            record.output_height = rendered.height
            record.output_format = rendered.output_format
            record.output_size = len(rendered.data)
            record.completed_at = self._clock()

    def complete_with_error(self, record: TaskRecord, error: ApiError) -> None:
        scoped = error.for_task(record.task_type, record.task_uuid)
        with self._lock:
            record.status = ERROR
            record.result = None
            record.error = scoped.to_json()
            record.error_http_status = scoped.http_status
            record.completed_at = self._clock()

    def note_webhook_attempt(self, record: TaskRecord) -> None:
        with self._lock:
            record.webhook_attempts += 1

    def note_webhook_delivery(self, record: TaskRecord) -> None:
        with self._lock:
            record.webhook_deliveries += 1
