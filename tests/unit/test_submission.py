"""The submit path against moto's S3 and DynamoDB, with Runware answered at the HTTP level.

Covers the exact task sent, batching, idempotency across deliveries and crashes, every rejection,
Runware's retry and error behaviour, awkward keys, output naming, and how little of an image is read.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import io
import itertools
import json
import os
import random
import socket
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from functools import cache, partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, quote_plus, urlsplit

import httpx
import pytest
from PIL import Image

from tests.conftest import INBOX_BUCKET, OUTPUT_BUCKET, REGION, RUNWARE_KEY, WEBHOOK_KEY, WEBHOOK_URL
from tests.contract.runware_contract import by_name, of_kind
from tests.job_records import seed_job
from tests.unit.queue_events import message_id, queued, sqs_batch
from upscaler.clock import iso, utc_now
from upscaler.image_header import METADATA_MAX_BYTES
from upscaler.ingestion import MessageNotSubmitted, submit_batch
from upscaler.job_record import JobStatus, job_id_for
from upscaler.jobs import JobStore
from upscaler.models import MODEL_ID, is_uuid4
from upscaler.runware import RunwareClient, RunwareUnavailable
from upscaler.settings import Settings, read_secret
from upscaler.storage import HEADER_FIRST_READ_BYTES, ObjectStore, create_s3_client
from upscaler.submission import DUPLICATE, AccountRefused, SubmitOutcome, Submitter, TasksNotAcknowledged
from upscaler.wiring import build_submitter

EVENTS = Path(__file__).resolve().parents[2] / "events"
TASK_FIELDS = {
    "taskType",
    "taskUUID",
    "model",
    "inputs",
    "targetMegapixels",
    "settings",
    "outputType",
    "outputFormat",
    "outputQuality",
    "deliveryMethod",
    "uploadEndpoint",
    "webhookURL",
    "includeCost",
    "ttl",
}

# --- images -------------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def jpeg(width: int = 800, height: int = 600, **params: Any) -> bytes:
    return encode(Image.new("RGB", (width, height), (200, 120, 40)), "JPEG", **params)


def png(width: int = 640, height: int = 480) -> bytes:
    return encode(Image.new("RGBA", (width, height), (10, 200, 90, 255)), "PNG")


@cache
def noisy_jpeg(width: int, height: int) -> bytes:
    pixels = random.Random(width * height).randbytes(width * height * 3)
    return encode(Image.frombytes("RGB", (width, height), pixels), "JPEG", quality=100, subsampling=0)


def with_app_segments(data: bytes, count: int, length: int = 65_000) -> bytes:
    """A JPEG with `count` large APP2 segments (as ICC profiles make them) before the frame header."""
    segment = b"\xff\xe2" + struct.pack(">H", length + 2) + b"\x00" * length
    return data[:2] + segment * count + data[2:]


def heic_file() -> bytes:
    ftyp = b"ftypheic\x00\x00\x00\x00mif1heic"
    return struct.pack(">I", 4 + len(ftyp)) + ftyp + b"\x00" * 200


# --- S3 objects and events ----------------------------------------------------------------------

_sequencer = itertools.count(0x65F1A2B3C4D5E700)


def upload(aws, key: str, body: bytes, metadata: dict[str, str] | None = None, content_type: str = "") -> dict:
    """Put an object into the inbox and return the S3 record its notification would carry."""
    extra = {"ContentType": content_type} if content_type else {}
    put = aws.s3.put_object(Bucket=INBOX_BUCKET, Key=key, Body=body, Metadata=metadata or {}, **extra)
    record = copy.deepcopy(json.loads((EVENTS / "s3-put-plain.json").read_text())["Records"][0])
    record["s3"]["object"] = {
        "key": quote_plus(key, safe="/"),
        "size": len(body),
        "eTag": put["ETag"].strip('"'),
        "versionId": put["VersionId"],
        "sequencer": f"{next(_sequencer):018X}",
    }
    # A notification's eventTime is the upload's own (an upload older than a job record lives would
    # also look for its own output: see upscaler.prior_outputs).
    record["eventTime"] = iso(utc_now())
    return record


def event(*records: dict) -> dict:
    """The S3 notification for these records, as one event."""
    return {"Records": list(records)}


def submit(submitter: Submitter, batch: dict, *, deadline: float | None = None) -> list[SubmitOutcome]:
    """One delivery of a queue batch through the submit function's entry: its outcomes, once every
    message is finished with (none reported for receiving again)."""
    result = submit_batch(submitter, batch, deadline=deadline)
    assert result.failed == {}, result.failed
    return result.outcomes


# --- Runware at the HTTP level ------------------------------------------------------------------


def acknowledge(tasks: list[dict]) -> httpx.Response:
    return httpx.Response(200, json={"data": [{"taskType": t["taskType"], "taskUUID": t["taskUUID"]} for t in tasks]})


class FakeRunware:
    """Records every request; answers with scripted responses first, then acknowledges every task."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.script: list[httpx.Response | Exception | Callable[[list[dict]], httpx.Response]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        tasks = json.loads(request.content)
        answer = self.script.pop(0) if self.script else acknowledge
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(tasks)
        return answer

    @property
    def batches(self) -> list[list[dict]]:
        return [json.loads(request.content) for request in self.requests]

    @property
    def tasks(self) -> list[dict]:
        return [task for batch in self.batches for task in batch]


def runware_client(settings: Settings, fake: FakeRunware, sleeps: list[float], max_attempts: int = 4) -> RunwareClient:
    return RunwareClient(
        settings.runware_api_url,
        partial(read_secret, settings.runware_api_key_secret),
        http=httpx.Client(transport=httpx.MockTransport(fake)),
        max_attempts=max_attempts,
        sleep=sleeps.append,
        rng=random.Random(42),
    )


