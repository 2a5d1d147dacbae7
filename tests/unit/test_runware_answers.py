"""Reading Runware's answers: every contract fixture by name, then the rules each reader keeps.

Acknowledgements (read_submission), getResponse answers (read_poll) and webhook bodies
(read_webhook) become typed outcomes; an account refusal is the request's, never a task's.
"""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.contract.runware_contract import Fixture, by_name, load_fixtures
from upscaler.runware_answers import (
    Accepted,
    AccountRefusal,
    AlreadySubmitted,
    Failed,
    Pending,
    PollAnswer,
    Report,
    SubmissionAnswer,
    Succeeded,
    TaskError,
    TaskResult,
    read_poll,
    read_submission,
    read_webhook,
)

T1 = "3f1c6a2e-8b4d-4c1e-9a7f-2d5b6c8e9f01"
T2 = "7a2b9c4d-1e3f-4a5b-8c6d-0e1f2a3b4c5d"
T3 = "0f8e2b1c-3d4a-4b5c-8d6e-7f8091a2b3c4"
IMAGE_UUID = "5d2e7f1a-9c3b-4e8d-a6f0-1b2c3d4e5f60"
RESULT = TaskResult(T1, IMAGE_UUID, f"https://im.runware.ai/image/ws/2/ii/{IMAGE_UUID}.jpg", Decimal("0.005"))
EVENTS = Path(__file__).resolve().parents[2] / "events"


def invalid(parameter: str, task_uuid: str = T1) -> Failed:
    message = f"Invalid value for {parameter} parameter."
    return Failed(TaskError("invalidParameter", message, parameter, task_uuid, "upscale"))


def account(status: int, code: str, message: str, parameter: str | None = None, task_type: str | None = None):
    return AccountRefusal(TaskError(code, message, parameter, None, task_type), status)


# --- every fixture of the contract, by name -------------------------------------------------------

ACCOUNT = {
    "rest/account-invalid-api-key-401": account(
        401, "invalidApiKey", "Invalid API key. Get one at https://my.runware.ai/signup", "apiKey", "authentication"
    ),
    "rest/account-401-no-body": account(401, "http401", "Unauthorized"),
    "rest/account-insufficient-credits-402": account(
        402, "insufficientCredits", "Insufficient credits.", None, "upscale"
    ),
    "rest/account-forbidden-403": account(
        403, "insufficientPermissions", "The API key does not have permission for this request.", None, "upscale"
    ),
}
# What read_submission makes of each acknowledgement: per task named, or the account refusal.
SUBMISSIONS: dict[str, dict[str, Any] | AccountRefusal] = {
    "rest/async-ack": {T1: Accepted(T1)},
    "rest/async-ack-empty": {T1: Accepted(T1)},  # a 2xx that names no task accepted it
    "rest/sync-success": {T1: Accepted(T1)},
    "rest/error-envelope": {T1: invalid("targetMegapixels")},
    "rest/multi-task-data-and-errors": {T1: Accepted(T1), T2: invalid("outputQuality", T2)},
    "rest/conflict-task-uuid": {
        T1: AlreadySubmitted(TaskError("conflictTaskUUID", f"Task {T1} already exists.", None, T1, "upscale"))
    },
    "rest/conflict-task-uuid-context": {
        T1: AlreadySubmitted(TaskError("conflictTaskUUID", "Duplicate taskUUID.", None, T1, "upscale"))
    },
    "rest/upload-failed": {
        T1: Failed(TaskError("uploadFailed", "Failed to upload the result to uploadEndpoint.", None, T1, "upscale"))
    },
    **ACCOUNT,
}
NOT_FOUND = TaskError("taskFailedOrNotFound", "Task failed or not found.", None, T1)
# What read_poll makes of each getResponse answer (and of the account refusals and the sync result).
POLLS: dict[str, dict[str, Any] | AccountRefusal] = {
    "getResponse/processing": {T1: Pending(T1, "processing")},
    "getResponse/pending": {T1: Pending(T1, "pending")},
    "getResponse/success": {T1: Succeeded(RESULT)},
    "rest/sync-success": {T1: Succeeded(RESULT)},
    "getResponse/error-top-level": {T1: Failed(TaskError("timeoutProvider", "Provider timed out", None, T1))},
    "getResponse/error-nested-data-item": {T1: Failed(TaskError("inferenceError", "one of N failed", None, T1))},
    "getResponse/not-found": {T1: Failed(replace(NOT_FOUND, task_type="getResponse"))},
    "getResponse/not-found-nested": {T1: Failed(NOT_FOUND)},
    "getResponse/upload-failed-image-url": {
        T1: Failed(
            TaskError(
                "uploadFailed",
                "Failed to upload the result to uploadEndpoint.",
                None,
                T1,
                "upscale",
                f"https://im.runware.ai/image/ws/2/ii/{IMAGE_UUID}.png",
            )
        )
    },
    **ACCOUNT,
}
TIMEOUT = ("timeoutProvider", "Provider timed out")
# What read_webhook makes of each body: the result, or (code, message) of the failure.
WEBHOOKS: dict[str, TaskResult | tuple[str, str]] = {
    "webhook/envelope-success": RESULT,
    "webhook/bare-success": RESULT,
    "webhook/array-of-results": RESULT,
    "webhook/envelope-error": TIMEOUT,
    "webhook/bare-error": TIMEOUT,
    "webhook/error-object": TIMEOUT,
    "webhook/nested-error-item": ("inferenceError", "Inference failed"),
    "webhook/upload-failed": ("uploadFailed", "Failed to upload the result to uploadEndpoint."),
}
# Retried by the transport, never read here (tests/unit/test_runware.py).
RETRIED = ("rest/rate-limited-429",)


