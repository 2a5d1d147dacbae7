"""Settings checked at deploy: a CloudFormation custom resource whose answer is the library's verdict.

CloudFormation sends a custom resource's request (Create, Update, Delete) to the function named by
its ServiceToken and waits for the answer, a JSON body PUT to the request's presigned ResponseURL;
an answer with Status FAILED fails the resource, its Reason is shown in the stack's events, and the
create or update rolls back (CloudFormation User Guide, "Create custom provisioning logic with custom
resources": https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/template-custom-resources.html;
request fields: https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref.html; answer
fields, a body of at most 4,096 bytes:
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html).

The template's UploadPresetsCheck resource carries the presets document and the inbox prefix; the
submit function depends on it, so a refused document never reaches the function that would use it.
A Delete is always answered SUCCESS: there is nothing to remove, and a stack must stay deletable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from upscaler.presets import PresetsError, parse_presets

PRESETS_CHECK_TYPE = "Custom::UploadPresetsCheck"
# The same id in every answer: a changed id would make CloudFormation replace the resource.
PHYSICAL_ID = "upload-presets-check"
# The answer's body is limited to 4,096 bytes; the reason is cut well below that.
MAX_REASON_CHARS = 3000
_REQUEST_FIELDS = ("RequestType", "ResponseURL", "StackId", "RequestId", "LogicalResourceId")

Sender = Callable[[str, bytes], None]


def is_check_request(event: Mapping[str, Any]) -> bool:
    """Whether a function's event is a custom resource request from CloudFormation."""
    return all(isinstance(event.get(name), str) for name in _REQUEST_FIELDS)


def verdict(event: Mapping[str, Any]) -> str | None:
    """Why the checked settings are refused, or None when they are fine (and for every Delete)."""
    if event["RequestType"] == "Delete":
        return None
    if event.get("ResourceType") != PRESETS_CHECK_TYPE:
        return f"this function answers only {PRESETS_CHECK_TYPE} resources, not {event.get('ResourceType')!r}"
    properties = event.get("ResourceProperties") or {}
    try:
        parse_presets(str(properties.get("Presets", "")), inbox_prefix=str(properties.get("InboxPrefix", "")))
    except PresetsError as error:
        return f"UploadPresets refused: {error}"
    return None


def answer_for(event: Mapping[str, Any]) -> dict[str, Any]:
    """The answer's body for one request."""
    refused = verdict(event)
    body: dict[str, Any] = {
        "Status": "FAILED" if refused else "SUCCESS",
        "PhysicalResourceId": event.get("PhysicalResourceId") or PHYSICAL_ID,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
    }
    if refused:
        body["Reason"] = refused[:MAX_REASON_CHARS]
    return body


def put_answer(url: str, body: bytes) -> None:
    """PUT the answer to the presigned URL (httpx sends no Content-Type for bytes: none was signed)."""
    response = httpx.put(url, content=body, timeout=30)
    response.raise_for_status()


def answer_check(event: Mapping[str, Any], send: Sender = put_answer) -> dict[str, Any]:
    """Answer one request at its ResponseURL; the body sent is returned (for the log)."""
    body = answer_for(event)
    send(str(event["ResponseURL"]), json.dumps(body).encode())
    return body
