"""CloudFormation's custom resources, played at start: a refused check stops the stack from starting.

For each custom resource of the template (`Custom::...` with a ServiceToken naming one of the
stack's functions), the local stack does what CloudFormation does on a stack's creation: it sends
the function a Create request whose ResponseURL is a presigned S3 PUT URL, and reads the answer the
function PUT there (CloudFormation User Guide, custom resource requests and responses:
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref.html). An answer with Status
FAILED stops the start with the answer's Reason, as CloudFormation rolls back with it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from local.template import TemplateResolver

ANSWERS_PREFIX = "custom-resource-answers/"


class CustomResourceFailed(RuntimeError):
    """A custom resource answered FAILED: the stack would not deploy with these parameters."""

    def __init__(self, logical_id: str, reason: str) -> None:
        super().__init__(f"{logical_id} failed: {reason}")
        self.logical_id = logical_id
        self.reason = reason


def custom_resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template.get("Resources", {}).items()
        if str(resource.get("Type", "")).startswith("Custom::")
    }


def service_function(resource: dict[str, Any]) -> str:
    """The logical id of the function a custom resource's ServiceToken names (!GetAtt Function.Arn)."""
    token = resource.get("Properties", {}).get("ServiceToken")
    if isinstance(token, dict) and "Fn::GetAtt" in token:
        return str(token["Fn::GetAtt"][0])
    raise ValueError(f"a ServiceToken the local stack cannot follow: {token!r}")


def create_all(
    template: dict[str, Any],
    resolver: TemplateResolver,
    invoke: Callable[[str, dict[str, Any]], Any],
    s3: Any,
    answers_bucket: str,
) -> None:
    """Send every custom resource its Create request and read its answer; CustomResourceFailed for a FAILED one."""
    for logical_id, resource in custom_resources(template).items():
        properties = resolver.resolve(resource.get("Properties", {}))
        key = f"{ANSWERS_PREFIX}{logical_id}/{uuid.uuid4()}"
        request = {
            "RequestType": "Create",
            "ResponseURL": s3.generate_presigned_url(
                "put_object", Params={"Bucket": answers_bucket, "Key": key}, ExpiresIn=600
            ),
            "StackId": f"arn:aws:cloudformation:{resolver.region}:{resolver.account_id}:stack/"
            f"{resolver.stack_name}/{uuid.uuid4()}",
            "RequestId": str(uuid.uuid4()),
            "ResourceType": resource["Type"],
            "LogicalResourceId": logical_id,
            "ResourceProperties": properties,
        }
        invoke(service_function(resource), request)
        answer = json.loads(s3.get_object(Bucket=answers_bucket, Key=key)["Body"].read())
        if answer.get("Status") != "SUCCESS":
            raise CustomResourceFailed(logical_id, str(answer.get("Reason") or "no reason given"))
