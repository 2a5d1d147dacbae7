"""The API over real HTTP on 127.0.0.1: authentication, request shape, validation, sync processing, task identity."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from emulator_helpers import (
    AUTH,
    MISSING,
    FakeClock,
    assert_error_shape,
    call,
    data_uri,
    decoded,
    png_bytes,
    poll,
    set_path,
    upscale_task,
)

from local.runware_emulator import (
    RunwareEmulator,
)
from tests.contract.runware_contract import by_name

# --------------------------------------------------------------------------------------------
# Authentication and request shape


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwYXNz"}])
def test_a_missing_or_empty_key_is_refused_with_401_naming_no_task(emulator, client, photo, headers):
    task = upscale_task(photo)
    response = call(client, emulator, [task], headers=headers)
    assert response.status_code == 401
    assert response.json() == by_name("rest/account-invalid-api-key-401").body, "Runware's own example, verbatim"
    assert emulator.tasks == {}


def test_without_a_configured_key_any_non_empty_key_is_accepted(emulator, client, photo):
    response = call(client, emulator, [upscale_task(photo)], headers={"Authorization": "Bearer x"})
    assert response.status_code == 200


def test_with_a_configured_key_only_that_key_is_accepted(client, photo):
    with RunwareEmulator(api_key="the-right-key") as keyed:
        wrong = call(client, keyed, [upscale_task(photo)], headers={"Authorization": "Bearer the-wrong-key"})
        assert wrong.status_code == 401
        assert wrong.json() == by_name("rest/account-invalid-api-key-401").body, "Runware's own example, verbatim"
        assert keyed.tasks == {}
        right = call(client, keyed, [upscale_task(photo)], headers={"Authorization": "Bearer the-right-key"})
        assert right.status_code == 200, right.text


def test_the_api_also_answers_at_the_root_path(emulator, client, photo):
    response = client.post(f"{emulator.base_url}/", json=[upscale_task(photo)], headers=AUTH)
    assert response.status_code == 200
    assert client.get(emulator.url).status_code == 405


@pytest.mark.parametrize("body", [b'{"taskType": "upscale"}', b"not json", b"[]", b'"text"', b"[1]"])
def test_the_body_must_be_a_non_empty_array_of_task_objects(emulator, client, body):
    response = client.post(emulator.url, content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert_error_shape(error)
    assert error["code"] == "invalidParameter"
    assert "task object" in error["message"]


def test_requests_are_recorded_in_order(emulator, client, photo):
    first, second = upscale_task(photo), upscale_task(photo)
    call(client, emulator, [first])
    client.post(emulator.url, content=b"garbage", headers=AUTH)
    call(client, emulator, [second])
    assert emulator.requests == [[first], "garbage", [second]]


# --------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("field_path", "value"),
    [
        ("taskUUID", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"),  # a version-1 UUID
        ("taskUUID", "not-a-uuid"),
        ("taskUUID", MISSING),
        ("model", "runware:100@1"),
        ("model", MISSING),
        ("inputs", "http://127.0.0.1/x.png"),
        ("inputs.image", ""),
        ("inputs.image", MISSING),
        ("targetMegapixels", 0),
        ("targetMegapixels", 9),
        ("targetMegapixels", 2.0),
        ("targetMegapixels", "2"),
        ("targetMegapixels", True),
        ("settings", "on"),
        ("settings.enhanceDetails", "yes"),
        ("settings.realism", 1),
        ("outputType", "url"),
        ("outputFormat", "GIF"),
        ("outputQuality", 19),
        ("outputQuality", 100),
        ("outputQuality", 50.5),
        ("deliveryMethod", "webhook"),
        ("webhookURL", "ftp://127.0.0.1/hook"),
        ("webhookURL", "not a url"),
        ("uploadEndpoint", "/relative/path"),
        ("ttl", 59),
        ("ttl", "3600"),
        ("includeCost", "true"),
        ("taskType", "imageInference"),
    ],
)
def test_each_invalid_field_is_named_in_a_400(emulator, client, photo, field_path, value):
    task = set_path(upscale_task(photo), field_path, value)
    response = call(client, emulator, [task])
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert_error_shape(error)
    assert error["code"] == "invalidParameter", "the contract knows no per-field codes"
    assert error["parameter"] == field_path
    assert error["documentation"] == by_name("rest/error-envelope").body["errors"][0]["documentation"]
    assert error.get("taskUUID") == task.get("taskUUID")
    assert error["taskType"] == task["taskType"]
    assert emulator.tasks == {}


def test_boundary_values_are_accepted(emulator, client, photo):
    tasks = [
        upscale_task(photo, outputQuality=20, ttl=60, outputFormat="JPG"),
        upscale_task(photo, outputQuality=99, settings={"enhanceDetails": False, "realism": True}),
        upscale_task(photo, targetMegapixels=8, outputType="base64Data", includeCost=True, settings=None),
    ]
    response = call(client, emulator, tasks)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body
    assert [item["taskUUID"] for item in body["data"]] == [task["taskUUID"] for task in tasks]
    largest = decoded(base64.b64decode(body["data"][2]["imageBase64Data"]))
    assert abs(largest.width * largest.height - 8_000_000) <= 0.02 * 8_000_000


# --------------------------------------------------------------------------------------------
# Sync processing


@pytest.mark.parametrize(
    ("output_format", "output_type", "pillow_format"),
    [("PNG", "URL", "PNG"), ("JPG", "base64Data", "JPEG"), ("WEBP", "dataURI", "WEBP")],
)
def test_sync_upscale_reaches_the_target_megapixels(emulator, client, photo, output_format, output_type, pillow_format):
    task = upscale_task(photo, targetMegapixels=2, outputFormat=output_format, outputType=output_type)
    response = call(client, emulator, [task])
    assert response.status_code == 200, response.text
    [result] = response.json()["data"]
    assert result["taskType"] == "upscale"
    assert result["taskUUID"] == task["taskUUID"]
    assert uuid.UUID(result["imageUUID"]).version == 4
    assert "cost" not in result
    if output_type == "URL":
        assert result["imageURL"].startswith(f"http://127.0.0.1:{emulator.port}/images/")
        served = client.get(result["imageURL"])
        assert served.status_code == 200
        assert served.headers["content-type"] == f"image/{pillow_format.lower()}"
        data = served.content
    elif output_type == "dataURI":
        header, _, encoded = result["imageDataURI"].partition(",")
        assert header == f"data:image/{pillow_format.lower()};base64"
        data = base64.b64decode(encoded)
    else:
        data = base64.b64decode(result["imageBase64Data"])
    output = decoded(data)
    assert output.format == pillow_format
    assert abs(output.width * output.height - 2_000_000) <= 0.02 * 2_000_000
    assert output.width / output.height == pytest.approx(400 / 300, rel=0.01)
    record = emulator.tasks[task["taskUUID"]]
    assert (record.status, record.output_width, record.output_height) == ("success", output.width, output.height)


def test_inputs_may_be_data_uris_raw_base64_or_an_earlier_image_uuid(emulator, client):
    raw = png_bytes((200, 100))
    first = upscale_task(data_uri(raw))
    second = upscale_task(base64.b64encode(raw).decode())
    response = call(client, emulator, [first, second])
    assert response.status_code == 200, response.text
    image_uuid = response.json()["data"][0]["imageUUID"]
    chained = call(client, emulator, [upscale_task(image_uuid, targetMegapixels=2)])
    assert chained.status_code == 200, chained.text


@pytest.mark.parametrize(("target", "price"), [(1, 0.005), (2, 0.005), (4, 0.005), (5, 0.01), (8, 0.01)])
def test_include_cost_is_the_model_pages_price_per_image_by_tier(emulator, client, photo, target, price):
    # The model page: $0.005 per image for 1-4 MP outputs, $0.01 for 5-8 MP (per image, not per MP).
    task = upscale_task(photo, targetMegapixels=target, includeCost=True, outputType="base64Data")
    response = call(client, emulator, [task])
    [result] = response.json()["data"]
    assert result["cost"] == price


def test_without_include_cost_there_is_no_cost(emulator, client, photo):
    response = call(client, emulator, [upscale_task(photo, targetMegapixels=5)])
    [result] = response.json()["data"]
    assert "cost" not in result


def test_target_megapixels_is_optional_as_the_model_page_marks_it(emulator, client, photo):
    task = set_path(upscale_task(photo, includeCost=True, outputType="base64Data"), "targetMegapixels", MISSING)
    response = call(client, emulator, [task])
    assert response.status_code == 200, response.text
    [result] = response.json()["data"]
    output = decoded(base64.b64decode(result["imageBase64Data"]))
    assert abs(output.width * output.height - 1_000_000) <= 0.02 * 1_000_000, "a 400x300 input: the nearest, 1 MP"
    assert result["cost"] == 0.005


@pytest.mark.parametrize(
    ("image", "hint"),
    [
        ("missing", "HTTP 404"),
        (data_uri(b"definitely not an image"), "decodable"),
        ("!!! not base64 !!!", "base64"),
        ("ftp://127.0.0.1/photo.png", "scheme"),
        ("3f2b6c1e-8a4d-4e0f-9b7a-2c5d8e1f0a3b", "unknown image UUID"),
    ],
)
def test_an_unusable_input_fails_the_task_as_an_invalid_image_parameter(emulator, client, peer, image, hint):
    source = peer.url("/inputs/missing.png") if image == "missing" else image
    task = upscale_task(source)
    response = call(client, emulator, [task])
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert_error_shape(error)
    assert (error["code"], error["parameter"], error["taskUUID"]) == (
        "invalidParameter",
        "inputs.image",
        task["taskUUID"],
    )
    assert hint in error["message"]


# --------------------------------------------------------------------------------------------
# Task identity and mixed requests


def test_a_task_uuid_already_held_is_answered_conflict_task_uuid_as_in_the_contract(emulator, client, photo):
    task = upscale_task(photo)
    assert call(client, emulator, [task]).status_code == 200
    again = call(client, emulator, [{**task, "taskUUID": task["taskUUID"].upper()}])
    fixture = by_name("rest/conflict-task-uuid")
    assert again.status_code == fixture.http_status
    body = again.json()
    assert set(body) == set(fixture.body) and body["data"] == []
    [error] = body["errors"]
    assert set(error) == set(fixture.body["errors"][0])
    assert (error["code"], error["taskType"], error["taskUUID"]) == (
        "conflictTaskUUID",
        "upscale",
        task["taskUUID"].upper(),
    )
    assert len(emulator.tasks) == 1, "the held task is kept, no second one is made"

    twin = upscale_task(photo)
    both = call(client, emulator, [twin, twin])
    assert both.status_code == 200
    assert [item["taskUUID"] for item in both.json()["data"]] == [twin["taskUUID"]]
    assert [(item["code"], item["taskUUID"]) for item in both.json()["errors"]] == [
        ("conflictTaskUUID", twin["taskUUID"])
    ]


def test_valid_and_invalid_tasks_in_one_request_answer_200_with_both(emulator, client, photo):
    valid, invalid = upscale_task(photo), upscale_task(photo, targetMegapixels=9)
    response = call(client, emulator, [invalid, valid])
    assert response.status_code == 200
    body = response.json()
    assert [item["taskUUID"] for item in body["data"]] == [valid["taskUUID"]]
    [error] = body["errors"]
    assert (error["taskUUID"], error["parameter"]) == (invalid["taskUUID"], "targetMegapixels")


def test_polling_an_unknown_task_answers_the_contracts_not_found(emulator, client, photo):
    unknown = str(uuid.uuid4())
    alone = poll(client, emulator, unknown)
    fixture = by_name("getResponse/not-found")
    assert alone.status_code == fixture.http_status
    assert set(alone.json()) == set(fixture.body) and alone.json()["data"] == []
    [error] = alone.json()["errors"]
    assert set(error) == set(fixture.body["errors"][0])
    assert (error["code"], error["taskUUID"], error["taskType"]) == ("taskFailedOrNotFound", unknown, "getResponse")

    known = upscale_task(photo)
    call(client, emulator, [known])
    mixed = call(
        client,
        emulator,
        [{"taskType": "getResponse", "taskUUID": known["taskUUID"]}, {"taskType": "getResponse", "taskUUID": unknown}],
    )
    assert mixed.status_code == 200
    assert mixed.json()["data"][0]["status"] == "success"
    assert mixed.json()["errors"][0]["code"] == "taskFailedOrNotFound"


def test_get_task_details_echoes_the_task_and_its_response_as_in_the_contract(emulator, client, photo):
    task = upscale_task(photo)
    [result] = call(client, emulator, [task]).json()["data"]
    answer = call(client, emulator, [{"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]}])
    fixture = by_name("getTaskDetails/success")
    assert answer.status_code == fixture.http_status
    [item] = answer.json()["data"]
    assert set(item) == set(fixture.body["data"][0])
    assert (item["taskType"], item["taskUUID"], item["request"]) == ("getTaskDetails", task["taskUUID"], task)
    assert item["response"] == {"data": [result]}

    unknown = str(uuid.uuid4())
    missing = call(client, emulator, [{"taskType": "getTaskDetails", "taskUUID": unknown}])
    assert missing.status_code == 200
    [error] = missing.json()["errors"]
    assert (error["code"], error["taskType"], error["taskUUID"]) == ("taskFailedOrNotFound", "getTaskDetails", unknown)


# --------------------------------------------------------------------------------------------
# Served images


def test_image_urls_are_served_until_their_ttl_passes(photo, client):
    clock = FakeClock()
    with RunwareEmulator(clock=clock, default_image_ttl_seconds=120) as emu:
        with_ttl = call(client, emu, [upscale_task(photo, ttl=60)]).json()["data"][0]["imageURL"]
        default_ttl = call(client, emu, [upscale_task(photo)]).json()["data"][0]["imageURL"]
        assert client.get(with_ttl).status_code == 200
        clock.now += 59
        assert client.get(with_ttl).status_code == 200
        clock.now += 2
        assert client.get(with_ttl).status_code == 404
        assert client.get(default_ttl).status_code == 200
        clock.now += 60
        assert client.get(default_ttl).status_code == 404


def test_an_image_is_only_served_under_its_own_extension(emulator, client, photo):
    url = call(client, emulator, [upscale_task(photo, outputFormat="PNG")]).json()["data"][0]["imageURL"]
    assert client.get(url).status_code == 200
    assert client.get(url.replace(".png", ".jpg")).status_code == 404


# --------------------------------------------------------------------------------------------
# HTTP outside the API


def test_a_chunked_body_is_read_whole(emulator, client, photo):
    task = upscale_task(photo)
    body = json.dumps([task]).encode()
    chunks = iter([body[:10], body[10:]])
    response = client.post(emulator.url, content=chunks, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["taskUUID"] == task["taskUUID"]


def test_answers_outside_the_api_are_plain_text_not_runware_shapes(emulator, client):
    for response, status in (
        (client.get(emulator.url), 405),
        (client.post(f"{emulator.base_url}/v2/other", headers=AUTH), 404),
        (client.get(f"{emulator.base_url}/images/{uuid.uuid4()}.png"), 404),
    ):
        assert response.status_code == status
        assert response.headers["content-type"].startswith("text/plain")
