"""SubmitFunction end to end in moto: each sample event from events/, with Runware answered at the HTTP level."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import logging
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
from tests.unit.queue_events import mapping_state, register_ingest_mapping, sqs_batch
from upscaler.job_record import Job, JobStatus, job_id_for
from upscaler.runware import RunwareClient
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


def as_queue_batch(event: dict[str, Any]) -> dict[str, Any]:
    """An S3 notification as the ingestion queue delivers it (one message); SQS events unchanged."""
    return event if event["Records"][0]["eventSource"] == "aws:sqs" else sqs_batch(event)


def failed_ids(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def job_of(app: ModuleType, record: dict[str, Any]) -> Job | None:
    obj = record["s3"]["object"]
    return app.submitter.jobs.get(job_id_for(INBOX_BUCKET, unquote_plus(obj["key"]), obj["versionId"]))


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


def uploads(aws, count: int, prefix: str = "inbox/batch/") -> list[dict[str, Any]]:
    """`count` real objects, each with the S3 notification S3 would queue for it."""
    template = json.loads((EVENTS / "s3-put-plain.json").read_text(encoding="utf-8"))
    notifications = []
    for index in range(count):
        key = f"{prefix}{index:02d}.jpg"
        body = image(key, 320 + index, 240)
        put = aws.s3.put_object(Bucket=INBOX_BUCKET, Key=key, Body=body)
        notification = json.loads(json.dumps(template))
        notification["Records"][0]["s3"]["object"].update(
            key=key, versionId=put["VersionId"], eTag=put["ETag"].strip('"'), size=len(body)
        )
        notifications.append(notification)
    return notifications


def fail_s3_calls_for(app: ModuleType, key: str) -> None:
    """S3 fails every call about this key, and nothing else (an error to retry: a refusal such as
    AccessDenied is rejected on the spot instead, see test_unreadable_sources.py)."""
    from botocore.exceptions import ClientError

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == key:
            raise ClientError(
                {
                    "Error": {
                        "Code": "InternalError",
                        "Message": "We encountered an internal error. Please try again.",
                    },
                    "ResponseMetadata": {"HTTPStatusCode": 500},
                },
                "GetObject",
            )

    app.submitter.objects._s3.meta.events.register("before-parameter-build.s3", refuse)


# --- the sample events --------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_EVENTS)
def test_each_sample_event_submits_every_record_in_one_request(aws, submit_app, runware, name):
    event, keys = prepared(aws, name)
    batch = as_queue_batch(event)
    assert invoke(submit_app, batch) == {"batchItemFailures": []}

    assert len(runware.requests) == 1
    assert runware.requests[0].headers["authorization"] == f"Bearer {RUNWARE_KEY}"
    records = s3_records(event)
    jobs = [job_of(submit_app, record) for record in records]
    assert [t["taskUUID"] for t in runware.tasks] == [job.job_id for job in jobs]
    assert [job.source_key for job in jobs] == keys
    assert all(job.status == "SUBMITTED" for job in jobs)

    assert invoke(submit_app, batch) == {"batchItemFailures": []}
    assert len(runware.requests) == 1, "a redelivered batch sends nothing"


def test_a_batch_of_ten_uploads_is_one_runware_request(aws, submit_app, runware, capsys):
    notifications = uploads(aws, 10)
    capsys.readouterr()
    assert invoke(submit_app, sqs_batch(*notifications)) == {"batchItemFailures": []}
    [request] = runware.requests
    assert len(json.loads(request.content)) == 10
    assert all(job_of(submit_app, n["Records"][0]).status == "SUBMITTED" for n in notifications)
    assert metrics_emitted(capsys.readouterr().out) == {"JobsSubmitted": 10.0}


def test_a_batch_sent_as_asked_logs_one_line_and_a_refused_source_one_of_its_own(aws, submit_app, runware, caplog):
    notifications = uploads(aws, 3)
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/batch/notes.jpg", Body=b"not an image")
    [bad] = uploads(aws, 1, prefix="inbox/batch/bad-")
    bad["Records"][0]["s3"]["object"].update(key="inbox/batch/notes.jpg", size=12, eTag="x")
    bad["Records"][0]["s3"]["object"]["versionId"] = aws.s3.head_object(
        Bucket=INBOX_BUCKET, Key="inbox/batch/notes.jpg"
    )["VersionId"]
    caplog.set_level(logging.INFO)
    invoke(submit_app, sqs_batch(*notifications, bad))
    lines = [record for record in caplog.records if record.levelno >= logging.INFO]
    processed = [(line.levelname, line.sourceKey) for line in lines if line.getMessage() == "source processed"]
    assert processed == [("INFO", "inbox/batch/notes.jpg")]
    [summary] = [line for line in lines if line.getMessage() == "batch processed"]
    assert summary.sources == {"SUBMITTED": 3, "REJECTED": 1}


def test_eventbridge_object_created_events_submit_like_notifications(aws, submit_app, runware):
    key = "inbox/My Photos/été+plus.jpg"
    body = image(key)
    put = aws.s3.put_object(Bucket=INBOX_BUCKET, Key=key, Body=body)
    event = json.loads((EVENTS / "eventbridge-object-created.json").read_text(encoding="utf-8"))
    event["detail"]["bucket"]["name"] = INBOX_BUCKET
    event["detail"]["object"].update(
        key="inbox/My+Photos/%C3%A9t%C3%A9%2Bplus.jpg",
        size=len(body),
        etag=put["ETag"].strip('"'),
        **{"version-id": put["VersionId"]},
    )
    assert invoke(submit_app, sqs_batch(event)) == {"batchItemFailures": []}
    [task] = runware.tasks
    job = submit_app.submitter.jobs.get(task["taskUUID"])
    assert (job.source_key, job.source_version_id, job.status) == (key, put["VersionId"], "SUBMITTED")
    assert task["taskUUID"] == job_id_for(INBOX_BUCKET, key, put["VersionId"])


def test_one_upload_failing_its_own_step_fails_only_its_message(aws, submit_app, runware):
    notifications = uploads(aws, 4)
    fail_s3_calls_for(submit_app, notifications[2]["Records"][0]["s3"]["object"]["key"])
    batch = sqs_batch(*notifications)
    response = invoke(submit_app, batch)
    assert failed_ids(response) == [batch["Records"][2]["messageId"]]
    [request] = runware.requests
    assert len(json.loads(request.content)) == 3, "its neighbours still go, in one request"
    statuses = [job_of(submit_app, n["Records"][0]) for n in notifications]
    assert [s.status if s else None for s in statuses] == ["SUBMITTED", "SUBMITTED", None, "SUBMITTED"]


def test_a_task_runware_left_unanswered_fails_only_its_message(aws, submit_app, runware):
    notifications = uploads(aws, 2)
    first = job_id_for(INBOX_BUCKET, "inbox/batch/00.jpg", notifications[0]["Records"][0]["s3"]["object"]["versionId"])
    runware.script = [
        httpx.Response(
            400,
            json={"errors": [{"code": "invalidOutputQuality", "message": "bad", "taskUUID": first}]},
        )
    ]
    batch = sqs_batch(*notifications)
    response = invoke(submit_app, batch)
    assert failed_ids(response) == [batch["Records"][1]["messageId"]]
    assert submit_app.submitter.jobs.get(first).status == "FAILED"
    assert job_of(submit_app, notifications[1]["Records"][0]).status == "CLAIMED"


@pytest.fixture
def ingest_mapping(aws) -> str:
    """The submit function's mapping on the ingestion queue, in moto's Lambda: its UUID."""
    return register_ingest_mapping(LambdaContext().function_name)


def messages_waiting(queue_url: str) -> tuple[int, int]:
    """(visible, delayed) messages in a queue: a copy handed back is held until the next try."""
    import boto3

    sqs = boto3.client("sqs", region_name="eu-west-1")
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return int(attributes[names[0]]), int(attributes[names[1]])


def pause_item(aws) -> dict[str, Any] | None:
    return aws.dynamodb.get_item(TableName="test-jobs", Key={"jobId": {"S": "#intake-pause"}}).get("Item")


def end_the_wait(aws) -> None:
    """The pause's next try is due: the resumer has let the next batch through (the probe)."""
    from datetime import timedelta

    from upscaler.clock import iso, utc_now

    aws.dynamodb.update_item(
        TableName="test-jobs",
        Key={"jobId": {"S": "#intake-pause"}},
        UpdateExpression="SET nextProbeAt = :past",
        ExpressionAttributeValues={":past": {"S": iso(utc_now() - timedelta(seconds=1))}},
    )


