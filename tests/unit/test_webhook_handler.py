"""The webhook Lambda handler, called with HTTP API v2 events from events/ against moto."""

from __future__ import annotations

import base64
import copy
import importlib.util
import io
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from PIL import Image

from tests.conftest import (
    INBOX_BUCKET,
    JOBS_TABLE,
    OUTPUT_BUCKET,
    REGION,
    RUNWARE_KEY,
    RUNWARE_URL,
    WEBHOOK_KEY,
    WEBHOOK_URL,
)
from tests.job_records import move_job, seed_job, stored_record
from tests.unit.queue_events import sqs_batch
from upscaler.clock import iso
from upscaler.ingestion import submit_batch
from upscaler.job_record import JobStatus
from upscaler.jobs import JobStore
from upscaler.runware import RunwareClient
from upscaler.storage import ObjectStore
from upscaler.submission import Submitter
from upscaler.tokens import webhook_token

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
HANDLER = ROOT / "functions" / "webhook" / "app.py"
JOB_ID = "7385b5c0-ffc2-4024-b9ba-1dc0426e58c9"  # the job the sample events are for
OUTPUT_KEY = f"upscaled/cat.png.{JOB_ID[:8]}.jpg"

# Answers that record nothing (401, 404, ...) flush no metrics, and Powertools warns about that.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@dataclass
class LambdaContext:
    function_name: str = "s3-upscale-webhook"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:s3-upscale-webhook"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"

    def get_remaining_time_in_millis(self) -> int:
        return 15_000


def sample_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


@cache
def jpeg_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 60, 200)).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


@cache
def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 160, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def emitted_metrics(stdout: str) -> dict[str, float]:
    """Metric values from the embedded-metric-format lines the handler printed, summed over invocations."""
    values: dict[str, float] = {}
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        document = json.loads(line)
        if "_aws" not in document:
            continue
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                values[metric["Name"]] = values.get(metric["Name"], 0) + (
                    sum(value) if isinstance(value, list) else value
                )
    return values


@pytest.fixture
def handler(aws):
    """The handler module, imported fresh inside this test's moto world (its clients are built at import)."""
    spec = importlib.util.spec_from_file_location(f"webhook_app_{uuid.uuid4().hex}", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    module.metrics.clear_metrics()


@pytest.fixture
def store(aws):
    return JobStore(aws.dynamodb, JOBS_TABLE)


@pytest.fixture
def job(store):
    """The sample events' job, SUBMITTED two minutes ago for a 640x480 PNG, JPG out."""
    submitted = datetime.now(UTC) - timedelta(minutes=2)
    fields = {
        "jobId": JOB_ID,
        "sourceBucket": INBOX_BUCKET,
        "sourceKey": "inbox/cat.png",
        "sourceVersionId": "v1",
        "sourceSize": 98765,
        "eventTime": iso(submitted - timedelta(seconds=2)),
        "inputFormat": "PNG",
        "inputWidth": 640,
        "inputHeight": 480,
        "outputFormat": "JPG",
        "outputBucket": OUTPUT_BUCKET,
        "outputKey": OUTPUT_KEY,
    }
    seed_job(store, fields, JobStatus.CLAIMED, now=submitted - timedelta(seconds=1))
    return move_job(store, JOB_ID, JobStatus.SUBMITTED, {"submittedAt": iso(submitted)}, now=submitted)


@pytest.fixture
def output(aws, job):
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=OUTPUT_KEY, Body=jpeg_bytes(2304, 1728))