def task_uuids(fixture: Fixture) -> list[str]:
    return [task["taskUUID"] for task in fixture.request or ()]


def expected_answer(cls: type, fixture: Fixture, expected: dict[str, Any] | AccountRefusal) -> Any:
    if isinstance(expected, AccountRefusal):
        return cls(fixture.http_status, account=expected)
    return cls(fixture.http_status, expected)


@pytest.mark.parametrize("name", SUBMISSIONS)
def test_each_acknowledgement_reads_as_the_contract_says(name):
    fixture = by_name(name)
    answer = read_submission(fixture.http_status, fixture.body_bytes(), task_uuids(fixture))
    assert answer == expected_answer(SubmissionAnswer, fixture, SUBMISSIONS[name])


@pytest.mark.parametrize("name", POLLS)
def test_each_poll_answer_reads_as_the_contract_says(name):
    fixture = by_name(name)
    answer = read_poll(fixture.http_status, fixture.body_bytes(), task_uuids(fixture))
    assert answer == expected_answer(PollAnswer, fixture, POLLS[name])


@pytest.mark.parametrize("name", WEBHOOKS)
def test_each_webhook_body_reads_as_the_contract_says(name):
    parsed = read_webhook(by_name(name).body, "00000000-0000-4000-8000-000000000000")
    assert parsed.malformed == 0
    [report] = parsed.reports
    expected = WEBHOOKS[name]
    if isinstance(expected, TaskResult):
        assert report == Succeeded(expected)
    else:
        assert isinstance(report, Failed) and not report.not_found
        assert (report.error.code, report.error.message, report.task_uuid) == (*expected, T1)


def test_the_task_details_answer_holds_the_documented_response_envelope():
    # getTaskDetails echoes the original response whole; the pipeline does not send it.
    [details] = by_name("getTaskDetails/success").body["data"]
    assert details["request"]["taskUUID"] == T1
    assert read_webhook(details["response"], T1).reports == [Succeeded(RESULT)]


