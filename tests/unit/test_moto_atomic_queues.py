"""Deletes and sends on one moto queue from many threads at once: no deleted message comes back,
no sent message is lost (as in SQS)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue

from local.moto_atomic_queues import _holding_the_message_lock

THREADS = 8
MESSAGES_PER_THREAD = 150


def race(delete: Callable[[Any, str], None]) -> tuple[int, int]:
    """Each thread sends messages and deletes the ones it received; (deleted messages still in the
    queue, sent messages missing from it or from the queue when deleted) once all are done."""
    queue = Queue("race", "us-east-1", "123456789012")
    start = threading.Barrier(THREADS)
    kept: list[Message] = []
    kept_lock = threading.Lock()
    vanished = [0]

    def work(thread: int) -> None:
        start.wait()
        for n in range(MESSAGES_PER_THREAD):
            doomed = Message(f"d-{thread}-{n}", "delete me")
            doomed.mark_received()
            queue.add_message(doomed)
            survivor = Message(f"k-{thread}-{n}", "keep me")
            queue.add_message(survivor)
            with kept_lock:
                kept.append(survivor)
            try:
                delete(queue, doomed.receipt_handle)
            except ReceiptHandleIsInvalid:  # dropped from the queue by another thread's change
                with kept_lock:
                    vanished[0] += 1

    threads = [threading.Thread(target=work, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    present = {message.id for message in queue._messages}
    back = sum(1 for message_id in present if message_id.startswith("d-"))
    lost = sum(1 for message in kept if message.id not in present) + vanished[0]
    return back, lost


def test_with_the_lock_no_delete_is_undone_and_no_send_is_lost():
    assert race(_holding_the_message_lock(Queue.delete_message)) == (0, 0)


def test_the_race_is_real_without_the_lock():
    # moto's own delete, many times over: at least once a delete is undone or a send dropped.
    outcomes = [race(Queue.delete_message) for _ in range(5)]
    assert any(back or lost for back, lost in outcomes), outcomes