def invoke(handler, event: dict) -> tuple[int, dict]:
    response = handler.lambda_handler(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"])


def test_sample_events_carry_the_token_for_the_fixture_key():
    for name in ("webhook-success-envelope.json", "webhook-success-bare.json", "webhook-error-envelope.json"):
        query = sample_event(name)["queryStringParameters"]
        assert query == {"job": JOB_ID, "token": webhook_token(JOB_ID, WEBHOOK_KEY)}
    assert sample_event("webhook-bad-token.json")["queryStringParameters"]["token"] != webhook_token(
        JOB_ID, WEBHOOK_KEY
    )


@pytest.mark.parametrize("name", ["webhook-success-envelope.json", "webhook-success-bare.json"])
def test_success_event_completes_the_job(aws, handler, store, output, name):
    status, body = invoke(handler, sample_event(name))

    record = stored_record(store, JOB_ID)
    assert (status, body) == (200, {"jobId": JOB_ID, "status": "COMPLETED"})
    assert record["status"] == "COMPLETED"
    assert record["imageUUID"] == "2af4c8a9-5865-46b2-a4e3-b011d3dcd03e"
    assert record["cost"] == Decimal("0.0052")
    assert (record["outputWidth"], record["outputHeight"]) == (2304, 1728)
    assert record["outputContentType"] == "image/jpeg"
    assert aws.s3.head_object(Bucket=OUTPUT_BUCKET, Key=OUTPUT_KEY)["ContentType"] == "image/jpeg"


@pytest.mark.parametrize("name", ["webhook-error-envelope.json", "webhook-error-bare.json"])
def test_error_event_fails_the_job_with_runware_details(handler, store, job, name):
    status, body = invoke(handler, sample_event(name))

    record = stored_record(store, JOB_ID)
    assert (status, body) == (200, {"jobId": JOB_ID, "status": "FAILED"})
    assert (record["errorCode"], record["errorParameter"]) == ("invalidImageURL", "inputs.image")
    assert record["errorMessage"] == "The image at inputs.image could not be downloaded."


def test_success_emits_completed_cost_and_latency_metrics(handler, output, capsys):
    invoke(handler, sample_event("webhook-success-envelope.json"))

    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["JobsCompleted"] == 1
    assert metrics["CostUSD"] == pytest.approx(0.0052)
    assert 120 <= metrics["EndToEndLatency"] < 180
    assert "JobsFailed" not in metrics


def test_error_emits_a_failed_metric(handler, job, capsys):
    invoke(handler, sample_event("webhook-error-bare.json"))

    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics == {"JobsFailed": 1, "WebhookAnswers2xx": 1}


def test_a_forged_request_is_counted_as_a_4xx_answer(handler, job, capsys):
    invoke(handler, sample_event("webhook-bad-token.json"))

    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics == {"WebhookAnswers4xx": 1}


def test_bad_token_event_answers_401_and_writes_nothing(aws, handler, store, output):
    before = store.get(JOB_ID)

    status, _ = invoke(handler, sample_event("webhook-bad-token.json"))

    assert status == 401
    assert store.get(JOB_ID) == before
    assert aws.s3.head_object(Bucket=OUTPUT_BUCKET, Key=OUTPUT_KEY)["ContentType"] == "binary/octet-stream"


def test_log_line_names_job_and_answer_but_never_the_token(handler, output):
    lines = io.StringIO()
    capture = logging.StreamHandler(lines)
    capture.setFormatter(handler.logger.registered_formatter)
    service_logger = logging.getLogger(handler.logger.service)
    service_logger.addHandler(capture)
    handler.logger.setLevel("DEBUG")  # the accepted report's line too, which INFO leaves out
    try:
        for name in ("webhook-bad-token.json", "webhook-success-envelope.json"):
            invoke(handler, sample_event(name))
    finally:
        service_logger.removeHandler(capture)

    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    answered = [(r["level"], r["jobId"], r["statusCode"]) for r in records if r["message"] == "webhook answered"]
    # A refused report at INFO; an accepted one at DEBUG (the job's INFO line is the submit function's).
    assert answered == [("INFO", JOB_ID, 401), ("DEBUG", JOB_ID, 200)]
    for name in ("webhook-bad-token.json", "webhook-success-envelope.json"):
        assert sample_event(name)["queryStringParameters"]["token"] not in lines.getvalue()


def test_missing_query_parameters_answer_401_and_write_nothing(handler, store, output):
    before = store.get(JOB_ID)
    statuses = []
    for drop in (("token",), ("job",), ("job", "token")):
        event = sample_event("webhook-success-envelope.json")
        for name in drop:
            del event["queryStringParameters"][name]
        if not event["queryStringParameters"]:
            del event["queryStringParameters"]
        statuses.append(invoke(handler, event)[0])

    assert statuses == [401, 401, 401]
    assert store.get(JOB_ID) == before


def test_unknown_job_answers_404_and_writes_nothing(aws, handler):
    status, _ = invoke(handler, sample_event("webhook-success-bare.json"))

    assert status == 404
    assert aws.dynamodb.scan(TableName=JOBS_TABLE)["Items"] == []


def test_output_not_there_yet_answers_5xx_and_the_job_stays_submitted(handler, store, job):
    status, _ = invoke(handler, sample_event("webhook-success-envelope.json"))

    assert 500 <= status < 600
    assert store.get(JOB_ID) == job


def test_non_json_body_answers_400(handler, store, job):
    event = sample_event("webhook-success-envelope.json")
    event["body"] = "<html>not json</html>"

    status, _ = invoke(handler, event)

    assert status == 400
    assert store.get(JOB_ID).status == job.status
    assert store.get(JOB_ID).malformed_reports == 1


def test_oversized_body_answers_413(handler, store, job):
    event = sample_event("webhook-success-envelope.json")
    event["body"] = json.dumps({"data": [], "padding": "x" * 300_000})

    status, _ = invoke(handler, event)

    assert status == 413
    assert store.get(JOB_ID) == job


def test_base64_encoded_body_is_decoded(handler, store, output):
    event = sample_event("webhook-success-bare.json")
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True

    status, _ = invoke(handler, event)

    assert status == 200
    assert store.get(JOB_ID).status == "COMPLETED"


def test_base64_encoded_binary_body_answers_400(handler, store, job):
    event = sample_event("webhook-success-bare.json")
    event["body"] = base64.b64encode(b"\x89PNG\r\n\x1a\n\xff\xfe").decode()
    event["isBase64Encoded"] = True

    status, _ = invoke(handler, event)

    assert status == 400
    assert store.get(JOB_ID).status == job.status
    assert store.get(JOB_ID).malformed_reports == 1


def test_duplicate_webhooks_answer_200_and_leave_one_record(aws, handler, store, output, capsys):
    first = invoke(handler, sample_event("webhook-success-envelope.json"))
    completed = store.get(JOB_ID)
    capsys.readouterr()

    second = invoke(handler, sample_event("webhook-success-bare.json"))
    late_error = invoke(handler, sample_event("webhook-error-envelope.json"))

    assert first[0] == second[0] == late_error[0] == 200
    assert late_error[1]["status"] == "COMPLETED"
    assert store.get(JOB_ID) == completed
    assert len(aws.dynamodb.scan(TableName=JOBS_TABLE)["Items"]) == 1
    metrics = emitted_metrics(capsys.readouterr().out)
    assert "JobsCompleted" not in metrics
    assert "JobsFailed" not in metrics
    assert metrics["RepeatedReports"] == 2


def test_other_methods_are_not_routed(handler, store, job):
    event = sample_event("webhook-success-envelope.json")
    event["requestContext"]["http"]["method"] = "GET"
    event["routeKey"] = "GET /webhook"

    status = handler.lambda_handler(event, LambdaContext())["statusCode"]

    assert status in (404, 405)
    assert store.get(JOB_ID) == job


def s3_put_event(bucket: str, key: str, response: dict, size: int, when: datetime) -> dict:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": iso(when),
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {
                        "key": key,
                        "size": size,
                        "eTag": response["ETag"].strip('"'),
                        "versionId": response["VersionId"],
                        "sequencer": "0065F1A2B3C4D5E6F7",
                    },
                },
            }
        ]
    }