# Outcome kinds each contract meaning stands for, per reader.
MEANINGS: dict[str, tuple[type, ...]] = {
    "accepted": (Accepted,),
    "result": (Accepted, Succeeded),  # acknowledged when submitted; the result when polled or posted
    "processing": (Pending,),
    "task-failed": (Failed,),
    "retryable": (Failed,),  # uploadFailed at submission ends the job (the output is never written)
    "not-found": (Failed,),
    "conflict": (AlreadySubmitted,),
    "account": (AccountRefusal,),
}


@pytest.mark.parametrize("fixture", load_fixtures(), ids=lambda fixture: fixture.name)
def test_every_fixture_reads_as_its_meaning(fixture):
    if fixture.name in RETRIED or fixture.kind == "getTaskDetails":
        assert fixture.name in RETRIED or fixture.name == "getTaskDetails/success"
        return
    if fixture.kind == "webhook":
        outcomes: list[Any] = list(read_webhook(fixture.body, T1).reports)
    else:
        read = read_submission if fixture.kind == "rest" else read_poll
        answer = read(fixture.http_status, fixture.body_bytes(), task_uuids(fixture))
        # The meaning is about the request's last task (multi-task: the refused one beside an accepted one).
        outcomes = [answer.account] if answer.account else [answer.outcome(task_uuids(fixture)[-1])]
    [outcome] = outcomes
    assert isinstance(outcome, MEANINGS[fixture.meaning])
    if isinstance(outcome, Failed):
        assert outcome.not_found is (fixture.meaning == "not-found")


# --- acknowledgements ------------------------------------------------------------------------------


def submitted(status: int, body: Any, tasks: list[str]) -> SubmissionAnswer:
    return read_submission(status, body if isinstance(body, bytes) else json.dumps(body).encode(), tasks)


def polled(status: int, body: Any, tasks: list[str]) -> PollAnswer:
    return read_poll(status, body if isinstance(body, bytes) else json.dumps(body).encode(), tasks)


def test_a_refused_request_naming_other_tasks_leaves_this_one_unanswered():
    errors = [{"code": "invalidImage", "message": "cannot fetch input", "taskUUID": T1}]
    answer = submitted(400, {"errors": errors}, [T1, T2])
    assert answer.outcome(T1) == Failed(TaskError("invalidImage", "cannot fetch input", None, T1))
    assert answer.outcome(T2) is None  # stays CLAIMED; the retried invocation sends it again


def test_an_error_naming_no_task_applies_to_every_task_without_an_answer():
    answer = submitted(404, {"errors": [{"code": "notFound", "message": "notFound text"}]}, [T1, T2])
    assert answer.account is None
    assert answer.outcomes == {t: Failed(TaskError("notFound", "notFound text", None, t)) for t in (T1, T2)}
    both = {"data": [{"taskUUID": T1}], "errors": [{"code": "timeoutProvider", "message": "provider timed out"}]}
    answer = submitted(200, both, [T1, T2])
    assert answer.outcome(T1) == Accepted(T1)
    assert answer.outcome(T2) == Failed(TaskError("timeoutProvider", "provider timed out", None, T2))


def test_an_error_status_without_a_json_body_fails_every_task():
    answer = submitted(400, b"<html>Bad Request</html>", [T1])
    assert answer.outcome(T1) == Failed(TaskError("http400", "<html>Bad Request</html>", None, T1))


def test_answers_are_matched_by_task_uuid_not_position():
    data = [{"taskUUID": t, "status": "success", "imageUUID": f"image-{t[:4]}"} for t in (T3, T2, T1)]
    answer = polled(200, {"data": data}, [T1, T2, T3])
    assert {t: outcome.result.image_uuid for t, outcome in answer.outcomes.items()} == {
        t: f"image-{t[:4]}" for t in (T1, T2, T3)
    }


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("conflictTaskUUID", AlreadySubmitted),
        # Loose duplicate hints are no longer read as "already submitted": only conflictTaskUUID is.
        ("duplicateTaskUUID", Failed),
        ("DUPLICATE_TASK_UUID", Failed),
        ("taskAlreadyExists", Failed),
        ("existingTaskUUID", Failed),
        ("invalidTargetMegapixels", Failed),
    ],
)
def test_only_conflict_task_uuid_means_already_submitted(code, outcome):
    answer = submitted(400, {"errors": [{"code": code, "message": "x", "taskUUID": T1}]}, [T1])
    assert type(answer.outcome(T1)) is outcome


