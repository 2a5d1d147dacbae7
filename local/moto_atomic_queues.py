"""SQS queue changes made atomic in the moto server, as they are in SQS.

moto deletes a message by building a new message list from the queue's current one and putting
it in place, without the lock that sending a message takes. Two deletes at once (two pollers
finishing their batches) can each put back the list the other had just shortened: a deleted
message reappears, still marked received, and stays invisible for the queue's whole visibility
timeout (660 s here) before it is received again. A message sent in between can be dropped the
same way. SQS never does either. Here a delete holds the queue's own message lock, the one
moto's send already takes, so deletes and sends happen one after the other.
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
    from moto.sqs.models import Queue

    Queue.delete_message = _holding_the_message_lock(Queue.delete_message)  # type: ignore[method-assign]
    _installed = True


def _holding_the_message_lock(delete: Callable[[Any, str], None]) -> Callable[[Any, str], None]:
    @functools.wraps(delete)
    def locked(queue: Any, receipt_handle: str) -> None:
        # A Condition's default lock is reentrant, so a delete made while it is held still works.
        with queue._messages_lock:
            delete(queue, receipt_handle)

    return locked
