"""RecoverFunction's handler (functions/recover/app.py), loaded as Lambda loads it, on an SQS event of
recovery checks: the jobs settled, a job still processing checked again, and only the messages
whose job could not be dealt with named in batchItemFailures."""

from __future__ import annotations

import importlib.util
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

import boto3
import httpx
import pytest

from tests.conftest import JOBS_TABLE, REGION
from tests.unit.test_reconcile_handler import ROOT, LambdaContext
from tests.unit.test_reconciliation import FakeRunware, add_job, put_output
from upscaler.jobs import JobStore
from upscaler.recovery_checks import Check
from upscaler.runware import RunwareClient
from upscaler.settings import get_settings, read_secret

HANDLER = ROOT / "functions" / "recover" / "app.py"


@pytest.fixture
def queue_url(aws):
    return boto3.client("sqs", region_name=REGION).create_queue(QueueName="recovery-checks")["QueueUrl"]


@pytest.fixture
def runware():
    return FakeRunware()


@pytest.fixture
def handler(aws, monkeypatch, queue_url, runware):
    monkeypatch.setenv("RECOVERY_QUEUE_URL", queue_url)
    get_settings.cache_clear()
    spec = importlib.util.spec_from_file_location(f"recover_app_{uuid.uuid4().hex}", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Only the transport is replaced: the API key still comes from Secrets Manager, as deployed.
    module.recoverer.runware = RunwareClient(
        aws.settings.runware_api_url,
        partial(read_secret, aws.settings.runware_api_key_secret),
        http=httpx.Client(transport=httpx.MockTransport(runware)),
        sleep=lambda seconds: None,
    )
    yield module
    module.metrics.clear_metrics()
    get_settings.cache_clear()


def sqs_event(*bodies: str) -> dict:
    return {
        "Records": [
            {"messageId": f"m-{n}", "body": body, "eventSource": "aws:sqs", "receiptHandle": f"r-{n}"}
            for n, body in enumerate(bodies)
        ]
    }


def test_a_batch_of_checks_settles_its_jobs_and_checks_the_rest_again(aws, handler, runware, queue_url):
    store = JobStore(aws.dynamodb, JOBS_TABLE)
    done, waiting = add_job(store, timedelta(minutes=11)), add_job(store, timedelta(minutes=11))
    runware.succeed(done)
    put_output(aws, store, done)
    due = datetime.now(UTC) - timedelta(seconds=1)

    answer = handler.lambda_handler(
        sqs_event(Check(done, due).to_body(), Check(waiting, due).to_body(), "not a check"), LambdaContext()
    )

    assert answer == {"batchItemFailures": []}
    assert (store.get(done).status, store.get(waiting).status) == ("COMPLETED", "SUBMITTED")
    assert len(runware.requests) == 1, "one getResponse request for the batch"
    attributes = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1", "the job still processing, checked again later"


def test_a_job_whose_table_cannot_be_read_is_delivered_again(aws, handler, runware, monkeypatch):
    store = JobStore(aws.dynamodb, JOBS_TABLE)
    job_id = add_job(store, timedelta(minutes=11))

    def unavailable(job_ids):  # type: ignore[no-untyped-def]
        raise RuntimeError("DynamoDB unavailable")

    monkeypatch.setattr(handler.recoverer.jobs, "get_many", unavailable)
    due = datetime.now(UTC) - timedelta(seconds=1)

    answer = handler.lambda_handler(sqs_event(Check(job_id, due).to_body()), LambdaContext())

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-0"}]}
    assert runware.requests == []