@pytest.mark.parametrize(
    ("status", "error", "is_account"),
    [
        (401, {"code": "anything"}, True),
        (402, {"code": "madeUp"}, True),  # the status says it: an unknown code under 402 is the account's
        (403, {"code": "forbiddenModel", "taskUUID": T1}, True),
        (200, {"code": "invalidApiKey"}, True),
        (200, {"code": "insufficientCredits", "taskUUID": T1}, True),
        (400, {"code": "insufficientPermissions"}, True),
        (400, {"code": "whatever", "taskType": "authentication"}, True),
        # Codes once guessed to be the account's are a task's (or every task's) failure under 400.
        (400, {"code": "quotaExceeded"}, False),
        (400, {"code": "accountSuspended"}, False),
        (400, {"code": "missingApiKey", "taskUUID": T1}, False),
        (400, {"code": "madeUp"}, False),
    ],
)
def test_account_refusals_are_the_documented_statuses_task_type_and_codes(status, error, is_account):
    body = {"errors": [{"message": "refused", **error}]}
    for answer in (submitted(status, body, [T1, T2]), polled(status, body, [T1, T2])):
        if is_account:
            assert answer.account == AccountRefusal(
                TaskError(error["code"], "refused", None, error.get("taskUUID"), error.get("taskType")), status
            )
            assert answer.outcomes == {}, "an account refusal is no task's failure"
        else:
            assert answer.account is None
            assert isinstance(answer.outcome(T1), Failed)


# --- getResponse -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "not_found"),
    [
        ("taskFailedOrNotFound", True),
        ("taskCancelled", True),
        ("taskNotFound", True),
        ("taskExpired", True),
        ("unknownModel", False),
        ("timeoutProvider", False),
        # The SDK's codes are compared as they are: case and separators are no longer ignored.
        ("TASK_NOT_FOUND", False),
    ],
)
def test_runware_no_longer_knowing_the_task_is_the_sdks_not_found_codes(code, not_found):
    answer = polled(200, {"errors": [{"code": code, "message": "x", "taskUUID": T1}]}, [T1])
    assert isinstance(answer.outcome(T1), Failed) and answer.outcome(T1).not_found is not_found


@pytest.mark.parametrize("status", ["processing", "PENDING", "queued", "scheduled", "waiting"])
def test_not_done_statuses_are_pending(status):
    assert polled(200, {"data": [{"taskUUID": T1, "status": status}]}, [T1]).outcome(T1) == Pending(T1, status.lower())


def test_a_finished_item_is_never_replaced_by_a_running_one():
    success, processing = by_name("getResponse/success"), by_name("getResponse/processing")
    for data in (success.body["data"] + processing.body["data"], processing.body["data"] + success.body["data"]):
        assert polled(200, {"data": data}, [T1]).outcome(T1) == Succeeded(RESULT)


def test_a_finished_item_with_a_code_and_no_image_is_a_failure():
    answer = polled(200, {"data": [{"taskUUID": T1, "code": "inferenceError", "message": "boom"}]}, [T1])
    assert answer.outcome(T1) == Failed(TaskError("inferenceError", "boom", None, T1))


def test_a_finished_item_with_no_image_is_counted_and_gives_nothing():
    answer = polled(200, {"data": [{"taskUUID": T1, "status": "success", "cost": 0.01}]}, [T1])
    assert (answer.outcomes, answer.malformed) == ({}, 1)


