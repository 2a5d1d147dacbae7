"""The settle rules (through the safety-net pass) on every getResponse answer in the Runware contract,
and on the account refusals: what each one does to a stale job, with and without its output in the
bucket.

A verified output always wins: whatever Runware answers (failed, not found, processing past the
maximum age), a job whose output is there ends COMPLETED. An account refusal changes no job.
"""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest

from tests.conftest import JOBS_TABLE, OUTPUT_BUCKET
from tests.contract.runware_contract import Fixture, by_name, of_kind
from tests.unit.test_reconciliation import ANCIENT, STALE, add_job, make_reconciler, png_bytes
from upscaler.job_record import Job
from upscaler.jobs import JobStore
from upscaler.reconciliation import Reconciler, ReconcileReport

# The taskUUID the contract's fixtures use for the task they answer about.
FIXTURE_TASK_UUID = "3f1c6a2e-8b4d-4c1e-9a7f-2d5b6c8e9f01"
ACCOUNT_FIXTURES = (
    "rest/account-invalid-api-key-401",
    "rest/account-401-no-body",
    "rest/account-insufficient-credits-402",
    "rest/account-forbidden-403",
)

# meaning -> status after one run: (no output, young job), (no output, past the maximum age),
# (output in the bucket, young job), (output in the bucket, past the maximum age). A task still
# processing is not looked for in the bucket until it would time out: Runware will say.
EXPECTED = {
    "processing": ("SUBMITTED", "TIMED_OUT", "SUBMITTED", "COMPLETED"),
    "result": ("SUBMITTED", "TIMED_OUT", "COMPLETED", "COMPLETED"),
    "task-failed": ("FAILED", "FAILED", "COMPLETED", "COMPLETED"),
    "not-found": ("SUBMITTED", "TIMED_OUT", "COMPLETED", "COMPLETED"),
    "account": ("SUBMITTED", "SUBMITTED", "SUBMITTED", "SUBMITTED"),
    # uploadFailed, to a recorder without recovery as here; the functions' recorders copy the result
    # from its URL or send the job again (tests/unit/test_result_recovery.py).
    "retryable": ("FAILED", "FAILED", "COMPLETED", "COMPLETED"),
}


def answering(fixture: Fixture, job_id: str) -> httpx.MockTransport:
    body = fixture.body_bytes().replace(FIXTURE_TASK_UUID.encode(), job_id.encode())

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(fixture.http_status or 200, content=body, headers={"Content-Type": "application/json"})

    return httpx.MockTransport(handler)


def reconciler_answered_by(aws, store: JobStore, transport: httpx.MockTransport) -> Reconciler:
    return make_reconciler(aws, store, transport.handle_request, max_jobs=10)


def reconcile_once(aws, fixture: Fixture, *, age: timedelta, output: bool) -> tuple[Job, ReconcileReport]:
    store = JobStore(aws.dynamodb, JOBS_TABLE)
    job_id = add_job(store, age)
    if output:
        aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=f"staging/{job_id}", Body=png_bytes())
    report = reconciler_answered_by(aws, store, answering(fixture, job_id)).run()
    job = store.get(job_id)
    assert job is not None
    return job, report


def polling_fixtures() -> list[Fixture]:
    return [*of_kind("getResponse"), *(by_name(name) for name in ACCOUNT_FIXTURES)]


@pytest.mark.parametrize("fixture", polling_fixtures(), ids=lambda fixture: fixture.name)
@pytest.mark.parametrize(
    ("case", "age", "output"),
    [(0, STALE, False), (1, ANCIENT, False), (2, STALE, True), (3, ANCIENT, True)],
    ids=["no-output", "no-output-past-max-age", "output-there", "output-there-past-max-age"],
)
def test_each_answer_settles_the_job_as_its_meaning_says(aws, fixture, case, age, output):
    job, report = reconcile_once(aws, fixture, age=age, output=output)

    assert job.status == EXPECTED[fixture.meaning][case]
    if fixture.meaning == "account":
        assert report.runware_unavailable is True
    if job.status == "COMPLETED":
        assert job.output_width == 1600
        listing = aws.s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="staging/")
        assert listing.get("KeyCount", 0) == 0, "the staged copy is removed once published"
    if job.status == "FAILED":
        code = json.dumps(fixture.body)
        assert job.error_code in code, "the failure keeps Runware's own code"


def test_a_task_runware_forgot_whose_output_is_there_completes_as_a_late_result(aws):
    job, _report = reconcile_once(aws, by_name("getResponse/not-found"), age=STALE, output=True)

    assert job.status == "COMPLETED"
    assert job.late_result is True
    assert job.result_via == "reconcile"
    assert job.cost is None


def test_success_answer_records_runware_cost_and_image(aws):
    job, _report = reconcile_once(aws, by_name("getResponse/success"), age=STALE, output=True)

    success = by_name("getResponse/success").body["data"][0]
    assert job.image_uuid == success["imageUUID"]
    assert job.late_result is None


def test_hostile_items_beside_real_answers_hold_back_no_job(aws):
    store = JobStore(aws.dynamodb, JOBS_TABLE)
    done, waiting = add_job(store, STALE), add_job(store, STALE)
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=f"staging/{done}", Body=png_bytes())
    nested = '{"error":' * 3000 + "{}" + "}" * 3000
    body = (
        '{"data": ['
        f'{{"taskUUID": "{done}", "status": "error", "error": {nested}}},'
        '{"taskUUID": 12345, "status": ["success"], "cost": NaN, "imageURL": "' + "x" * 100_000 + '"},'
        '"junk", '
        f'{{"taskType": "upscale", "taskUUID": "{done}", "status": "success", '
        f'"imageUUID": "{done}", "cost": Infinity}},'
        f'{{"taskType": "upscale", "taskUUID": "{waiting}", "status": "processing"}}'
        "]}"
    ).encode()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))

    report = reconciler_answered_by(aws, store, transport).run()

    assert store.get(done).status == "COMPLETED"
    assert store.get(done).cost is None  # Infinity is no cost
    assert store.get(waiting).status == "SUBMITTED"
    assert report.unreadable >= 2
