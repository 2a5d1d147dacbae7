"""upscaler.deploy_checks: the presets custom resource answers FAILED with the library's reason, SUCCESS
otherwise, always SUCCESS to a Delete; the body sent to the ResponseURL is the answer (the PUT itself is
the local stack's start, tests/integration/test_presets.py)."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from upscaler.deploy_checks import PHYSICAL_ID, PRESETS_CHECK_TYPE, answer_check, answer_for, is_check_request


def request(request_type: str = "Create", presets: str = "", **more: object) -> dict[str, object]:
    return {
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-custom-resource-response.example/answer",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/upscale/1",
        "RequestId": "request-1",
        "ResourceType": PRESETS_CHECK_TYPE,
        "LogicalResourceId": "UploadPresetsCheck",
        "ResourceProperties": {"ServiceToken": "arn", "Presets": presets, "InboxPrefix": "inbox/"},
        **more,
    }


def test_good_presets_are_answered_success_with_the_request_s_ids():
    answer = answer_for(request(presets='{"print/": {"target-megapixels": 8}}'))
    assert answer == {
        "Status": "SUCCESS",
        "PhysicalResourceId": PHYSICAL_ID,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/upscale/1",
        "RequestId": "request-1",
        "LogicalResourceId": "UploadPresetsCheck",
    }


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_bad_presets_are_answered_failed_with_the_reason(request_type):
    answer = answer_for(request(request_type, '{"print/": {"target-megapixel": 8}}', PhysicalResourceId="kept"))
    assert answer["Status"] == "FAILED"
    assert answer["PhysicalResourceId"] == "kept"  # the same id in every answer: no replacement
    assert "did you mean 'target-megapixels'?" in answer["Reason"]


def test_a_delete_is_answered_success_whatever_the_document():
    assert answer_for(request("Delete", "{not json", PhysicalResourceId=PHYSICAL_ID))["Status"] == "SUCCESS"


def test_another_resource_type_is_refused():
    answer = answer_for({**request(), "ResourceType": "Custom::Other"})
    assert answer["Status"] == "FAILED" and "Custom::Other" in answer["Reason"]


def test_the_reason_fits_the_answer_s_size_limit():
    document = json.dumps({f"folder-{n}/": {"target-megapixels": 99} for n in range(200)})
    answer = answer_for(request(presets=document))
    assert len(json.dumps(answer).encode()) <= 4096


def test_only_a_custom_resource_request_is_taken_for_one():
    assert is_check_request(request())
    http_event = {"version": "2.0", "routeKey": "POST /webhook", "body": json.dumps(request())}
    assert not is_check_request(http_event)


@mock_aws
def test_the_answer_sent_to_the_response_url_is_the_body_returned():
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="answers")
    url = s3.generate_presigned_url("put_object", Params={"Bucket": "answers", "Key": "a"}, ExpiresIn=60)
    sent: list[tuple[str, bytes]] = []
    body = answer_check({**request(presets='{"web/": {"output-format": "GIF"}}'), "ResponseURL": url},
                        send=lambda to, data: sent.append((to, data)))  # fmt: skip
    assert sent == [(url, json.dumps(body).encode())]
    assert body["Status"] == "FAILED"
