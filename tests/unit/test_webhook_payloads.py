"""Reading webhook bodies: the envelope, a bare object, arrays, and what is refused."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from upscaler.models import TaskError, TaskResult
from upscaler.webhook_payloads import MalformedPayload, read_webhook_body, report_from_item, reports_from_payload

JOB_ID = "7385b5c0-ffc2-4024-b9ba-1dc0426e58c9"
OTHER_ID = "0f8e2b1c-3d4a-4b5c-8d6e-7f8091a2b3c4"
EVENTS = Path(__file__).resolve().parents[2] / "events"

RESULT = {
    "taskType": "upscale",
    "taskUUID": JOB_ID,
    "imageUUID": "2af4c8a9-5865-46b2-a4e3-b011d3dcd03e",
    "imageURL": "https://im.runware.ai/image/ws/2/ii/2af4c8a9-5865-46b2-a4e3-b011d3dcd03e.jpg",
    "cost": 0.0052,
}
ERROR = {
    "code": "invalidImageURL",
    "message": "The image at inputs.image could not be downloaded.",
    "parameter": "inputs.image",
    "taskType": "upscale",
    "taskUUID": JOB_ID,
}


def test_success_envelope_gives_one_result_with_every_field():
    [report] = reports_from_payload({"data": [RESULT]}, JOB_ID)

    assert report == TaskResult(
        task_uuid=JOB_ID,
        image_uuid=RESULT["imageUUID"],
        image_url=RESULT["imageURL"],
        cost=Decimal("0.0052"),
    )


def test_bare_result_object_reads_like_the_envelope():
    assert reports_from_payload(RESULT, JOB_ID) == reports_from_payload({"data": [RESULT]}, JOB_ID)


def test_error_envelope_keeps_code_message_and_parameter():
    [report] = reports_from_payload({"errors": [ERROR]}, JOB_ID)

    assert report == TaskError(
        code="invalidImageURL",
        message="The image at inputs.image could not be downloaded.",
        parameter="inputs.image",
        task_uuid=JOB_ID,
        task_type="upscale",
    )


def test_bare_error_object_is_read_as_an_error():
    assert reports_from_payload(ERROR, JOB_ID) == reports_from_payload({"errors": [ERROR]}, JOB_ID)


def test_error_wrapped_in_an_error_key_is_read_as_an_error():
    [report] = reports_from_payload({"error": ERROR}, JOB_ID)

    assert isinstance(report, TaskError)
    assert report.code == "invalidImageURL"


def test_data_item_with_status_error_is_an_error_not_a_result():
    item = {"taskUUID": JOB_ID, "status": "error", "code": "timeoutProvider", "message": "provider timed out"}

    [report] = reports_from_payload({"data": [item]}, JOB_ID)

    assert isinstance(report, TaskError)
    assert (report.code, report.message) == ("timeoutProvider", "provider timed out")


def test_envelope_with_data_and_errors_gives_results_first_then_errors():
    reports = reports_from_payload({"errors": [ERROR], "data": [RESULT]}, JOB_ID)

    assert [type(report) for report in reports] == [TaskResult, TaskError]


def test_top_level_array_of_items_is_accepted():
    reports = reports_from_payload([RESULT, ERROR], JOB_ID)

    assert [type(report) for report in reports] == [TaskResult, TaskError]


def test_items_without_task_uuid_belong_to_the_job_in_the_url():
    bare = {key: value for key, value in RESULT.items() if key != "taskUUID"}

    [report] = reports_from_payload(bare, JOB_ID)

    assert report.task_uuid == JOB_ID


def test_item_with_null_task_uuid_belongs_to_the_job_in_the_url():
    [report] = reports_from_payload({**RESULT, "taskUUID": None}, JOB_ID)

    assert report.task_uuid == JOB_ID


def test_items_naming_another_task_keep_that_task_uuid():
    [report] = reports_from_payload({"data": [{**RESULT, "taskUUID": OTHER_ID}]}, JOB_ID)

    assert report.task_uuid == OTHER_ID


def test_result_with_only_an_image_url_is_accepted():
    [report] = reports_from_payload({"taskUUID": JOB_ID, "imageURL": RESULT["imageURL"]}, JOB_ID)

    assert isinstance(report, TaskResult)
    assert report.image_uuid is None
    assert report.image_url == RESULT["imageURL"]


def test_single_object_under_data_is_accepted():
    [report] = reports_from_payload({"data": RESULT}, JOB_ID)

    assert isinstance(report, TaskResult)
    assert report.image_uuid == RESULT["imageUUID"]


def test_cost_is_kept_exact_and_booleans_or_strings_are_not_costs():
    assert report_from_item({**RESULT, "cost": 0.1 + 0.2}, JOB_ID).cost == Decimal(str(0.1 + 0.2))
    assert report_from_item({**RESULT, "cost": 3}, JOB_ID).cost == Decimal(3)
    assert report_from_item({**RESULT, "cost": True}, JOB_ID).cost is None
    assert report_from_item({**RESULT, "cost": "0.01"}, JOB_ID).cost is None
    assert report_from_item({key: v for key, v in RESULT.items() if key != "cost"}, JOB_ID).cost is None


def test_error_without_code_or_message_still_records_something_readable():
    [report] = reports_from_payload({"errors": [{"taskUUID": JOB_ID}]}, JOB_ID)

    assert (report.code, report.message) == ("unknownError", "no message")


@pytest.mark.parametrize(
    "payload",
    [
        {"data": [], "errors": []},
        {"data": None},
        [],
        {"taskUUID": JOB_ID, "status": "processing"},
        {"taskUUID": JOB_ID, "cost": 0.01},
    ],
    ids=["empty-envelope", "null-data", "empty-array", "processing-only", "no-image"],
)
def test_bodies_with_no_result_and_no_error_are_refused(payload):
    with pytest.raises(MalformedPayload):
        reports_from_payload(payload, JOB_ID)


@pytest.mark.parametrize(
    "payload",
    ["a string", 42, None, True, {"data": ["not an object"]}, {"data": 7}, {"errors": "boom"}, [5, "x"]],
    ids=["string", "number", "null", "bool", "string-item", "number-data", "string-errors", "no-object-item"],
)
def test_bodies_that_are_not_objects_or_hold_non_object_items_are_refused(payload):
    with pytest.raises(MalformedPayload):
        reports_from_payload(payload, JOB_ID)


def test_unreadable_items_are_counted_and_the_readable_ones_kept():
    body = read_webhook_body([5, {"taskUUID": 7, "imageURL": "x"}, RESULT, {"data": "?"}], JOB_ID)
    assert [type(report) for report in body.reports] == [TaskResult]
    assert body.malformed == 3
    assert "not a JSON object" in body.problem and "taskUUID is not a string" in body.problem


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("webhook-success-envelope.json", TaskResult),
        ("webhook-success-bare.json", TaskResult),
        ("webhook-error-envelope.json", TaskError),
        ("webhook-error-bare.json", TaskError),
    ],
)
def test_sample_event_bodies_parse_as_their_names_say(name, kind):
    event = json.loads((EVENTS / name).read_text())
    job_id = event["queryStringParameters"]["job"]

    [report] = reports_from_payload(json.loads(event["body"]), job_id)

    assert isinstance(report, kind)
    assert report.task_uuid == job_id
