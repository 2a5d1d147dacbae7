"""SQS message move tasks (StartMessageMoveTask, ListMessageMoveTasks) for the local moto server.

moto does not implement them; re-driving a dead-letter queue is done with them in AWS
(`aws sqs start-message-move-task`), so the local stack adds them to the moto server it runs, and
the same client code re-drives both. A task here runs to completion inside the request; AWS runs
it in the background, which a caller sees through ListMessageMoveTasks in both cases.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

_installed = False
_lock = threading.Lock()
_tasks: dict[str, list[dict[str, Any]]] = {}  # source queue ARN -> its tasks, newest first


def install_message_move_tasks() -> None:
    global _installed
    if _installed:
        return
    from moto.core.responses import ActionResult
    from moto.sqs.responses import SQSResponse

    def start_message_move_task(self: Any) -> ActionResult:
        task = move_messages(self.sqs_backend, self._get_param("SourceArn"), self._get_param("DestinationArn"))
        return ActionResult({"TaskHandle": task["TaskHandle"]})

    def list_message_move_tasks(self: Any) -> ActionResult:
        with _lock:
            tasks = list(_tasks.get(self._get_param("SourceArn"), []))
        limit = int(self._get_param("MaxResults") or 1)
        return ActionResult({"Results": [{k: v for k, v in t.items() if k != "TaskHandle"} for t in tasks[:limit]]})

    SQSResponse.start_message_move_task = start_message_move_task  # type: ignore[attr-defined]
    SQSResponse.list_message_move_tasks = list_message_move_tasks  # type: ignore[attr-defined]
    _installed = True


def move_messages(backend: Any, source_arn: str, destination_arn: str | None) -> dict[str, Any]:
    """Move every message of the source (a dead-letter queue) to the destination, or back to the
    queue whose redrive policy names the source when no destination is given."""
    source = backend.get_queue(source_arn.rsplit(":", 1)[-1])
    if destination_arn:
        destination_name = destination_arn.rsplit(":", 1)[-1]
    else:
        origins = backend.list_dead_letter_source_queues(source.name)
        if len(origins) != 1:
            raise ValueError(f"{source_arn} is the dead-letter queue of {len(origins)} queues; name a destination")
        destination_name = origins[0].name
        destination_arn = origins[0].queue_arn
    backend.get_queue(destination_name)
    started = int(time.time() * 1000)
    moved = 0
    while True:
        messages = backend.receive_message(source.name, 10, 0, 30, message_attribute_names=["All"])
        if not messages:
            break
        for message in messages:
            backend.send_message(destination_name, message.body, message_attributes=message.message_attributes)
            backend.delete_message(source.name, message.receipt_handle)
            moved += 1
    task = {
        "TaskHandle": str(uuid.uuid4()),
        "Status": "COMPLETED",
        "SourceArn": source_arn,
        "DestinationArn": destination_arn,
        "ApproximateNumberOfMessagesMoved": moved,
        "ApproximateNumberOfMessagesToMove": moved,
        "StartedTimestamp": started,
    }
    with _lock:
        _tasks.setdefault(source_arn, []).insert(0, task)
    return task