def test_job_submitted_by_the_submit_path_is_completed_by_its_webhook(aws, handler, store, capsys):
    """End to end in-process: the URL the submitter gives Runware is the one the webhook accepts."""
    sent: list[dict] = []

    def runware(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == f"Bearer {RUNWARE_KEY}"
        tasks = json.loads(request.content)
        sent.extend(tasks)
        acknowledgements = [{"taskType": task["taskType"], "taskUUID": task["taskUUID"]} for task in tasks]
        return httpx.Response(200, json={"data": acknowledgements})

    client = RunwareClient(
        RUNWARE_URL, lambda: RUNWARE_KEY, http=httpx.Client(transport=httpx.MockTransport(runware)), sleep=lambda s: 0
    )
    submitter = Submitter(aws.settings, ObjectStore(aws.s3), store, client, lambda: WEBHOOK_KEY)
    source = png_bytes(800, 600)
    put = aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/pets/cat 1.png", Body=source, ContentType="image/png")
    uploaded = datetime.now(UTC) - timedelta(seconds=30)
    batch = sqs_batch(s3_put_event(INBOX_BUCKET, "inbox/pets/cat+1.png", put, len(source), uploaded))
    submitted = submit_batch(submitter, batch)
    assert submitted.failed == {}
    [outcome] = submitted.outcomes
    assert outcome.status == "SUBMITTED"
    [task] = sent
    webhook = urlsplit(task["webhookURL"])
    assert f"{webhook.scheme}://{webhook.netloc}{webhook.path}" == WEBHOOK_URL
    job = store.get(task["taskUUID"])
    output = jpeg_bytes(2309, 1732)
    aws.s3.put_object(Bucket=job.output_bucket, Key=job.output_key, Body=output)  # Runware's PUT: no type
    event = copy.deepcopy(sample_event("webhook-success-envelope.json"))
    event["rawQueryString"] = webhook.query
    event["queryStringParameters"] = {name: values[0] for name, values in parse_qs(webhook.query).items()}
    result = {"taskType": "upscale", "taskUUID": task["taskUUID"], "imageUUID": str(uuid.uuid4()), "cost": 0.0048}
    event["body"] = json.dumps({"data": [result]})

    status, body = invoke(handler, event)

    record = stored_record(store, task["taskUUID"])
    assert (status, body["status"]) == (200, "COMPLETED")
    assert (record["inputWidth"], record["inputHeight"], record["inputFormat"]) == (800, 600, "PNG")
    assert record["sourceSize"] == len(source)
    assert (record["outputWidth"], record["outputHeight"], record["outputFormat"]) == (2309, 1732, "JPG")
    assert record["outputSize"] == len(output)
    assert record["outputContentType"] == "image/jpeg"
    assert record["cost"] == Decimal("0.0048")
    assert record["uploadToSubmitSeconds"] >= 29
    assert record["providerSeconds"] >= 0
    assert record["totalSeconds"] == record["uploadToSubmitSeconds"] + record["providerSeconds"]
    head = aws.s3.head_object(Bucket=job.output_bucket, Key=job.output_key)
    assert head["ContentType"] == "image/jpeg"
    assert record["outputETag"] == head["ETag"].strip('"')