def test_the_account_refusal_leaves_every_task_unanswered():
    fixture = by_name("rest/account-invalid-api-key-401")
    answer = read_submission(fixture.http_status, fixture.body_bytes(), [T1, T2])
    assert answer.outcomes == {} and answer.account is not None


@pytest.mark.parametrize(
    ("body", "malformed"),
    [(b"not json", 1), (b"[]", 0), (b'{"data": "x", "errors": [1, "two"]}', 3), (b'{"data": [{"no": "uuid"}, 5]}', 2)],
)
def test_malformed_poll_bodies_give_nothing_and_are_counted(body, malformed):
    answer = polled(200, body, [T1])
    assert (answer.outcomes, answer.account, answer.malformed) == ({}, None, malformed)


def test_an_error_about_a_task_not_asked_about_is_counted_not_kept():
    answer = polled(200, {"errors": [{"code": "inferenceError", "taskUUID": T2}]}, [T1])
    assert (answer.outcomes, answer.malformed) == ({}, 1)


# --- webhook bodies --------------------------------------------------------------------------------

JOB_ID = "7385b5c0-ffc2-4024-b9ba-1dc0426e58c9"
RESULT_ITEM = {
    "taskType": "upscale",
    "taskUUID": JOB_ID,
    "imageUUID": "2af4c8a9-5865-46b2-a4e3-b011d3dcd03e",
    "imageURL": "https://im.runware.ai/image/ws/2/ii/2af4c8a9-5865-46b2-a4e3-b011d3dcd03e.jpg",
    "cost": 0.0052,
}
ERROR_ITEM = {
    "code": "invalidImageURL",
    "message": "The image at inputs.image could not be downloaded.",
    "parameter": "inputs.image",
    "taskType": "upscale",
    "taskUUID": JOB_ID,
    "documentation": "https://runware.ai/docs",
}
ERROR = TaskError(
    "invalidImageURL", "The image at inputs.image could not be downloaded.", "inputs.image", JOB_ID, "upscale"
)


def reports(payload: Any) -> list[Report]:
    return read_webhook(payload, JOB_ID).reports


def test_the_envelope_and_a_bare_object_read_alike_with_every_field():
    result = Succeeded(TaskResult(JOB_ID, RESULT_ITEM["imageUUID"], RESULT_ITEM["imageURL"], Decimal("0.0052")))
    assert reports({"data": [RESULT_ITEM]}) == reports(RESULT_ITEM) == reports({"data": RESULT_ITEM}) == [result]
    assert reports({"errors": [ERROR_ITEM]}) == reports(ERROR_ITEM) == reports({"error": ERROR_ITEM}) == [Failed(ERROR)]


def test_a_data_item_with_status_error_is_an_error_not_a_result():
    item = {"taskUUID": JOB_ID, "status": "error", "code": "timeoutProvider", "message": "provider timed out"}
    assert reports({"data": [item]}) == [Failed(TaskError("timeoutProvider", "provider timed out", None, JOB_ID))]


def test_results_come_first_then_errors_and_arrays_keep_their_order():
    assert [type(r) for r in reports({"errors": [ERROR_ITEM], "data": [RESULT_ITEM]})] == [Succeeded, Failed]
    assert [type(r) for r in reports([RESULT_ITEM, ERROR_ITEM])] == [Succeeded, Failed]


@pytest.mark.parametrize("task_uuid", [None, ""])
def test_items_without_a_task_uuid_belong_to_the_job_in_the_url(task_uuid):
    item = {key: value for key, value in RESULT_ITEM.items() if key != "taskUUID"}
    assert [r.task_uuid for r in reports(item)] == [JOB_ID]
    assert [r.task_uuid for r in reports({**item, "taskUUID": task_uuid})] == [JOB_ID]
    assert [r.task_uuid for r in reports({"data": [{**RESULT_ITEM, "taskUUID": T1}]})] == [T1]


