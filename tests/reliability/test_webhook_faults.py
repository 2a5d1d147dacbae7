"""Webhooks that never come, come twice, come after the reconciler, or come before the output."""

from __future__ import annotations

import time

from local.runware_emulator import FaultConfig
from local.stack import LocalStack
from tests.reliability.harness import (
    JOB_MAX_AGE_SECONDS,
    RECONCILE_AFTER_SECONDS,
    Drop,
    assert_invariant,
    check,
    drop_all,
    image_bytes,
    jobs_by_key,
    run_scenario,
    scaled,
    settle,
)
from tests.stack_waits import wait_on_stack

SMALL = {"target-megapixels": "1"}


def photos(count: int) -> list[Drop]:
    return [
        Drop(f"{index:04d}.jpg", image_bytes(200, 130 + index % 7 * 6, shade=index), SMALL) for index in range(count)
    ]


def recorded_once(job: dict) -> None:
    """The job was written by exactly one result report, and nothing touched it afterwards."""
    assert job["resultReports"] == 1, job
    assert job["updatedAt"] == job["completedAt"], job


def test_dropped_webhooks_are_finished_by_the_reconciler(stack: LocalStack) -> None:
    assert stack.emulator is not None
    stack.emulator.faults = FaultConfig(drop_webhook_rate=1.0, task_failure_rate=0.25)
    stack.emulator.fault_state.reset()  # draws from the seed, whatever the scenarios before consumed
    prefix = "rel-webhook-dropped/"

    row, _ = run_scenario(stack, "webhooks dropped (25% of tasks fail)", prefix, photos(scaled(12, 40)))

    assert row.completed > 0 and row.failed > 0
    assert row.completed + row.failed == row.objects
    for job in jobs_by_key(stack, prefix).values():
        assert job["resultVia"] == "reconcile", job
        recorded_once(job)
        if job["status"] == "FAILED":
            assert job["errorCode"] == "timeoutProvider", job


def test_duplicated_webhooks_change_nothing(stack: LocalStack) -> None:
    assert stack.emulator is not None
    # Bare bodies (the result or error object alone): the envelope is not documented either way.
    stack.emulator.faults = FaultConfig(duplicate_webhook_rate=1.0, webhook_shape="bare", task_failure_rate=0.25)
    stack.emulator.fault_state.reset()  # draws from the seed, whatever the scenarios before consumed
    prefix = "rel-webhook-twice/"

    row, _ = run_scenario(stack, "webhooks delivered twice (bare, 25% fail)", prefix, photos(scaled(12, 40)))

    assert row.completed > 0 and row.failed > 0
    assert row.completed + row.failed == row.objects
    tasks = stack.emulator.tasks
    for job in jobs_by_key(stack, prefix).values():
        assert tasks[job["jobId"]].webhook_deliveries == 2, job  # both answered 2xx
        assert job["resultVia"] == "webhook"
        recorded_once(job)
        if job["status"] == "FAILED":
            assert job["errorCode"] == "timeoutProvider", job


def test_webhooks_delayed_past_the_reconciler_change_nothing(stack: LocalStack) -> None:
    assert stack.emulator is not None
    stack.emulator.faults = FaultConfig(webhook_delay_seconds=RECONCILE_AFTER_SECONDS + 5)
    prefix = "rel-webhook-late/"

    row, _ = run_scenario(stack, "webhooks delayed past the reconciler", prefix, photos(scaled(8, 30)))

    assert row.completed == row.objects
    tasks = stack.emulator.tasks
    for job in jobs_by_key(stack, prefix).values():
        assert job["resultVia"] == "reconcile", job
        assert tasks[job["jobId"]].webhook_deliveries == 1, job  # the late webhook was answered 2xx
        recorded_once(job)


def test_webhook_before_the_output_is_visible_is_retried(stack: LocalStack) -> None:
    assert stack.emulator is not None
    failures_before = stack.emulator.stats()["webhook_failures"]
    # Results without imageURL (not documented beside uploadEndpoint): nothing to copy from.
    stack.emulator.faults = FaultConfig(webhook_before_upload=True, image_url_with_upload=False)
    prefix = "rel-webhook-early/"

    row, _ = run_scenario(stack, "webhook before the output is uploaded", prefix, photos(scaled(12, 40)))

    assert row.completed == row.objects
    # The early webhooks were refused (503, so Runware retries) rather than recorded without an output.
    assert stack.emulator.stats()["webhook_failures"] > failures_before
    for job in jobs_by_key(stack, prefix).values():
        assert "recoveredFrom" not in job, job
        recorded_once(job)


