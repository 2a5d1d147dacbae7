"""Re-drive: move the dead-letter queue's messages back to the ingestion queue.

Uses SQS's own message move task (`aws sqs start-message-move-task`): SQS moves the messages in the
background, at a rate it chooses, and without a destination sends each message back to the queue it
was dead-lettered from. Run it after fixing what made them fail; a message that fails again returns
to the dead-letter queue after maxReceiveCount receives, as before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RedriveTask:
    task_handle: str
    source_arn: str
    destination_arn: str | None


def redrive(sqs: Any, *, dlq_arn: str, destination_arn: str | None = None) -> RedriveTask:
    """Start a message move task from the DLQ (to its source queue unless a destination is given)."""
    request: dict[str, Any] = {"SourceArn": dlq_arn}
    if destination_arn:
        request["DestinationArn"] = destination_arn
    response = sqs.start_message_move_task(**request)
    return RedriveTask(response["TaskHandle"], dlq_arn, destination_arn)


def latest_task(sqs: Any, *, dlq_arn: str) -> dict[str, Any] | None:
    """The most recent message move task of the DLQ (Status, ApproximateNumberOfMessagesMoved, ...)."""
    results = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=1).get("Results", [])
    return results[0] if results else None


def wait_for_task(sqs: Any, *, dlq_arn: str, timeout: float = 900.0, poll: float = 5.0) -> dict[str, Any] | None:
    """Poll the latest task until it is no longer RUNNING (or the timeout passes); its last status."""
    deadline = time.monotonic() + timeout
    while True:
        task = latest_task(sqs, dlq_arn=dlq_arn)
        if task is None or task.get("Status") != "RUNNING" or time.monotonic() >= deadline:
            return task
        time.sleep(poll)