def test_runware_unavailable_pauses_intake_and_hands_the_batch_back(aws, submit_app, runware, capsys, ingest_mapping):
    notifications = uploads(aws, 3)
    runware.script = [httpx.Response(503)] * 3
    batch = sqs_batch(*notifications)
    capsys.readouterr()
    response = invoke(submit_app, batch)
    assert failed_ids(response) == [], "no receive count spent: the originals are done with"
    assert len(runware.requests) == 3, "one request per attempt, for the whole batch"
    assert metrics_emitted(capsys.readouterr().out) == {"MessagesHandedBack": 3.0}
    assert messages_waiting(aws.settings.ingest_queue_url) == (0, 3), "a fresh copy of each, held until the next try"
    item = pause_item(aws)
    assert item is not None and item["pauseReason"]["S"] == "Runware unavailable"
    assert item["probeAttempts"]["N"] == "1" and "status" not in item, "in no index"
    assert mapping_state(ingest_mapping) == "Disabled"
    for notification in notifications:
        assert job_of(submit_app, notification["Records"][0]).status == "CLAIMED"


def test_while_intake_is_paused_a_batch_is_handed_back_without_calling_runware(
    aws, submit_app, runware, ingest_mapping
):
    first, second = uploads(aws, 2)
    runware.script = [httpx.Response(503)] * 3
    invoke(submit_app, sqs_batch(first))
    requests = len(runware.requests)
    response = invoke(submit_app, sqs_batch(second))  # on its way before the mapping stopped
    assert failed_ids(response) == []
    assert len(runware.requests) == requests, "Runware is not asked again before the next try"
    assert messages_waiting(aws.settings.ingest_queue_url) == (0, 2)
    assert job_of(submit_app, second["Records"][0]) is None, "not even validated: it waits whole"


