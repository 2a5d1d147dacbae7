"""The submit function dying between its steps, and S3 delivering one upload several times.

A crash is an exception raised from inside the running handler (wrapped around one of the submit
module's objects) for a share of the jobs, once each: the messages it concerns (its own, or the
whole batch when the crash is in the batch's Runware request or its recording) are received again
from the ingestion queue. The retry must get the object submitted under the same taskUUID.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote_plus

import pytest

from local.runware_emulator import FaultConfig
from local.stack import LocalStack
from tests.reliability.harness import (
    Drop,
    Dropped,
    aws,
    image_bytes,
    jobs_by_key,
    run_scenario,
    scaled,
    sent_tasks,
)
from tests.stack_waits import wait_on_stack
from upscaler.job_record import Job
from upscaler.jobs import CLAIM, SUBMIT, Transition

SMALL = {"target-megapixels": "1"}
CRASH_SHARE = 0.5
# Longer than a redelivered batch takes to be sent again: 1 s of redelivery, the 2 s batching window, and
# room for a loaded machine.
WEBHOOK_AFTER_RETRY_SECONDS = 8.0


class Crash(RuntimeError):
    """Stands in for the function's runtime dying at this point of an invocation."""


class CrashOnce:
    """Decides, per job, whether to crash: for the first job asked about and about CRASH_SHARE of the
    others (by a hash of the job id, which holds the object's random version id), the first time only.
    The first job always crashing keeps a scenario from passing with no crash at all."""

    def __init__(self) -> None:
        self.crashed: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, job_id: str) -> bool:
        share = int(hashlib.sha256(job_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        with self._lock:
            if job_id in self.crashed or (share >= CRASH_SHARE and self.crashed):
                return False
            self.crashed.add(job_id)
            return True


def upscale_ids(tasks: Any) -> list[str]:
    return [str(task["taskUUID"]) for task in tasks if task.get("taskType") == "upscale"]


def crash_after_claim(submitter: Any, crash: CrashOnce, monkeypatch: pytest.MonkeyPatch) -> None:
    create = submitter.jobs.create

    def create_then_crash(job: Job, transition: Transition, now: Any = None) -> Job:
        written = create(job, transition, now)
        if transition is CLAIM and crash(job.job_id):
            raise Crash("after the claim")
        return written

    monkeypatch.setattr(submitter.jobs, "create", create_then_crash)
    create_all = submitter.jobs.create_all

    def create_all_then_crash(jobs: Any, now: Any = None) -> Any:
        # A batch's claims are written together (one alone goes through create above).
        results = create_all(jobs, now)
        if any([crash(job.job_id) for job, transition in jobs if transition is CLAIM and len(jobs) > 1]):
            raise Crash("after the claim")
        return results

    monkeypatch.setattr(submitter.jobs, "create_all", create_all_then_crash)


def crash_before_runware(submitter: Any, crash: CrashOnce, monkeypatch: pytest.MonkeyPatch) -> None:
    send = submitter.runware.send

    def crash_then_send(tasks: Any, *, deadline: float | None = None) -> Any:
        if any([crash(task_id) for task_id in upscale_ids(tasks)]):
            raise Crash("before the Runware call")
        return send(tasks, deadline=deadline)

    monkeypatch.setattr(submitter.runware, "send", crash_then_send)


def crash_after_runware(submitter: Any, crash: CrashOnce, monkeypatch: pytest.MonkeyPatch) -> None:
    send = submitter.runware.send

    def send_then_crash(tasks: Any, *, deadline: float | None = None) -> Any:
        response = send(tasks, deadline=deadline)
        if any([crash(task_id) for task_id in upscale_ids(tasks)]):
            raise Crash("after the Runware call")
        return response

    monkeypatch.setattr(submitter.runware, "send", send_then_crash)


def crash_before_recording(submitter: Any, crash: CrashOnce, monkeypatch: pytest.MonkeyPatch) -> None:
    move = submitter.jobs.move

    def crash_then_move(job_id: str, transition: Transition, *args: Any, **kwargs: Any) -> Any:
        if transition is SUBMIT and crash(job_id):
            raise Crash("before recording the submission")
        return move(job_id, transition, *args, **kwargs)

    monkeypatch.setattr(submitter.jobs, "move", crash_then_move)
    move_all = submitter.jobs.move_all

    def crash_then_move_all(moves: Any, transition: Transition, **kwargs: Any) -> Any:
        # A batch's moves are written together (one alone goes through move above).
        if transition is SUBMIT and len(moves) > 1 and any([crash(job_id) for job_id, _ in moves]):
            raise Crash("before recording the submission")
        return move_all(moves, transition, **kwargs)

    monkeypatch.setattr(submitter.jobs, "move_all", crash_then_move_all)


CRASH_POINTS: dict[str, tuple[Callable[[Any, CrashOnce, pytest.MonkeyPatch], None], set[int]]] = {
    # crash point: (how to inject it, how many times a crashed job's task may reach Runware)
    "after the claim": (crash_after_claim, {1}),
    "before the Runware call": (crash_before_runware, {1}),
    # The retry sends the same taskUUID again (Runware answers it is a duplicate), unless the result
    # came first and the retry finds the job already finished.
    # A crash about the batch's request retries its neighbours too, which may be sent twice as well.
    "after the Runware call": (crash_after_runware, {1, 2}),
    "before recording the submission": (crash_before_recording, {1, 2}),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_submit_dying_between_steps_still_submits_once(
    stack: LocalStack, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    inject, allowed_sends = CRASH_POINTS[point]
    assert stack.emulator is not None
    if 2 in allowed_sends:
        # The crash came after the send. The webhooks come later than the retry (redelivery, then the
        # batching window), so the retry finds the job still open and sends again: the reconciler
        # leaves a job never recorded as submitted alone, so only a webhook could finish it first.
        stack.emulator.faults = FaultConfig(latency_seconds=0.5, webhook_delay_seconds=WEBHOOK_AFTER_RETRY_SECONDS)
    else:
        stack.emulator.faults = FaultConfig(latency_seconds=1.5)
    submit = stack.functions["SubmitFunction"]
    crash = CrashOnce()
    inject(submit.module.submitter, crash, monkeypatch)
    assert stack.ingestion is not None
    failed_before = stack.ingestion.messages_failed
    prefix = f"rel-crash-{point.replace(' ', '-').lower()}/"
    drops = [Drop(f"{index:04d}.jpg", image_bytes(180, 140, shade=index), SMALL) for index in range(scaled(8, 30))]

    row, _ = run_scenario(stack, f"submit dies {point}", prefix, drops)

    assert crash.crashed, "no invocation crashed: the scenario tested nothing"
    assert stack.ingestion.messages_failed > failed_before  # the crashed messages were received again
    assert row.completed == row.objects
    accepted = stack.emulator.tasks
    sends = {ids[0]: len(ids) for ids in sent_tasks(stack, prefix).values()}
    for job in jobs_by_key(stack, prefix).values():
        assert job["jobId"] in accepted, job
        expected = allowed_sends if job["jobId"] in crash.crashed or len(allowed_sends) > 1 else {1}
        assert sends[job["jobId"]] in expected, (job["sourceKey"], sends[job["jobId"]])
    if 2 in allowed_sends:
        # The repeat was sent under the same taskUUID, and recognised as a duplicate by Runware.
        assert any(sends[job_id] == 2 for job_id in crash.crashed), sends


def test_duplicate_s3_deliveries_make_one_job_and_one_task(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each notification is delivered 3-4 times: the original, 1-2 copies of the same message put
    back on the ingestion queue, and one direct invocation running at the same time."""
    submit = stack.functions["SubmitFunction"]
    original_invoke = submit.invoke
    prefix = "rel-duplicates/"
    key_prefix = stack.names["inbox_prefix"] + prefix
    sqs = aws(stack, "sqs")
    deliveries: Counter[str] = Counter()
    copied: set[str] = set()
    lock = threading.Lock()
    pool = ThreadPoolExecutor(4, thread_name_prefix="duplicate-delivery")
    concurrent: list[Future[Any]] = []

    def duplicating_invoke(event: dict[str, Any]) -> Any:
        for message in event.get("Records", []):
            records = json.loads(message["body"]).get("Records") or [{}]
            key = str(records[0].get("s3", {}).get("object", {}).get("key", ""))
            if not unquote_plus(key).startswith(key_prefix):
                continue
            with lock:
                deliveries[key] += 1
                first = key not in copied
                copied.add(key)
            if first:
                for _ in range(1 + len(copied) % 2):
                    sqs.send_message(QueueUrl=stack.names["ingest_queue_url"], MessageBody=message["body"])
                alone = {"Records": [{**message, "messageId": f"direct-{message['messageId']}"}]}
                concurrent.append(pool.submit(original_invoke, alone))
        return original_invoke(event)

    monkeypatch.setattr(submit, "invoke", duplicating_invoke)
    drops = [Drop(f"{index:04d}.jpg", image_bytes(150, 150, shade=index), SMALL) for index in range(scaled(12, 40))]

    def join_direct_invocations(_: list[Dropped]) -> None:
        # Wait until every original delivery has spawned its copies, then for the direct calls.
        def finished() -> int:
            return sum(future.done() for future in list(concurrent))

        wait_on_stack(
            stack,
            lambda: len(copied) >= len(drops) and finished() == len(concurrent),
            "the deliveries and their copies did not all run",
            progress=lambda: (len(copied), finished()),
            pending=lambda: (
                f"{len(copied)} of {len(drops)} delivered, {finished()} of {len(concurrent)} direct calls done"
            ),
            poll_seconds=0.1,
        )
        for future in list(concurrent):
            future.result()

    try:
        row, _ = run_scenario(stack, "S3 event delivered 3-4 times", prefix, drops, during=join_direct_invocations)
    finally:
        pool.shutdown(wait=True)

    assert row.completed == row.objects
    assert len(deliveries) == len(drops)
    # Through the queue: the original and its 1-2 copies; plus one direct invocation each.
    assert all(count in (2, 3) for count in deliveries.values()), deliveries
    assert len(concurrent) == len(drops)
