"""What users pay for: Runware's real answers never cost a result, and a checked output never changes.

- a re-submission answered `conflictTaskUUID` goes on as SUBMITTED (Runware holds and bills it);
- an account-level refusal (401) fails no job: intake waits (nothing dead-lettered), and once the
  key is fixed every job completes with no re-drive;
- getResponse forgetting finished tasks while every webhook is lost: the outputs complete the jobs;
- a PUT to the staging URL after completion changes nothing a user sees;
- hostile items in webhook bodies and in getResponse answers: no 5xx, no other job held back.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from local.runware_emulator import FaultConfig
from local.stack import LocalStack
from tests.reliability.harness import (
    Drop,
    assert_invariant,
    aws,
    check,
    dead_letters,
    drop_all,
    image_bytes,
    jobs_by_key,
    run_scenario,
    scaled,
    sent_tasks,
    settle,
)
from tests.reliability.test_submit_crashes import CrashOnce, crash_after_runware
from tests.stack_waits import wait_on_stack

SMALL = {"target-megapixels": "1"}


def photos(count: int, width: int = 190) -> list[Drop]:
    return [
        Drop(f"{index:04d}.jpg", image_bytes(width, 130 + index % 5 * 4, shade=index), SMALL) for index in range(count)
    ]


def upscale_tasks(stack: LocalStack, job_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The last upscale task the emulator received for each job: its URLs as Runware got them."""
    assert stack.emulator is not None
    tasks: dict[str, dict[str, Any]] = {}
    for request in stack.emulator.requests:
        for task in request if isinstance(request, list) else []:
            if isinstance(task, dict) and task.get("taskType") == "upscale" and task.get("taskUUID") in job_ids:
                tasks[str(task["taskUUID"])] = task
    return tasks