def test_a_result_with_only_an_image_url_is_accepted():
    [report] = reports({"taskUUID": JOB_ID, "imageURL": RESULT_ITEM["imageURL"]})
    assert report == Succeeded(TaskResult(JOB_ID, None, RESULT_ITEM["imageURL"], None))


@pytest.mark.parametrize(
    ("cost", "kept"),
    [
        (0.1 + 0.2, Decimal(str(0.1 + 0.2))),
        (3, Decimal(3)),
        (0, Decimal(0)),
        (None, None),
        (True, None),
        ("0.01", None),
        ([1], None),
    ],
)
def test_cost_is_kept_exact_and_booleans_strings_or_lists_are_not_costs(cost, kept):
    [report] = reports({**RESULT_ITEM, "cost": cost})
    assert isinstance(report, Succeeded) and report.result.cost == kept


def test_an_error_without_code_or_message_still_records_something_readable():
    assert reports({"errors": [{"taskUUID": JOB_ID}]}) == [
        Failed(TaskError("unknownError", "no message", None, JOB_ID))
    ]
    assert reports({"error": "boom", "taskUUID": JOB_ID, "code": 7}) == [Failed(TaskError("7", "boom", None, JOB_ID))]


@pytest.mark.parametrize(
    "payload",
    [
        {"data": [], "errors": []},
        {"data": None},
        [],
        {"taskUUID": JOB_ID, "status": "processing"},
        {"taskUUID": JOB_ID, "cost": 0.01},
        "a string",
        42,
        None,
        True,
        {"data": ["not an object"]},
        {"data": 7},
        {"errors": "boom"},
        [5, "x"],
    ],
)
def test_bodies_with_nothing_readable_give_no_report(payload):
    parsed = read_webhook(payload, JOB_ID)
    assert parsed.reports == [] and parsed.problem


def test_unreadable_items_are_counted_and_the_readable_ones_kept():
    body = read_webhook([5, {"taskUUID": 7, "imageURL": "x"}, RESULT_ITEM, {"data": "?"}], JOB_ID)
    assert [type(report) for report in body.reports] == [Succeeded]
    assert body.malformed == 3
    assert "not a JSON object" in body.problem and "taskUUID is not a string" in body.problem


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("webhook-success-envelope.json", Succeeded),
        ("webhook-success-bare.json", Succeeded),
        ("webhook-error-envelope.json", Failed),
        ("webhook-error-bare.json", Failed),
    ],
)
def test_sample_event_bodies_read_as_their_names_say(name, kind):
    event = json.loads((EVENTS / name).read_text())
    job_id = event["queryStringParameters"]["job"]
    [report] = read_webhook(json.loads(event["body"]), job_id).reports
    assert isinstance(report, kind) and report.task_uuid == job_id


def test_an_upload_failure_is_told_apart_and_a_result_url_it_carries_is_kept():
    url = "https://im.runware.ai/image/ws/2/ii/5d2e7f1a-9c3b-4e8d-a6f0-1b2c3d4e5f60.jpg"
    # Not documented: an imageURL beside uploadFailed, at the top level or inside a nested error.
    top = {"errors": [{"code": "uploadFailed", "message": "PUT failed", "taskUUID": T1, "imageURL": url}]}
    nested = {"data": [{"taskUUID": T1, "status": "error", "error": {"code": "uploadFailed", "imageURL": url}}]}
    for payload in (top, nested):
        [outcome] = read_poll(200, json.dumps(payload).encode(), [T1]).outcomes.values()
        assert isinstance(outcome, Failed) and outcome.error.upload_failed and outcome.error.image_url == url
    documented = read_poll(200, json.dumps({"errors": [{"code": "uploadFailed", "taskUUID": T1}]}).encode(), [T1])
    assert documented.outcomes[T1].error.image_url is None
    assert not TaskError("timeoutProvider", "late").upload_failed