@pytest.fixture
def runware() -> FakeRunware:
    return FakeRunware()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_submitter(aws, runware, sleeps) -> Callable[..., Submitter]:
    def make(settings: Settings | None = None, s3_client: Any = None, max_attempts: int = 4) -> Submitter:
        settings = settings or aws.settings
        submitter = build_submitter(settings)
        submitter.runware = runware_client(settings, runware, sleeps, max_attempts)
        if s3_client is not None:
            submitter.objects = ObjectStore(s3_client)
        return submitter

    return make


@pytest.fixture
def submitter(make_submitter) -> Submitter:
    return make_submitter()


@pytest.fixture
def jobs(aws) -> JobStore:
    return JobStore(aws.dynamodb, aws.settings.jobs_table)


def all_jobs(aws) -> list[dict]:
    # A scan is fine in a test: it proves there is no second job anywhere in the table. Items without
    # a status are not jobs (the day's spend counter, the intake pause).
    return [item for item in aws.dynamodb.scan(TableName=aws.settings.jobs_table)["Items"] if "status" in item]


# --- presigned URL checks -----------------------------------------------------------------------


def sigv4_signature_is_valid(url: str, method: str) -> bool:
    """Recompute a presigned URL's SigV4 signature for `method` with the credentials it was signed with."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    params = dict(query)
    date, region, service, terminator = params["X-Amz-Credential"].split("/")[1:]
    canonical_query = "&".join(
        f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}"
        for name, value in sorted(query)
        if name != "X-Amz-Signature"
    )
    canonical_request = "\n".join(
        [
            method,
            parts.path,
            canonical_query,
            f"host:{parts.netloc}",
            "",
            params["X-Amz-SignedHeaders"],
            "UNSIGNED-PAYLOAD",
        ]
    )
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            params["X-Amz-Date"],
            f"{date}/{region}/{service}/{terminator}",
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = ("AWS4" + os.environ["AWS_SECRET_ACCESS_KEY"]).encode()
    for part in (date, region, service, terminator):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(
        hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest(), params["X-Amz-Signature"]
    )


def assert_presigned(url: str, method: str, bucket: str, key: str, expires: int) -> dict[str, str]:
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    assert parts.scheme == "https"
    assert parts.netloc == f"{bucket}.s3.{REGION}.amazonaws.com"  # the regional endpoint
    assert parts.path == "/" + quote(key, safe="/")
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    access_key, _date, region, service, terminator = params["X-Amz-Credential"].split("/")
    assert (access_key, region, service, terminator) == (os.environ["AWS_ACCESS_KEY_ID"], REGION, "s3", "aws4_request")
    assert params["X-Amz-Expires"] == str(expires)
    assert params["X-Amz-SignedHeaders"] == "host"
    assert params["X-Amz-Security-Token"] == os.environ["AWS_SESSION_TOKEN"]
    assert len(params["X-Amz-Signature"]) == 64
    assert sigv4_signature_is_valid(url, method)
    assert not sigv4_signature_is_valid(url, "DELETE")
    return params


@pytest.fixture
def loopback_only(monkeypatch):
    """Fail the test on any name lookup or connection beyond this machine."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"network lookup of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> Any:
        if address[0] not in ("127.0.0.1", "::1"):
            raise AssertionError(f"network connection to {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)


# --- the task sent ------------------------------------------------------------------------------


def test_the_exact_task_sent_for_an_object(aws, submitter, runware):
    body = jpeg(800, 600)
    record = upload(aws, "inbox/photos/cat.jpg", body, content_type="image/jpeg")
    version = record["s3"]["object"]["versionId"]

    [outcome] = submit(submitter, queued(record))

    [request] = runware.requests
    assert request.method == "POST"
    assert str(request.url) == aws.settings.runware_api_url
    assert request.headers["authorization"] == f"Bearer {RUNWARE_KEY}"
    batch = json.loads(request.content)
    assert isinstance(batch, list)
    [task] = batch
    assert set(task) == TASK_FIELDS

    job_id = job_id_for(INBOX_BUCKET, "inbox/photos/cat.jpg", version)
    assert task["taskType"] == "upscale"
    assert task["taskUUID"] == job_id == outcome.job_id
    assert is_uuid4(task["taskUUID"]) and uuid.UUID(task["taskUUID"]).version == 4
    assert task["model"] == MODEL_ID == "prunaai:p-image@upscale"

    assert set(task["inputs"]) == {"image"}
    expiry = aws.settings.presigned_url_expiry_seconds
    get_params = assert_presigned(task["inputs"]["image"], "GET", INBOX_BUCKET, "inbox/photos/cat.jpg", expiry)
    assert get_params["versionId"] == version

    assert type(task["targetMegapixels"]) is int and 1 <= task["targetMegapixels"] <= 8
    assert task["targetMegapixels"] == 4
    assert task["settings"] == {"enhanceDetails": False, "realism": False}
    assert all(type(value) is bool for value in task["settings"].values())
    assert task["outputType"] == "URL"
    assert task["outputFormat"] == "JPG"
    assert type(task["outputQuality"]) is int and 20 <= task["outputQuality"] <= 99
    assert task["outputQuality"] == 95
    assert task["deliveryMethod"] == "async"

    job = submitter.jobs.get(job_id)
    output_key = job.output_key
    assert output_key == f"upscaled/photos/cat.jpg.{job_id[:8]}.jpg"
    # Runware uploads to a staging key that nothing else reads; the result is published from there.
    put_params = assert_presigned(task["uploadEndpoint"], "PUT", OUTPUT_BUCKET, f"staging/{job_id}", expiry)
    assert "versionId" not in put_params
    assert "content-type" not in task["uploadEndpoint"].lower()

    webhook = urlsplit(task["webhookURL"])
    assert f"{webhook.scheme}://{webhook.netloc}{webhook.path}" == WEBHOOK_URL
    query = parse_qs(webhook.query)
    assert set(query) == {"job", "token"}
    assert query["job"] == [job_id]
    assert query["token"] == [hmac.new(WEBHOOK_KEY.encode(), job_id.encode(), hashlib.sha256).hexdigest()]

    assert task["includeCost"] is True
    assert type(task["ttl"]) is int and task["ttl"] >= 60
    assert task["ttl"] == aws.settings.runware_result_ttl_seconds

    assert outcome.status == JobStatus.SUBMITTED
    assert (outcome.source_key, outcome.code, outcome.message) == ("inbox/photos/cat.jpg", None, None)
    assert job.status == "SUBMITTED"
    assert job.submit_attempts == 1
    assert job.submitted_at >= job.created_at
    assert {k: job.to_record()[k] for k in ("sourceBucket", "sourceKey", "sourceVersionId", "sourceSize")} == {
        "sourceBucket": INBOX_BUCKET,
        "sourceKey": "inbox/photos/cat.jpg",
        "sourceVersionId": version,
        "sourceSize": len(body),
    }
    assert job.source_etag == record["s3"]["object"]["eTag"]
    assert (job.input_format, job.input_width, job.input_height) == ("JPEG", 800, 600)
    assert job.source_content_type == "image/jpeg"
    assert (job.output_bucket, job.output_content_type) == (OUTPUT_BUCKET, "image/jpeg")
    assert (job.target_megapixels, job.output_format, job.output_quality) == (4, "JPG", 95)
    assert job.event_time == record["eventTime"]
    assert job.error_code is None


def test_presigned_get_fetches_that_exact_version(aws, submitter, runware, loopback_only):
    import requests  # moto answers requests' calls to AWS endpoints in-process

    first = jpeg(400, 300)
    record = upload(aws, "inbox/photos/cat.jpg", first)
    submit(submitter, queued(record))
    # Overwritten after the task was sent: Runware still reads the bytes that were validated.
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/photos/cat.jpg", Body=jpeg(401, 300))
    response = requests.get(runware.tasks[0]["inputs"]["image"], timeout=5)
    assert response.status_code == 200
    assert response.content == first


def test_upload_endpoint_takes_a_put_with_any_content_type(aws, submitter, runware, loopback_only):
    import requests

    submit(submitter, queued(upload(aws, "inbox/a.jpg", jpeg())))
    task = runware.tasks[0]
    response = requests.put(
        task["uploadEndpoint"], data=b"upscaled bytes", headers={"Content-Type": "image/png"}, timeout=5
    )
    assert response.status_code == 200
    staged_key = f"staging/{task['taskUUID']}"
    assert aws.s3.get_object(Bucket=OUTPUT_BUCKET, Key=staged_key)["Body"].read() == b"upscaled bytes"


# --- one request per event ----------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 5])
def test_one_request_for_an_event_with_n_records(aws, submitter, runware, count):
    records = [upload(aws, f"inbox/batch/{n}.jpg", jpeg(300 + n, 200)) for n in range(count)]
    outcomes = submit(submitter, queued(*records))
    assert len(runware.requests) == 1
    [batch] = runware.batches
    assert len(batch) == count
    assert [o.status for o in outcomes] == [JobStatus.SUBMITTED] * count
    assert [t["taskUUID"] for t in batch] == [o.job_id for o in outcomes]
    assert len({t["taskUUID"] for t in batch}) == count
    assert [urlsplit(t["inputs"]["image"]).path for t in batch] == [f"/inbox/batch/{n}.jpg" for n in range(count)]
    assert len(all_jobs(aws)) == count


def test_the_same_record_twice_in_one_event_is_one_task(aws, submitter, runware):
    record = upload(aws, "inbox/a.jpg", jpeg())
    outcomes = submit(submitter, sqs_batch(event(record, copy.deepcopy(record))))  # one message
    assert len(outcomes) == 1
    assert len(runware.tasks) == 1


def test_an_event_without_objects_sends_nothing(submitter, runware):
    assert submit(submitter, sqs_batch({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []
    assert runware.requests == []


def test_rejected_and_accepted_records_in_one_event(aws, submitter, runware):
    good = upload(aws, "inbox/good.jpg", jpeg())
    bad = upload(aws, "inbox/bad.jpg", b"not an image at all")
    outcomes = submit(submitter, queued(bad, good))
    assert {o.source_key: o.status for o in outcomes} == {"inbox/bad.jpg": "REJECTED", "inbox/good.jpg": "SUBMITTED"}
    [batch] = runware.batches
    assert [urlsplit(t["inputs"]["image"]).path for t in batch] == ["/inbox/good.jpg"]


# --- at-least-once delivery and crashes ---------------------------------------------------------


def test_a_redelivered_event_creates_no_second_task(aws, submitter, runware):
    batch = queued(upload(aws, "inbox/photos/cat.jpg", jpeg()))
    [first] = submit(submitter, batch)
    [second] = submit(submitter, copy.deepcopy(batch))
    assert first.status == JobStatus.SUBMITTED
    assert second.status == DUPLICATE
    assert second.job_id == first.job_id
    assert len(runware.requests) == 1
    assert len(all_jobs(aws)) == 1
    assert submitter.jobs.get(first.job_id).submit_attempts == 1


def test_a_redelivered_rejection_is_a_duplicate(aws, submitter, runware):
    batch = queued(upload(aws, "inbox/empty.jpg", b""))
    [first] = submit(submitter, batch)
    [second] = submit(submitter, batch)
    assert (first.status, second.status) == (JobStatus.REJECTED, DUPLICATE)
    assert runware.requests == []
    assert len(all_jobs(aws)) == 1


def test_a_new_version_of_the_same_key_is_a_new_job(aws, submitter, runware):
    [first] = submit(submitter, queued(upload(aws, "inbox/a.jpg", jpeg(500, 400))))
    [second] = submit(submitter, queued(upload(aws, "inbox/a.jpg", jpeg(600, 400))))
    assert first.job_id != second.job_id
    assert [o.status for o in (first, second)] == [JobStatus.SUBMITTED, JobStatus.SUBMITTED]
    assert len(runware.requests) == 2


def test_a_claimed_job_left_by_a_crash_is_resubmitted_with_the_same_task_uuid(aws, make_submitter, runware):
    submitter = make_submitter(max_attempts=2)
    batch = queued(upload(aws, "inbox/photos/cat.jpg", jpeg()))
    runware.script = [httpx.ConnectError("connection refused"), httpx.ConnectError("connection refused")]
    with pytest.raises(RunwareUnavailable):
        submit_batch(submitter, batch)
    [crashed] = runware.tasks[:1]
    assert submitter.jobs.get(crashed["taskUUID"]).status == "CLAIMED"

    [outcome] = submit(submitter, batch)
    assert outcome.status == JobStatus.SUBMITTED
    assert len(runware.requests) == 3
    retried = runware.batches[-1][0]
    assert retried["taskUUID"] == crashed["taskUUID"] == outcome.job_id
    assert urlsplit(retried["uploadEndpoint"]).path == urlsplit(crashed["uploadEndpoint"]).path
    assert len(all_jobs(aws)) == 1

    [again] = submit(submitter, batch)
    assert again.status == DUPLICATE
    assert len(runware.requests) == 3


def test_a_claimed_job_written_before_a_crash_is_submitted_as_claimed(aws, submitter, runware, jobs):
    record = upload(aws, "inbox/photos/cat.jpg", jpeg(800, 600))
    obj = record["s3"]["object"]
    job_id = job_id_for(INBOX_BUCKET, "inbox/photos/cat.jpg", obj["versionId"])
    claimed = {
        "jobId": job_id,
        "sourceBucket": INBOX_BUCKET,
        "sourceKey": "inbox/photos/cat.jpg",
        "sourceVersionId": obj["versionId"],
        "sourceETag": obj["eTag"],
        "sourceSize": obj["size"],
        "sourceContentType": "image/jpeg",
        "inputFormat": "JPEG",
        "inputWidth": 800,
        "inputHeight": 600,
        "targetMegapixels": 6,
        "enhanceDetails": True,
        "realism": False,
        "outputFormat": "PNG",
        "outputQuality": 90,
        "outputBucket": OUTPUT_BUCKET,
        "outputKey": f"upscaled/photos/cat.jpg.{job_id[:8]}.png",
        "outputContentType": "image/png",
    }
    seed_job(jobs, claimed, JobStatus.CLAIMED)

    [outcome] = submit(submitter, queued(record))

    assert outcome.status == JobStatus.SUBMITTED
    [task] = runware.tasks
    assert task["taskUUID"] == job_id
    # The claim's own request is sent, not one re-derived from today's defaults.
    assert (task["targetMegapixels"], task["settings"]["enhanceDetails"], task["outputFormat"]) == (6, True, "PNG")
    assert urlsplit(task["uploadEndpoint"]).path == f"/staging/{claimed['jobId']}"
    assert parse_qs(urlsplit(task["inputs"]["image"]).query)["versionId"] == [obj["versionId"]]
    assert jobs.get(job_id).status == "SUBMITTED"


def test_a_duplicate_task_uuid_answer_counts_as_submitted(aws, make_submitter, runware):
    submitter = make_submitter(max_attempts=1)
    batch = queued(upload(aws, "inbox/a.jpg", jpeg()))
    runware.script = [httpx.ReadTimeout("timed out")]  # Runware got the task, the answer was lost
    with pytest.raises(RunwareUnavailable):
        submit_batch(submitter, batch)

    def already_have_it(tasks: list[dict]) -> httpx.Response:
        errors = [
            {"code": "conflictTaskUUID", "message": "Task UUID already exists.", "taskUUID": t["taskUUID"]}
            for t in tasks
        ]
        return httpx.Response(400, json={"errors": errors})

    runware.script = [already_have_it]
    [outcome] = submit(submitter, batch)
    assert outcome.status == JobStatus.SUBMITTED
    job = submitter.jobs.get(outcome.job_id)
    assert job.status == "SUBMITTED"
    assert job.error_code is None


# --- rejections ---------------------------------------------------------------------------------

# Each case: (key, body, metadata, settings changes, code, message fragment). Keys are unique, so all
# cases share one moto world; each still goes through its own event.
REJECTIONS = {
    "text-named-jpg": ("inbox/notes.jpg", b"just some text\n" * 20, {}, {}, "notAnImage", "not a JPEG, PNG or WEBP"),
    "empty": ("inbox/empty.jpg", b"", {}, {}, "emptyObject", "the object is empty (0 bytes)"),
    "too-big": ("inbox/big.jpg", jpeg(), {}, {"max_input_bytes": 1000}, "objectTooLarge", "the limit is 1000 bytes"),
    "at-target": ("inbox/6mp.jpg", jpeg(3000, 2000), {}, {}, "alreadyAtTarget", "3000x2000 (6.00 MP), already at"),
    "exactly-at-target": ("inbox/4mp.png", png(2000, 2000), {}, {}, "alreadyAtTarget", "target of 4 MP"),
    "target-9": (
        "inbox/t9.jpg",
        jpeg(),
        {"target-megapixels": "9"},
        {},
        "invalidOverride",
        "x-amz-meta-target-megapixels: must be an integer from 1 to 8",
    ),
    "target-abc": (
        "inbox/tabc.jpg",
        jpeg(),
        {"target-megapixels": "abc"},
        {},
        "invalidOverride",
        "x-amz-meta-target-megapixels: 'abc' is not an integer",
    ),
    "quality-10": (
        "inbox/q10.jpg",
        jpeg(),
        {"output-quality": "10"},
        {},
        "invalidOverride",
        "x-amz-meta-output-quality: must be an integer from 20 to 99",
    ),
    "format-gif": (
        "inbox/fgif.jpg",
        jpeg(),
        {"output-format": "GIF"},
        {},
        "invalidOverride",
        "x-amz-meta-output-format: must be one of JPG, PNG, WEBP",
    ),
    "enhance-maybe": (
        "inbox/em.jpg",
        jpeg(),
        {"enhance-details": "maybe"},
        {},
        "invalidOverride",
        "x-amz-meta-enhance-details: 'maybe' is not true or false",
    ),
    "gif": (
        "inbox/anim.gif",
        encode(Image.new("P", (64, 64)), "GIF"),
        {},
        {},
        "unsupportedFormat",
        "GIF is not supported; use JPEG, PNG or WEBP",
    ),
    "heic": ("inbox/IMG_0001.HEIC", heic_file(), {}, {}, "unsupportedFormat", "HEIC is not supported"),
    "heic-named-jpg": ("inbox/IMG_0002.jpg", heic_file(), {}, {}, "unsupportedFormat", "HEIC is not supported"),
    "truncated-jpeg": (
        "inbox/cut.jpg",
        with_app_segments(jpeg(), 1, 3000)[:2000],
        {},
        {},
        "notAnImage",
        "truncated JPEG header",
    ),
}


def test_bad_input_is_rejected_without_calling_runware(aws, make_submitter, runware):
    for case, (key, body, metadata, changes, code, fragment) in REJECTIONS.items():
        submitter = make_submitter(replace(aws.settings, **changes))
        record = upload(aws, key, body, metadata)
        [outcome] = submit(submitter, queued(record))

        assert (outcome.status, outcome.code) == (JobStatus.REJECTED, code), case
        assert fragment in outcome.message, (case, outcome.message)
        assert runware.requests == [], case
        job = submitter.jobs.get(outcome.job_id)
        assert job.status == "REJECTED", case
        assert (job.error_code, job.error_message) == (code, outcome.message), case
        assert (job.source_key, job.source_version_id) == (key, record["s3"]["object"]["versionId"]), case
        # The source is never deleted or changed.
        assert aws.s3.get_object(Bucket=INBOX_BUCKET, Key=key)["Body"].read() == body, case
    assert len(all_jobs(aws)) == len(REJECTIONS)


def test_an_object_deleted_before_processing_is_rejected(aws, submitter, runware):
    record = upload(aws, "inbox/gone.jpg", jpeg())
    aws.s3.delete_object(Bucket=INBOX_BUCKET, Key="inbox/gone.jpg", VersionId=record["s3"]["object"]["versionId"])
    [outcome] = submit(submitter, queued(record))
    assert (outcome.status, outcome.code) == (JobStatus.REJECTED, "sourceMissing")
    assert runware.requests == []


def test_just_below_the_target_is_accepted(aws, submitter, runware):
    [outcome] = submit(submitter, queued(upload(aws, "inbox/almost.png", png(2000, 1999))))
    assert outcome.status == JobStatus.SUBMITTED
    assert len(runware.tasks) == 1


def test_valid_overrides_change_the_task(aws, submitter, runware):
    metadata = {
        "target-megapixels": "8",
        "enhance-details": "true",
        "realism": "yes",
        "output-format": "png",
        "output-quality": "80",
    }
    [outcome] = submit(submitter, queued(upload(aws, "inbox/portrait.jpg", jpeg(), metadata)))
    [task] = runware.tasks
    assert task["targetMegapixels"] == 8
    assert task["settings"] == {"enhanceDetails": True, "realism": True}
    assert (task["outputFormat"], task["outputQuality"]) == ("PNG", 80)
    job = submitter.jobs.get(outcome.job_id)
    assert job.output_key.endswith(".png")
    assert job.output_content_type == "image/png"
    assert urlsplit(task["uploadEndpoint"]).path == f"/staging/{job.job_id}"
    assert (job.target_megapixels, job.enhance_details, job.realism) == (8, True, True)


def test_a_larger_target_makes_a_big_image_acceptable(aws, submitter, runware):
    [outcome] = submit(submitter, queued(upload(aws, "inbox/big.jpg", jpeg(3000, 2000), {"target-megapixels": "8"})))
    assert outcome.status == JobStatus.SUBMITTED
    assert runware.tasks[0]["targetMegapixels"] == 8


# --- Runware's answers --------------------------------------------------------------------------


def test_429_with_retry_after_then_success(aws, submitter, runware, sleeps):
    runware.script = [httpx.Response(429, headers={"Retry-After": "2"}, json={"errors": [{"code": "tooManyRequests"}]})]
    [outcome] = submit(submitter, queued(upload(aws, "inbox/a.jpg", jpeg())))
    assert outcome.status == JobStatus.SUBMITTED
    assert len(runware.requests) == 2
    assert runware.batches[0] == runware.batches[1]
    assert len(sleeps) == 1 and sleeps[0] >= 2.0


def test_server_and_transport_errors_are_retried(aws, submitter, runware, sleeps):
    failures = {
        "500": httpx.Response(500),
        "502": httpx.Response(502, text="bad gateway"),
        "503": httpx.Response(503),
        "connect-error": httpx.ConnectError("connection refused"),
        "read-timeout": httpx.ReadTimeout("timed out"),
    }
    for n, (case, failure) in enumerate(failures.items()):
        runware.requests.clear()
        sleeps.clear()
        runware.script = [failure, failure]
        [outcome] = submit(submitter, queued(upload(aws, f"inbox/retry-{n}.jpg", jpeg())))
        assert outcome.status == JobStatus.SUBMITTED, case
        assert len(runware.requests) == 3, case
        assert len(sleeps) == 2, case
        assert len({r.content for r in runware.requests}) == 1, case  # the same tasks each time


def test_a_400_fails_the_job_at_once_with_runwares_error(aws, submitter, runware, sleeps):
    def invalid(tasks: list[dict]) -> httpx.Response:
        error = {
            "code": "invalidImageURL",
            "message": "The image URL could not be downloaded.",
            "parameter": "inputs.image",
            "taskType": "upscale",
            "taskUUID": tasks[0]["taskUUID"],
        }
        return httpx.Response(400, json={"errors": [error]})

    runware.script = [invalid]
    [outcome] = submit(submitter, queued(upload(aws, "inbox/a.jpg", jpeg())))
    assert len(runware.requests) == 1
    assert sleeps == []
    assert (outcome.status, outcome.code, outcome.message) == (
        JobStatus.FAILED,
        "invalidImageURL",
        "The image URL could not be downloaded.",
    )
    job = submitter.jobs.get(outcome.job_id)
    assert job.status == "FAILED"
    assert job.error_code == "invalidImageURL"
    assert job.error_message == "The image URL could not be downloaded."
    assert job.error_parameter == "inputs.image"
    assert job.completed_at >= job.created_at
    assert job.submit_attempts == 1


def test_auth_balance_and_permission_errors_are_not_retried_and_fail_no_job(aws, submitter, runware, sleeps):
    # An account refusal describes the key, the balance or the permission: the jobs stay open, the invocation fails.
    for status, code in [(401, "invalidApiKey"), (402, "insufficientCredits"), (403, "forbiddenModel")]:
        runware.requests.clear()
        runware.script = [httpx.Response(status, json={"errors": [{"code": code, "message": f"{code}!"}]})]
        records = [upload(aws, f"inbox/{status}/a.jpg", jpeg()), upload(aws, f"inbox/{status}/b.jpg", jpeg())]
        with pytest.raises(AccountRefused) as refused:
            submit_batch(submitter, queued(*records))
        assert refused.value.status_code == status
        assert len(runware.requests) == 1, status
        assert sleeps == [], status
        waiting = [item for item in all_jobs(aws) if f"inbox/{status}/" in item["sourceKey"]["S"]]
        assert [item["status"]["S"] for item in waiting] == ["CLAIMED", "CLAIMED"], status
        assert all(code in item["waitingReason"]["S"] for item in waiting), status


def test_jobs_that_waited_for_the_account_are_submitted_by_the_retry(aws, submitter, runware):
    records = [upload(aws, "inbox/wait/a.jpg", jpeg()), upload(aws, "inbox/wait/b.jpg", jpeg())]
    runware.script = [httpx.Response(401, json={"errors": [{"code": "invalidApiKey", "message": "bad key"}]})]
    with pytest.raises(AccountRefused):
        submit_batch(submitter, queued(*records))

    outcomes = submit(submitter, queued(*records))  # the key is fixed; the retried invocation

    assert [outcome.status for outcome in outcomes] == ["SUBMITTED", "SUBMITTED"]
    for outcome in outcomes:
        job = submitter.jobs.get(outcome.job_id)
        assert job.waiting_reason is None
        assert job.staging_key == f"staging/{outcome.job_id}"


def test_the_deadline_stops_retries_and_leaves_the_job_claimed(aws, make_submitter, runware, sleeps):
    submitter = make_submitter(max_attempts=10)
    runware.script = [httpx.Response(503, headers={"Retry-After": "60"})] * 10
    started = time.monotonic()
    with pytest.raises(RunwareUnavailable):
        submit_batch(submitter, queued(upload(aws, "inbox/a.jpg", jpeg())), deadline=time.monotonic() + 30)
    assert time.monotonic() - started < 5
    assert len(runware.requests) == 1
    assert sleeps == []
    [item] = all_jobs(aws)
    assert item["status"] == {"S": "CLAIMED"}


def test_answers_are_matched_by_task_uuid_not_position(aws, submitter, runware):
    records = [upload(aws, f"inbox/m/{n}.jpg", jpeg(300 + n, 200)) for n in range(3)]

    def reversed_with_one_error(tasks: list[dict]) -> httpx.Response:
        failing = tasks[1]["taskUUID"]
        data = [{"taskType": "upscale", "taskUUID": t["taskUUID"]} for t in reversed(tasks) if t["taskUUID"] != failing]
        errors = [{"code": "invalidImage", "message": "unreadable input", "taskUUID": failing}]
        return httpx.Response(200, json={"errors": errors, "data": data})

    runware.script = [reversed_with_one_error]
    outcomes = submit(submitter, queued(*records))
    assert [(o.source_key, o.status) for o in outcomes] == [
        ("inbox/m/0.jpg", JobStatus.SUBMITTED),
        ("inbox/m/1.jpg", JobStatus.FAILED),
        ("inbox/m/2.jpg", JobStatus.SUBMITTED),
    ]
    statuses = {o.source_key: submitter.jobs.get(o.job_id).status for o in outcomes}
    assert statuses == {"inbox/m/0.jpg": "SUBMITTED", "inbox/m/1.jpg": "FAILED", "inbox/m/2.jpg": "SUBMITTED"}


def test_tasks_a_refused_request_says_nothing_about_stay_claimed_and_are_sent_again(aws, submitter, runware):
    records = [upload(aws, f"inbox/silent/{n}.jpg", jpeg(300 + n, 200)) for n in range(2)]

    def refuse_naming_only_the_first(tasks: list[dict]) -> httpx.Response:
        error = {"code": "invalidImage", "message": "unreadable input", "taskUUID": tasks[0]["taskUUID"]}
        return httpx.Response(400, json={"errors": [error]})

    runware.script = [refuse_naming_only_the_first]
    batch = queued(*records)
    result = submit_batch(submitter, batch)
    first, second = (job_id_for(INBOX_BUCKET, f"inbox/silent/{n}.jpg", r["s3"]["object"]["versionId"])
                     for n, r in enumerate(records))  # fmt: skip
    # Only the unanswered task's message is received again; the refused one has its outcome.
    assert result.failed == {message_id(batch, 1): str(TasksNotAcknowledged([second], 400))}
    result.check_record(message_id(batch, 0))
    with pytest.raises(MessageNotSubmitted, match="left 1 task"):
        result.check_record(message_id(batch, 1))
    assert [(o.job_id, o.status) for o in result.outcomes] == [(first, JobStatus.FAILED)]
    assert submitter.jobs.get(first).status == "FAILED"
    assert submitter.jobs.get(second).status == "CLAIMED"

    retried = submit(submitter, batch)  # the whole batch again: the other message as a duplicate delivery

    assert [task["taskUUID"] for task in runware.batches[-1]] == [second]
    assert {(o.job_id, o.status) for o in retried} == {(first, DUPLICATE), (second, JobStatus.SUBMITTED)}


def test_a_rejection_keeps_what_was_learnt_about_the_input(aws, submitter, runware):
    record = upload(aws, "inbox/big/already.jpg", jpeg(2600, 1700))
    (outcome,) = submit(submitter, queued(record))
    job = submitter.jobs.get(outcome.job_id)
    assert (job.status, job.error_code) == ("REJECTED", "alreadyAtTarget")
    assert (job.input_format, job.input_width, job.input_height, job.target_megapixels) == (
        "JPEG",
        2600,
        1700,
        4,
    )
    assert runware.requests == []


# --- awkward keys and output names --------------------------------------------------------------

AWKWARD_KEYS = {
    "inbox/My Photos/été+plus ☃.png": "/inbox/My%20Photos/%C3%A9t%C3%A9%2Bplus%20%E2%98%83.png",
    "inbox/a b+c.jpg": "/inbox/a%20b%2Bc.jpg",
    "inbox/日本/写真 1.jpg": "/inbox/%E6%97%A5%E6%9C%AC/%E5%86%99%E7%9C%9F%201.jpg",
    "inbox/d1/d2/d3/d4/d5/d6/deep.jpg": "/inbox/d1/d2/d3/d4/d5/d6/deep.jpg",
    "inbox/100% & more?#=.jpg": "/inbox/100%25%20%26%20more%3F%23%3D.jpg",
    "inbox/++ %2B.jpg": "/inbox/%2B%2B%20%252B.jpg",
}


def test_awkward_keys_round_trip(aws, submitter, runware, loopback_only):
    import requests

    bodies = {
        key: png(320, 240 + n) if key.endswith(".png") else jpeg(320, 240 + n) for n, key in enumerate(AWKWARD_KEYS)
    }
    records = [upload(aws, key, body) for key, body in bodies.items()]
    assert records[0]["s3"]["object"]["key"] == "inbox/My+Photos/%C3%A9t%C3%A9%2Bplus+%E2%98%83.png"
    outcomes = submit(submitter, queued(*records))

    assert [o.source_key for o in outcomes] == list(AWKWARD_KEYS)
    assert all(o.status == JobStatus.SUBMITTED for o in outcomes)
    [batch] = runware.batches
    for outcome, task, (key, path) in zip(outcomes, batch, AWKWARD_KEYS.items(), strict=True):
        job = submitter.jobs.get(outcome.job_id)
        assert job.source_key == key
        image_url = task["inputs"]["image"]
        assert urlsplit(image_url).path == path
        assert sigv4_signature_is_valid(image_url, "GET"), key
        assert requests.get(image_url, timeout=5).content == bodies[key], key
        assert job.output_key == f"upscaled/{key.removeprefix('inbox/')}.{outcome.job_id[:8]}.jpg"
        assert urlsplit(task["uploadEndpoint"]).path == f"/staging/{job.job_id}"
        assert sigv4_signature_is_valid(task["uploadEndpoint"], "PUT"), key


def test_outputs_of_a_png_and_a_jpg_of_the_same_name_differ(aws, submitter):
    outcomes = submit(
        submitter, queued(upload(aws, "inbox/a.png", png(300, 200)), upload(aws, "inbox/a.jpg", jpeg(300, 200)))
    )
    keys = [submitter.jobs.get(o.job_id).output_key for o in outcomes]
    assert keys[0] != keys[1]
    assert keys[0].startswith("upscaled/a.png.") and keys[1].startswith("upscaled/a.jpg.")
    assert all(k.endswith(".jpg") for k in keys)


def test_two_versions_of_one_key_get_different_outputs(aws, submitter):
    outcomes = submit(submitter, queued(upload(aws, "inbox/a.jpg", jpeg(300, 200))))
    outcomes += submit(submitter, queued(upload(aws, "inbox/a.jpg", jpeg(310, 200))))
    assert [o.status for o in outcomes] == [JobStatus.SUBMITTED, JobStatus.SUBMITTED]
    keys = {submitter.jobs.get(o.job_id).output_key for o in outcomes}
    assert len(keys) == 2


def test_outputs_go_to_the_output_bucket_only(aws, submitter, runware):
    submit(submitter, queued(upload(aws, "inbox/a.jpg", jpeg())))
    assert urlsplit(runware.tasks[0]["uploadEndpoint"]).netloc.startswith(f"{OUTPUT_BUCKET}.")
    assert OUTPUT_BUCKET != INBOX_BUCKET


# --- reading as little as possible --------------------------------------------------------------


class RangeCheckingS3:
    """The real S3 client, with every get_object call recorded."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.gets: list[dict[str, Any]] = []

    def get_object(self, **kwargs: Any) -> Any:
        self.gets.append(kwargs)
        return self._client.get_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in ("download_file", "download_fileobj"):
            raise AssertionError(f"{name} must not be used")
        return getattr(self._client, name)


def ranges_read(gets: list[dict[str, Any]], *, contiguous: bool = True) -> list[tuple[int, int]]:
    """The byte ranges of the recorded get_object calls; each must have a Range, the first from 0,
    each after the last (no byte fetched twice), and with `contiguous` each where the last ended."""
    ranges = []
    for kwargs in gets:
        assert "Range" in kwargs, "a get_object call without a Range header"
        start, end = kwargs["Range"].removeprefix("bytes=").split("-")
        ranges.append((int(start), int(end)))
    assert ranges[0][0] == 0, ranges
    assert all(start > previous_end for (_, previous_end), (start, _) in itertools.pairwise(ranges)), ranges
    if contiguous:
        assert [start for start, _ in ranges] == [0] + [end + 1 for _, end in ranges[:-1]], ranges
    return ranges


def test_a_5_mb_jpeg_is_submitted_from_its_first_bytes(aws, make_submitter, runware):
    body = noisy_jpeg(1900, 1400)
    assert len(body) >= 5_000_000
    s3 = RangeCheckingS3(create_s3_client())
    submitter = make_submitter(s3_client=s3)
    [outcome] = submit(submitter, queued(upload(aws, "inbox/huge.jpg", body)))
    assert outcome.status == JobStatus.SUBMITTED
    assert submitter.objects.header_bytes_read <= HEADER_FIRST_READ_BYTES
    assert ranges_read(s3.gets) == [(0, HEADER_FIRST_READ_BYTES - 1)]
    job = submitter.jobs.get(outcome.job_id)
    assert (job.input_width, job.input_height, job.source_size) == (1900, 1400, len(body))


def test_a_jpeg_with_large_metadata_reads_more_but_within_the_bound(aws, make_submitter, runware):
    body = with_app_segments(noisy_jpeg(1900, 1400), 3)  # about 195 KB before the frame header
    assert len(body) >= 5_000_000
    s3 = RangeCheckingS3(create_s3_client())
    submitter = make_submitter(s3_client=s3)
    [outcome] = submit(submitter, queued(upload(aws, "inbox/exif-heavy.jpg", body)))
    assert outcome.status == JobStatus.SUBMITTED
    ranges = ranges_read(s3.gets, contiguous=False)
    assert len(ranges) == 2
    # The second segment's body is skipped by its length: the next read starts at the third marker.
    assert ranges[1][0] == 2 + 2 * (65_000 + 4)
    assert submitter.objects.header_bytes_read == sum(end - start + 1 for start, end in ranges) < 3 * 65_000
    assert "VersionId" not in s3.gets[0]  # the first read asks for the current version
    assert all(kwargs["VersionId"] == job_version(outcome, submitter) for kwargs in s3.gets[1:])
    job = submitter.jobs.get(outcome.job_id)
    assert (job.input_width, job.input_height) == (1900, 1400)


def job_version(outcome: Any, submitter: Submitter) -> str:
    return submitter.jobs.get(outcome.job_id).source_version_id


def test_a_frame_header_beyond_the_bound_is_refused_as_too_much_metadata_not_as_corrupt(aws, make_submitter, runware):
    segments = METADATA_MAX_BYTES // 65_004 + 2  # just past 16 MiB of metadata before the frame header
    body = with_app_segments(jpeg(), segments)
    s3 = RangeCheckingS3(create_s3_client())
    submitter = make_submitter(s3_client=s3)
    [outcome] = submit(submitter, queued(upload(aws, "inbox/odd.jpg", body)))
    assert (outcome.status, outcome.code) == (JobStatus.REJECTED, "metadataTooLarge")
    assert "metadata is larger than 16 MiB" in outcome.message
    assert "corrupt" not in outcome.message and "truncated" not in outcome.message
    ranges = ranges_read(s3.gets, contiguous=False)
    assert ranges[-1][1] >= METADATA_MAX_BYTES - 65_004  # it walked the metadata up to the bound, no further
    assert submitter.objects.header_bytes_read <= METADATA_MAX_BYTES < len(body)
    assert len(s3.gets) <= 24  # a few growing reads, not one per segment
    assert runware.requests == []


# --- every submission answer of the Runware contract --------------------------------------------

SUBMISSION_FIXTURES = [
    fixture
    for fixture in of_kind("rest")
    if fixture.meaning in ("accepted", "result", "conflict", "task-failed", "account", "rate-limited")
]


def contract_answer(fixture) -> Callable[[list[dict]], httpx.Response]:
    """The fixture's body, with its tasks' UUIDs replaced by those of the request, in order."""

    def answer(tasks: list[dict]) -> httpx.Response:
        body = fixture.body_bytes()
        for planned, sent in zip(fixture.request or (), tasks, strict=False):
            body = body.replace(planned["taskUUID"].encode(), sent["taskUUID"].encode())
        return httpx.Response(fixture.http_status or 200, content=body, headers={"Content-Type": "application/json"})

    return answer


@pytest.mark.parametrize("fixture", SUBMISSION_FIXTURES, ids=lambda fixture: fixture.name)
def test_each_submission_answer_moves_the_jobs_as_its_meaning_says(aws, make_submitter, runware, fixture):
    submitter = make_submitter(max_attempts=2)
    count = max(1, len(fixture.request or ()))
    records = [upload(aws, f"inbox/contract/{n}.jpg", jpeg(800 + n, 600)) for n in range(count)]
    runware.script = [contract_answer(fixture)] * 2

    if fixture.meaning == "account":
        with pytest.raises(AccountRefused):
            submit_batch(submitter, queued(*records))
    elif fixture.meaning == "rate-limited":
        with pytest.raises(RunwareUnavailable):
            submit_batch(submitter, queued(*records))
    else:
        submit(submitter, queued(*records))

    sent = [task["taskUUID"] for task in json.loads(runware.requests[0].content)]
    statuses = [submitter.jobs.get(task_uuid).status for task_uuid in sent]
    if fixture.meaning in ("account", "rate-limited"):
        assert statuses == ["CLAIMED"] * count  # no job fails: the invocation is retried
    elif fixture.meaning == "task-failed":
        refused = {str(error["taskUUID"]) for error in fixture.body["errors"]}
        planned = [task["taskUUID"] for task in fixture.request or ()]
        assert statuses == ["FAILED" if uuid in refused else "SUBMITTED" for uuid in planned]
    else:
        # Accepted, or conflictTaskUUID: Runware holds the task and will run (and bill) it.
        assert statuses == ["SUBMITTED"] * count


def test_a_resubmission_answered_conflict_task_uuid_goes_on_as_submitted(aws, submitter, runware):
    record = upload(aws, "inbox/crash/a.jpg", jpeg())
    job_id = job_id_for(INBOX_BUCKET, "inbox/crash/a.jpg", record["s3"]["object"]["versionId"])
    # The first request reached Runware but its answer was lost (a client timeout): the job stays CLAIMED.
    runware.script = [httpx.ReadTimeout("lost answer")] * 4
    with pytest.raises(RunwareUnavailable):
        submit_batch(submitter, queued(record))
    assert submitter.jobs.get(job_id).status == "CLAIMED"

    runware.script = [contract_answer(by_name("rest/conflict-task-uuid"))]
    [outcome] = submit(submitter, queued(record))

    assert outcome.status == "SUBMITTED"
    assert submitter.jobs.get(job_id).status == "SUBMITTED"
