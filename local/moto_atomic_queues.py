"""SQS queue changes made atomic in the moto server, as they are in SQS.

moto changes a queue's messages without the lock that sending a message takes:
- A delete builds a new message list from the queue's current one and puts it in place. Two deletes
  at once (two pollers finishing their batches) can each put back the list the other had just
  shortened: a deleted message reappears, still marked received, and stays invisible for the queue's
  whole visibility timeout (660 s here) before it is received again. A message sent in between can
  be dropped the same way.
- A receive checks that a message is visible, then marks it received (a new receipt handle, the
  visibility timeout from now). Two receives at once can both take the same message, or one can
  fail half-way (a set another receive changes while it reads it: RuntimeError, a 500 to the
  client) after marking some messages received: nobody got those, and they wait out the visibility
  timeout, which under load left whole batches unreceived for minutes.
SQS does none of this. Here deletes, receives and visibility changes hold the queue's own message lock,
the one moto's send already takes, so they happen one after the other. A receive that long-polls
lets the lock go while it waits (a Condition's wait releases it), as a send must get in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

_installed = False


def install_atomic_queue_changes() -> None:
    global _installed
    if _installed:
        return
    from moto.sqs.models import Queue, SQSBackend

    Queue.delete_message = _holding_the_message_lock(Queue.delete_message)  # type: ignore[method-assign]
    SQSBackend.receive_message = _holding_the_named_queues_lock(SQSBackend.receive_message)  # type: ignore[method-assign]
    SQSBackend.change_message_visibility = _holding_the_named_queues_lock(  # type: ignore[method-assign]
        SQSBackend.change_message_visibility
    )
    _installed = True


def _holding_the_message_lock(delete: Callable[[Any, str], None]) -> Callable[[Any, str], None]:
    @functools.wraps(delete)
    def locked(queue: Any, receipt_handle: str) -> None:
        # A Condition's default lock is reentrant, so a delete made while it is held still works.
        with queue._messages_lock:
            delete(queue, receipt_handle)

    return locked


def _holding_the_named_queues_lock(change: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(change)
    def locked(backend: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        with backend.get_queue(queue_name)._messages_lock:
            return change(backend, queue_name, *args, **kwargs)

    return locked
