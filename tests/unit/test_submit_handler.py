"""SubmitFunction end to end in moto: each sample event from events/, with Runware answered at the HTTP level."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import random
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote_plus, urlsplit

import httpx
import pytest
from PIL import Image

from tests.conftest import INBOX_BUCKET, RUNWARE_KEY
from upscaler.jobs import job_id_for
from upscaler.runware import RunwareClient, RunwareUnavailable
from upscaler.settings import get_settings, read_secret
from upscaler.source_events import UnrecognisedEvent

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
SAMPLE_EVENTS = ["s3-put-plain.json", "s3-put-odd-key.json", "s3-put-two-records.json", "s3-put-redrive-sqs.json"]


def image(key: str, width: int = 640, height: int = 480) -> bytes:
    fmt = "PNG" if key.endswith(".png") else "JPEG"
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 140, 200)).save(buffer, fmt)
    return buffer.getvalue()


# --- Lambda's side ------------------------------------------------------------------------------


@dataclass
class LambdaContext:
    remaining_ms: int = 120_000
    function_name: str = "s3-upscale-SubmitFunction"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:s3-upscale-SubmitFunction"
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/s3-upscale-SubmitFunction"
    log_stream_name: str = "2026/05/14/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class FakeRunware:
    """Records requests; scripted answers first, then an acknowledgement of every task."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.script: list[httpx.Response | Exception] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script:
            answer = self.script.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        tasks = json.loads(request.content)
        return httpx.Response(200, json={"data": [{"taskType": "upscale", "taskUUID": t["taskUUID"]} for t in tasks]})

    @property
    def tasks(self) -> list[dict]:
        return [task for request in self.requests for task in json.loads(request.content)]


@pytest.fixture
def runware() -> FakeRunware:
    return FakeRunware()