def test_resubmissions_answered_conflict_task_uuid_go_on_as_submitted(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.emulator is not None
    # Every invocation dies once after Runware accepted its tasks; the retry sends them again.
    stack.emulator.faults = FaultConfig(latency_seconds=1.5)
    crash = CrashOnce()
    monkeypatch.setattr("tests.reliability.test_submit_crashes.CRASH_SHARE", 1.0)
    crash_after_runware(stack.functions["SubmitFunction"].module.submitter, crash, monkeypatch)
    prefix = "rel-paid-conflict/"

    row, _ = run_scenario(stack, "re-submissions answered conflictTaskUUID", prefix, photos(scaled(8, 30)))

    assert row.completed == row.objects
    sent_twice = [uuids for uuids in sent_tasks(stack, prefix).values() if len(uuids) == 2]
    assert sent_twice, "no task was sent twice: the scenario tested nothing"
    assert all(len(set(uuids)) == 1 for uuids in sent_twice)  # under the same taskUUID, answered conflictTaskUUID
    # The repeats went in batches; each repeat request is answered 400 with conflictTaskUUID per task.
    assert stack.emulator.stats()["responses_by_status"].get("400", 0) >= 1


def test_an_account_refusal_fails_no_job_and_intake_resumes_once_the_key_is_fixed(stack: LocalStack) -> None:
    assert stack.emulator is not None
    stack.emulator.faults = FaultConfig(account_error_status=401)
    prefix = "rel-paid-account/"
    key_prefix = stack.names["inbox_prefix"] + prefix
    started = time.monotonic()
    dropped = drop_all(stack, prefix, photos(scaled(6, 30)))

    def all_waiting() -> bool:
        jobs = jobs_by_key(stack, prefix)
        return len(jobs) == len(dropped) and all(
            "invalidApiKey" in job.get("waitingReason", "") for job in jobs.values()
        )

    wait_on_stack(stack, all_waiting, "the jobs never waited for the account", poll_seconds=0.5)
    for job in jobs_by_key(stack, prefix).values():
        assert job["status"] == "CLAIMED", job
    letters = [letter for letter in dead_letters(stack) if any(k.startswith(key_prefix) for _, k, _ in letter.sources)]
    assert letters == [], "a refusal of the account dead-letters nothing"

    stack.emulator.faults = FaultConfig()  # the key is fixed; nobody re-drives anything
    settled = settle(stack, prefix, dropped)
    after = check(
        stack,
        "Runware 401 for the account: intake waits, then resumes",
        prefix,
        dropped,
        started=started,
        settled=settled,
    )
    assert_invariant(after)
    assert (after.completed, after.failed, after.in_dlq) == (after.objects, 0, 0)
    assert all("waitingReason" not in job for job in jobs_by_key(stack, prefix).values())


def test_tasks_getresponse_forgot_with_every_webhook_lost_complete_from_their_outputs(stack: LocalStack) -> None:
    assert stack.emulator is not None
    stack.emulator.faults = FaultConfig(drop_webhook_rate=1.0, forget_after_seconds=0.1)
    prefix = "rel-paid-forgotten/"

    row, _ = run_scenario(stack, "getResponse forgets tasks, webhooks dropped", prefix, photos(scaled(8, 30)))

    assert row.completed == row.objects
    for job in jobs_by_key(stack, prefix).values():
        assert job["resultVia"] == "reconcile", job
        assert job["lateResult"] is True, job  # found in the bucket: Runware never said


def test_a_put_to_the_staging_url_after_completion_changes_nothing(stack: LocalStack) -> None:
    assert stack.emulator is not None
    stack.emulator.faults = FaultConfig()
    prefix = "rel-paid-staging/"
    row, _ = run_scenario(stack, "PUT to a staging URL after completion", prefix, photos(scaled(4, 20)))
    assert row.completed == row.objects
    s3 = aws(stack, "s3")
    before = {
        job["jobId"]: (job, s3.head_object(Bucket=job["outputBucket"], Key=job["outputKey"])["ETag"])
        for job in jobs_by_key(stack, prefix).values()
    }
    tasks = upscale_tasks(stack, set(before))

    for job_id, (job, _) in before.items():
        impostor = io.BytesIO()
        Image.new("RGB", (int(job["outputWidth"]), int(job["outputHeight"])), (255, 0, 0)).save(impostor, "JPEG")
        put = httpx.put(tasks[job_id]["uploadEndpoint"], content=impostor.getvalue(), timeout=10)
        assert put.status_code == 200, put.text  # the URL still works: what it reaches must not matter
        # The webhook, delivered again, and a reconcile run find nothing to change.
        webhook = httpx.post(tasks[job_id]["webhookURL"], json={"data": [{"taskUUID": job_id, "imageUUID": job_id}]})
        assert webhook.status_code == 200, webhook.text
    stack.reconcile_now()

    after = jobs_by_key(stack, prefix)
    for job, etag in before.values():
        assert after[job["sourceKey"]] == job
        assert s3.head_object(Bucket=job["outputBucket"], Key=job["outputKey"])["ETag"] == etag


HOSTILE_WEBHOOK_BODIES: list[bytes] = [
    b'{"data": [' + b'{"a": [' * 3000 + b"1" + b"]}" * 3000 + b"]}",
    b'{"data": [{"taskUUID": null, "status": "success", "cost": NaN, "imageUUID": Infinity}]}',
    json.dumps({"data": [{"status": ["success"], "imageUUID": {"id": 1}, "cost": "free"}]}).encode(),
    json.dumps({"errors": [{"code": {"nested": True}, "message": "x" * 200_000}]}).encode(),
    b'"just a string"',
    b"[1, 2, 3]",
]


def test_hostile_items_in_webhooks_and_getresponse_answer_no_5xx_and_hold_back_no_job(stack: LocalStack) -> None:
    assert stack.emulator is not None
    # Webhooks come late, so the hostile bodies reach the function first; half the webhooks are lost
    # and getResponse answers carry hostile items beside the real ones.
    stack.emulator.faults = FaultConfig(webhook_delay_seconds=2.0, drop_webhook_rate=0.5, getresponse_junk_items=3)
    prefix = "rel-paid-hostile/"
    answers: list[int] = []

    def post_hostile_bodies(dropped: list[Any]) -> None:
        tasks: dict[str, dict[str, Any]] = {}

        def every_task_sent() -> bool:
            nonlocal tasks
            jobs = {job["jobId"] for job in jobs_by_key(stack, prefix).values()}
            tasks = upscale_tasks(stack, jobs)
            return len(tasks) >= len(dropped)

        wait_on_stack(
            stack,
            every_task_sent,
            "not every upscale task was sent",
            progress=lambda: len(tasks),
            pending=lambda: f"{len(tasks)} of {len(dropped)} tasks sent",
        )
        for index, task in enumerate(tasks.values()):
            body = HOSTILE_WEBHOOK_BODIES[index % len(HOSTILE_WEBHOOK_BODIES)]
            reply = httpx.post(task["webhookURL"], content=body, headers={"Content-Type": "application/json"})
            answers.append(reply.status_code)

    row, _ = run_scenario(
        stack,
        "hostile items in webhooks and getResponse",
        prefix,
        photos(scaled(8, 30)),
        during=post_hostile_bodies,
    )

    assert answers, "no hostile body was sent"
    assert all(status < 500 for status in answers), answers
    assert row.completed == row.objects
