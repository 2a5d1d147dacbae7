"""local.custom_resources: the template's custom resources found, the function each names, and a
FAILED answer read back from the response URL as a refusal."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

import boto3
import pytest
from moto import mock_aws

from local.custom_resources import CustomResourceFailed, create_all, custom_resources, service_function
from local.template import TemplateResolver, load_template

TEMPLATE: dict[str, Any] = {
    "Parameters": {"Presets": {"Type": "String", "Default": "{}"}},
    "Resources": {
        "Check": {
            "Type": "Custom::UploadPresetsCheck",
            "Properties": {"ServiceToken": {"Fn::GetAtt": ["Answerer", "Arn"]}, "Presets": {"Ref": "Presets"}},
        },
        "Answerer": {"Type": "AWS::Serverless::Function"},
    },
}


def test_the_project_template_has_one_custom_resource_answered_by_the_webhook_function():
    declared = custom_resources(load_template())
    assert list(declared) == ["UploadPresetsCheck"]
    assert service_function(declared["UploadPresetsCheck"]) == "WebhookFunction"


def test_a_service_token_that_is_not_a_function_of_the_stack_is_refused():
    with pytest.raises(ValueError, match="cannot follow"):
        service_function({"Properties": {"ServiceToken": "arn:aws:sns:us-east-1:123456789012:topic"}})


def answer_with(status: str, reason: str = "") -> Any:
    def invoke(logical_id: str, request: dict[str, Any]) -> None:
        assert logical_id == "Answerer" and request["RequestType"] == "Create"
        assert request["ResourceProperties"]["Presets"] == '{"web/": {"realism": true}}'
        body = {"Status": status, "Reason": reason, "RequestId": request["RequestId"]}
        key = urlparse(request["ResponseURL"]).path.lstrip("/").removeprefix("answers/")
        boto3.client("s3", region_name="us-east-1").put_object(Bucket="answers", Key=key, Body=json.dumps(body))

    return invoke


@mock_aws
@pytest.mark.parametrize(("status", "refused"), [("SUCCESS", False), ("FAILED", True)])
def test_each_custom_resource_is_created_and_a_failed_answer_stops_the_start(status: str, refused: bool):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="answers")
    resolver = TemplateResolver(TEMPLATE, parameter_overrides={"Presets": '{"web/": {"realism": true}}'})
    resolver.resources["Answerer"] = {"Arn": "arn:aws:lambda:us-east-1:123456789012:function:Answerer"}
    if refused:
        with pytest.raises(CustomResourceFailed, match="Check failed: the presets are wrong"):
            create_all(TEMPLATE, resolver, answer_with(status, "the presets are wrong"), s3, "answers")
    else:
        create_all(TEMPLATE, resolver, answer_with(status), s3, "answers")