def test_the_probe_after_the_wait_submits_and_clears_the_pause(aws, submit_app, runware, ingest_mapping):
    first, second = uploads(aws, 2)
    runware.script = [httpx.Response(503)] * 3
    invoke(submit_app, sqs_batch(first))
    end_the_wait(aws)
    assert failed_ids(invoke(submit_app, sqs_batch(first, second))) == []
    assert pause_item(aws) is None, "the probe reached Runware: intake is open again"
    assert job_of(submit_app, first["Records"][0]).status == "SUBMITTED", "the waiting job is sent"
    assert job_of(submit_app, second["Records"][0]).status == "SUBMITTED"


def test_an_unreadable_message_is_dead_lettered_on_its_first_receive(aws, submit_app, runware, caplog):
    import boto3

    [notification] = uploads(aws, 1)
    batch = sqs_batch("not json", notification, {"Records": [{"eventSource": "aws:sns"}]})
    response = invoke(submit_app, batch)
    assert failed_ids(response) == [], "not received again: it could never be read"
    assert job_of(submit_app, notification["Records"][0]).status == "SUBMITTED"
    sqs = boto3.client("sqs", region_name="eu-west-1")
    letters = sqs.receive_message(QueueUrl=aws.settings.dead_letter_queue_url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(letter["Body"] for letter in letters) == sorted(
        [batch["Records"][0]["body"], batch["Records"][2]["body"]]
    ), "the message as it came, to read or re-drive"
    assert "message sent to the dead-letter queue" in caplog.text


def test_plain_event_metrics(aws, submit_app, runware, capsys):
    event, _ = prepared(aws, "s3-put-plain.json")
    capsys.readouterr()
    invoke(submit_app, sqs_batch(event))
    assert metrics_emitted(capsys.readouterr().out) == {"JobsSubmitted": 1.0}


def test_odd_key_event_uses_the_real_key(aws, submit_app, runware):
    event, [key] = prepared(aws, "s3-put-odd-key.json")
    assert key == "inbox/My Photos/été+plus ☃.png"
    invoke(submit_app, sqs_batch(event))
    [task] = runware.tasks
    assert submit_app.submitter.jobs.get(task["taskUUID"]).source_key == key
    assert urlsplit(task["inputs"]["image"]).path == "/inbox/My%20Photos/%C3%A9t%C3%A9%2Bplus%20%E2%98%83.png"


def test_redrive_submits_a_job_whose_first_delivery_failed(aws, submit_app, runware, ingest_mapping):
    event, [key] = prepared(aws, "s3-put-redrive-sqs.json")
    original = json.loads(event["Records"][0]["body"])["requestPayload"]
    runware.script = [httpx.Response(503)] * 3
    first = sqs_batch(original)
    assert failed_ids(invoke(submit_app, first)) == [], "handed back: intake paused"
    assert len(runware.requests) == 3
    end_the_wait(aws)
    crashed = runware.tasks[0]
    assert {t["taskUUID"] for t in runware.tasks} == {crashed["taskUUID"]}
    assert submit_app.submitter.jobs.get(crashed["taskUUID"]).status == "CLAIMED"

    # A dead letter written by the Lambda on-failure destination before the queue existed.
    assert invoke(submit_app, event) == {"batchItemFailures": []}
    job = submit_app.submitter.jobs.get(crashed["taskUUID"])
    assert (job.source_key, job.status) == (key, "SUBMITTED")
    assert runware.tasks[-1]["taskUUID"] == crashed["taskUUID"]
    assert len(runware.requests) == 4


def test_rejection_is_recorded_with_its_code_and_message(aws, submit_app, runware, capsys):
    event, _ = prepared(aws, "s3-put-plain.json", {"inbox/photos/cat.jpg": b"plain text, not a picture"})
    capsys.readouterr()
    assert invoke(submit_app, sqs_batch(event)) == {"batchItemFailures": []}
    job = job_of(submit_app, event["Records"][0])
    assert (job.status, job.error_code) == ("REJECTED", "notAnImage")
    assert "not a JPEG, PNG or WEBP" in job.error_message
    assert runware.requests == []
    assert metrics_emitted(capsys.readouterr().out) == {"JobsRejected": 1.0}


def test_an_account_refusal_pauses_intake_and_fails_no_job(aws, submit_app, runware, ingest_mapping):
    event, _ = prepared(aws, "s3-put-plain.json")
    runware.script = [httpx.Response(402, json={"errors": [{"code": "insufficientCredits", "message": "Top up."}]})]
    batch = sqs_batch(event)
    assert failed_ids(invoke(submit_app, batch)) == [], "handed back, no receive count spent"
    job = job_of(submit_app, event["Records"][0])
    assert job.status == "CLAIMED" and "insufficientCredits" in job.waiting_reason, "it waits for credits"
    assert len(runware.requests) == 1
    item = pause_item(aws)
    assert item is not None and item["pauseReason"]["S"] == "account refused"
    assert "insufficientCredits" in item["pauseDetail"]["S"]
    assert mapping_state(ingest_mapping) == "Disabled"


def test_the_invocations_remaining_time_bounds_the_retries(aws, submit_app, runware):
    event, _ = prepared(aws, "s3-put-plain.json")
    runware.script = [httpx.Response(429, headers={"Retry-After": "20"})] * 3
    batch = sqs_batch(event)
    response = invoke(submit_app, batch, LambdaContext(remaining_ms=15_000))
    assert failed_ids(response) == [], "throttled past the deadline: intake waits, the message is handed back"
    assert len(runware.requests) == 1
    assert pause_item(aws)["pauseReason"]["S"] == "Runware unavailable"


def test_a_test_event_submits_nothing_and_publishes_no_metric(aws, submit_app, runware, capsys):
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": INBOX_BUCKET}
    capsys.readouterr()
    assert invoke(submit_app, sqs_batch(test_event)) == {"batchItemFailures": []}
    assert runware.requests == []
    assert '"_aws"' not in capsys.readouterr().out


@pytest.mark.parametrize(
    "event", [{"detail-type": "Scheduled Event"}, {}, {"Records": []}, {"Records": [{"eventSource": "aws:sns"}]}]
)
def test_an_event_of_no_known_shape_is_refused_in_one_line_naming_the_batch_expected(aws, submit_app, runware, event):
    with pytest.raises(UnrecognisedEvent) as refused:
        invoke(submit_app, event)
    message = str(refused.value)
    assert "\n" not in message
    assert "ingestion queue's SQS batch (events/sqs-ingest-batch.json)" in message
    assert "events/s3-put-plain.json" in message
    assert runware.requests == []


@pytest.mark.parametrize("name", ["s3-put-plain.json", "s3-put-two-records.json"])
def test_a_plain_s3_notification_is_processed_as_the_queue_would_have_delivered_it(aws, submit_app, runware, name):
    event, keys = prepared(aws, name)  # as `sam local invoke -e events/<name>` or a direct S3 -> Lambda wiring
    response = invoke(submit_app, event)
    assert response == {"batchItemFailures": []}
    [request] = runware.requests
    assert len(json.loads(request.content)) == len(keys), "every record in one Runware request"
    for record in event["Records"]:
        job = job_of(submit_app, record)
        assert job is not None and job.status == JobStatus.SUBMITTED