def test_webhook_before_the_output_is_visible_completes_from_the_result_url(stack: LocalStack) -> None:
    assert stack.emulator is not None
    stack.emulator.faults = FaultConfig(webhook_before_upload=True)
    prefix = "rel-webhook-early-url/"

    row, _ = run_scenario(stack, "webhook before the upload, with imageURL", prefix, photos(scaled(8, 30)))

    assert row.completed == row.objects
    # Nothing was staged when the webhook came: the result was copied from Runware's URL at once.
    for job in jobs_by_key(stack, prefix).values():
        assert (job["recoveredFrom"], job["resultVia"]) == ("imageURL", "webhook"), job
        recorded_once(job)


def test_results_later_than_the_maximum_age_time_out_then_complete_from_their_outputs(stack: LocalStack) -> None:
    assert stack.emulator is not None
    prefix = "rel-timeout/"
    slow = JOB_MAX_AGE_SECONDS + 4
    started = time.monotonic()
    # One task never reports (its webhook is lost) and one reports after the job has timed out.
    stack.emulator.faults = FaultConfig(latency_seconds=slow, drop_webhook_rate=1.0)
    dropped = drop_all(stack, prefix, [Drop("silent.jpg", image_bytes(150, 110), SMALL)])

    def first_status() -> str:
        return str(jobs_by_key(stack, prefix).get(dropped[0].key, {}).get("status", "no job"))

    wait_on_stack(
        stack,
        lambda: first_status() == "SUBMITTED",
        "the first job was never submitted",
        progress=first_status,
        pending=lambda: f"the first job is {first_status()}",
        poll_seconds=0.1,
    )
    stack.emulator.faults = FaultConfig(latency_seconds=slow)
    dropped += drop_all(stack, prefix, [Drop("late.jpg", image_bytes(150, 120), SMALL)])

    timed_out = settle(stack, prefix, dropped)
    assert timed_out, timed_out.failure
    assert {job["status"] for job in jobs_by_key(stack, prefix).values()} <= {"TIMED_OUT", "COMPLETED"}
    # Both results arrive after the timeout: one by webhook, one only as an object in the bucket,
    # which the silent job's next recovery check finds (ReconcileAfterSeconds after its timeout).
    assert stack.emulator.wait_idle(timeout=30)
    wait_on_stack(
        stack,
        lambda: {job["status"] for job in jobs_by_key(stack, prefix).values()} == {"COMPLETED"},
        "the late outputs never completed their jobs",
        progress=lambda: str({key: job["status"] for key, job in jobs_by_key(stack, prefix).items()}),
        poll_seconds=0.2,
    )
    row = check(stack, "results later than the job's maximum age", prefix, dropped, started=started)
    assert_invariant(row)

    assert (row.timed_out, row.completed) == (0, 2)
    jobs = jobs_by_key(stack, prefix)
    silent, late = jobs[dropped[0].key], jobs[dropped[1].key]
    assert silent["lateResult"] is True and silent["resultVia"] == "reconcile", silent
    assert late["status"] == "COMPLETED" and late["lateResult"] is True, late
    # Its webhook and the reconciler's look in the bucket race for it; either records it, once.
    assert "errorCode" not in late and late["resultVia"] in ("webhook", "reconcile")
    assert late["resultReports"] == 2  # the timeout, then the late result


def test_webhook_function_dying_before_recording_is_retried_by_runware(stack: LocalStack, monkeypatch) -> None:
    """The webhook function crashes once per job after its checks, before its write: the gateway
    answers 500 and Runware's retry records the result."""
    assert stack.emulator is not None
    receiver = stack.functions["WebhookFunction"].module.receiver
    move = receiver.recorder.jobs.move
    crashed: set[str] = set()

    def crash_once_then_move(job_id: str, *args, **kwargs):
        if job_id not in crashed:
            crashed.add(job_id)
            raise RuntimeError("the webhook function died before recording")
        return move(job_id, *args, **kwargs)

    monkeypatch.setattr(receiver.recorder.jobs, "move", crash_once_then_move)
    failures_before = stack.emulator.stats()["webhook_failures"]
    prefix = "rel-webhook-crash/"

    row, _ = run_scenario(stack, "webhook function dies before recording", prefix, photos(scaled(8, 30)))

    assert row.completed == row.objects
    assert stack.emulator.stats()["webhook_failures"] - failures_before >= row.objects
    for job in jobs_by_key(stack, prefix).values():
        assert job["jobId"] in crashed
        assert job["resultVia"] == "webhook"
        recorded_once(job)