@pytest.fixture
def submit_app(aws, runware) -> ModuleType:
    """functions/submit/app.py imported inside the moto world, its Runware client answered by `runware`."""
    get_settings.cache_clear()
    spec = importlib.util.spec_from_file_location("submit_app_under_test", ROOT / "functions" / "submit" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    settings = module.submitter.settings
    module.submitter.runware = RunwareClient(
        settings.runware_api_url,
        partial(read_secret, settings.runware_api_key_secret),
        http=httpx.Client(transport=httpx.MockTransport(runware)),
        max_attempts=3,
        sleep=lambda _: None,
        rng=random.Random(3),
    )
    yield module
    get_settings.cache_clear()


# --- sample events with real objects behind them ------------------------------------------------


def s3_records(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The S3 records inside an event, direct or inside SQS bodies (as parsed copies)."""
    found = []
    for record in event["Records"]:
        if record["eventSource"] == "aws:s3":
            found.append(record)
        else:
            body = json.loads(record["body"])
            found.extend(s3_records(body.get("requestPayload", body)))
    return found


def prepared(aws, name: str, bodies: dict[str, bytes] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Load events/<name>, put each record's object into moto and patch in its versionId, eTag and size."""
    bodies = bodies or {}
    event = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    keys = []

    def patch(record: dict[str, Any]) -> None:
        obj = record["s3"]["object"]
        key = unquote_plus(obj["key"])
        body = bodies.get(key, image(key))
        put = aws.s3.put_object(Bucket=record["s3"]["bucket"]["name"], Key=key, Body=body)
        obj.update(versionId=put["VersionId"], eTag=put["ETag"].strip('"'), size=len(body))
        keys.append(key)

    for record in event["Records"]:
        if record["eventSource"] == "aws:s3":
            patch(record)
        else:
            message = json.loads(record["body"])
            for inner in s3_records(message.get("requestPayload", message)):
                patch(inner)
            record["body"] = json.dumps(message, separators=(",", ":"))
            record["md5OfBody"] = hashlib.md5(record["body"].encode()).hexdigest()
    return event, keys


def invoke(app: ModuleType, event: dict[str, Any], context: LambdaContext | None = None) -> dict[str, Any]:
    response = app.lambda_handler(event, context or LambdaContext())
    return json.loads(json.dumps(response))  # what Lambda would serialise


def metrics_emitted(captured: str) -> dict[str, float]:
    """Metric values from the embedded-metric-format lines Powertools printed."""
    values: dict[str, float] = {}
    for line in captured.splitlines():
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        if isinstance(blob, dict) and "_aws" in blob:
            for definition in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = blob[definition["Name"]]
                values[definition["Name"]] = sum(value) if isinstance(value, list) else value
    return values


# --- the sample events --------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_EVENTS)
def test_each_sample_event_submits_every_record_in_one_request(aws, submit_app, runware, name):
    event, keys = prepared(aws, name)
    response = invoke(submit_app, event)

    jobs = response["jobs"]
    assert [job["source_key"] for job in jobs] == keys
    assert [job["status"] for job in jobs] == ["SUBMITTED"] * len(keys)
    assert all(job["code"] is None and job["message"] is None for job in jobs)
    assert len(runware.requests) == 1
    assert runware.requests[0].headers["authorization"] == f"Bearer {RUNWARE_KEY}"
    assert [t["taskUUID"] for t in runware.tasks] == [job["job_id"] for job in jobs]
    for job, record in zip(jobs, s3_records(event), strict=True):
        obj = record["s3"]["object"]
        assert job["job_id"] == job_id_for(INBOX_BUCKET, unquote_plus(obj["key"]), obj["versionId"])
        item = submit_app.submitter.jobs.get(job["job_id"])
        assert item["status"] == "SUBMITTED"
        assert (item["sourceKey"], item["sourceVersionId"]) == (job["source_key"], obj["versionId"])

    again = invoke(submit_app, event)
    assert [job["status"] for job in again["jobs"]] == ["DUPLICATE"] * len(keys)
    assert len(runware.requests) == 1


def test_plain_event_response_and_metrics(aws, submit_app, runware, capsys):
    event, _ = prepared(aws, "s3-put-plain.json")
    capsys.readouterr()
    response = invoke(submit_app, event)
    [job] = response["jobs"]
    assert job == {
        "job_id": runware.tasks[0]["taskUUID"],
        "source_key": "inbox/photos/cat.jpg",
        "status": "SUBMITTED",
        "code": None,
        "message": None,
    }
    assert metrics_emitted(capsys.readouterr().out) == {"JobsSubmitted": 1.0}


def test_odd_key_event_uses_the_real_key(aws, submit_app, runware):
    event, [key] = prepared(aws, "s3-put-odd-key.json")
    assert key == "inbox/My Photos/été+plus ☃.png"
    [job] = invoke(submit_app, event)["jobs"]
    assert job["source_key"] == key
    assert submit_app.submitter.jobs.get(job["job_id"])["sourceKey"] == key
    [task] = runware.tasks
    assert urlsplit(task["inputs"]["image"]).path == "/inbox/My%20Photos/%C3%A9t%C3%A9%2Bplus%20%E2%98%83.png"


def test_redrive_submits_a_job_whose_first_invocation_failed(aws, submit_app, runware):
    event, [key] = prepared(aws, "s3-put-redrive-sqs.json")
    original = json.loads(event["Records"][0]["body"])["requestPayload"]
    runware.script = [httpx.Response(503)] * 3
    with pytest.raises(RunwareUnavailable):
        invoke(submit_app, original)  # Lambda retries, then sends the event to the DLQ
    assert len(runware.requests) == 3
    crashed = runware.tasks[0]
    assert {t["taskUUID"] for t in runware.tasks} == {crashed["taskUUID"]}
    assert submit_app.submitter.jobs.get(crashed["taskUUID"])["status"] == "CLAIMED"

    [job] = invoke(submit_app, event)["jobs"]
    assert (job["source_key"], job["status"]) == (key, "SUBMITTED")
    assert job["job_id"] == crashed["taskUUID"] == runware.tasks[-1]["taskUUID"]
    assert len(runware.requests) == 4


def test_rejection_is_reported_with_its_code_and_message(aws, submit_app, runware, capsys):
    event, _ = prepared(aws, "s3-put-plain.json", {"inbox/photos/cat.jpg": b"plain text, not a picture"})
    capsys.readouterr()
    [job] = invoke(submit_app, event)["jobs"]
    assert (job["status"], job["code"]) == ("REJECTED", "notAnImage")
    assert "not a JPEG, PNG or WEBP" in job["message"]
    assert runware.requests == []
    assert metrics_emitted(capsys.readouterr().out) == {"JobsRejected": 1.0}


def test_runware_error_is_reported_as_failed(aws, submit_app, runware):
    event, _ = prepared(aws, "s3-put-plain.json")
    runware.script = [httpx.Response(402, json={"errors": [{"code": "insufficientCredits", "message": "Top up."}]})]
    [job] = invoke(submit_app, event)["jobs"]
    assert (job["status"], job["code"], job["message"]) == ("FAILED", "insufficientCredits", "Top up.")
    assert len(runware.requests) == 1


def test_the_invocations_remaining_time_bounds_the_retries(aws, submit_app, runware):
    event, _ = prepared(aws, "s3-put-plain.json")
    runware.script = [httpx.Response(429, headers={"Retry-After": "20"})] * 3
    with pytest.raises(RunwareUnavailable):
        invoke(submit_app, event, LambdaContext(remaining_ms=15_000))
    assert len(runware.requests) == 1


def test_a_test_event_submits_nothing_and_publishes_no_metric(aws, submit_app, runware, capsys):
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": INBOX_BUCKET}
    capsys.readouterr()
    assert invoke(submit_app, test_event) == {"jobs": []}
    assert runware.requests == []
    assert '"_aws"' not in capsys.readouterr().out


def test_an_unrecognised_event_fails_the_invocation(aws, submit_app, runware):
    with pytest.raises(UnrecognisedEvent):
        invoke(submit_app, {"detail-type": "Scheduled Event"})
    assert runware.requests == []
