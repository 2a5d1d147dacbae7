"""Deletes, sends and receives on one moto queue from many threads at once: no deleted message comes
back, no sent message is lost, no message goes to two receivers (as in SQS)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue, SQSBackend

from local.moto_atomic_queues import _holding_the_message_lock, _holding_the_named_queues_lock

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


RECEIVERS = 8
QUEUED = 600


def receive_race(receive: Callable[..., list[Message]]) -> tuple[int, int, int]:
    """Threads receive one queue dry at once; (messages received more than once, receipt handles
    given out that the queue then refuses, receives that raised)."""
    from local.moto_speedups import install_moto_speedups

    install_moto_speedups()  # the stack's retention check (moto's own is quadratic in the queue's length)
    backend = SQSBackend("us-east-1", "123456789012")
    backend.create_queue("race", VisibilityTimeout="660")
    for n in range(QUEUED):
        backend.send_message("race", f"m{n}")
    received: list[tuple[str, str]] = []
    errors = [0]
    lock = threading.Lock()
    start = threading.Barrier(RECEIVERS)

    def work() -> None:
        start.wait()
        while True:
            try:
                batch = receive(backend, "race", 10, 0, 660)
            except RuntimeError:  # moto's own receive, changing a set another receive is reading
                with lock:
                    errors[0] += 1
                continue
            if not batch:
                return
            with lock:
                received.extend((message.id, message.receipt_handle) for message in batch)

    threads = [threading.Thread(target=work) for _ in range(RECEIVERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    twice = len(received) - len({message_id for message_id, _ in received})
    refused = 0
    for _, receipt_handle in received:
        try:
            backend.change_message_visibility("race", receipt_handle, 0)
        except ReceiptHandleIsInvalid:
            refused += 1
    return twice, refused, errors[0]


def test_with_the_lock_each_message_goes_to_one_receiver_whose_receipt_handle_works():
    assert receive_race(_holding_the_named_queues_lock(SQSBackend.receive_message)) == (0, 0, 0)
