"""The reconcile Lambda handler, run by the sample scheduled event against moto and a mocked Runware."""

from __future__ import annotations

import importlib.util
import io
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import boto3
import httpx
import pytest
from PIL import Image

from tests.conftest import INBOX_BUCKET, JOBS_TABLE, OUTPUT_BUCKET, RUNWARE_KEY
from tests.job_records import move_job, seed_job
from upscaler.clock import iso
from upscaler.job_record import JobStatus
from upscaler.jobs import JobStore
from upscaler.runware import RunwareClient
from upscaler.settings import read_secret

ROOT = Path(__file__).resolve().parents[2]
HANDLER = ROOT / "functions" / "reconcile" / "app.py"
SCHEDULE_EVENT = json.loads((ROOT / "events" / "reconcile-schedule.json").read_text())

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


@dataclass
class LambdaContext:
    remaining_ms: int = 120_000
    function_name: str = "s3-upscale-reconcile"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:s3-upscale-reconcile"
    aws_request_id: str = "5b2f8e1a-0c3d-4e5f-9a8b-7c6d5e4f3a2b"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class Runware:
    """getResponse answers by taskUUID; anything not listed is still processing."""

    def __init__(self) -> None:
        self.successes: dict[str, float] = {}
        self.failures: dict[str, str] = {}
        self.polled: list[str] = []
        self.authorization: set[str] = set()
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.authorization.add(request.headers["Authorization"])
        if self.down:
            return httpx.Response(503, json={"errors": [{"code": "serviceUnavailable", "message": "busy"}]})
        data, errors = [], []
        for task in json.loads(request.content):
            job_id = task["taskUUID"]
            self.polled.append(job_id)
            if job_id in self.failures:
                errors.append({"code": self.failures[job_id], "message": "failed", "taskUUID": job_id})
            elif job_id in self.successes:
                data.append(
                    {
                        "taskUUID": job_id,
                        "status": "success",
                        "imageUUID": str(uuid.uuid4()),
                        "cost": self.successes[job_id],
                    }
                )
            else:
                data.append({"taskUUID": job_id, "status": "processing"})
        return httpx.Response(200, json={"data": data, "errors": errors} if errors else {"data": data})


@pytest.fixture
def dynamodb_calls(aws, monkeypatch):
    """Every DynamoDB operation made by clients created from here on (the handler builds its own)."""
    calls: list[str] = []
    session = boto3.session.Session()
    session.events.register("before-call.dynamodb", lambda model, **kwargs: calls.append(model.name))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    return calls


@pytest.fixture
def runware():
    return Runware()


@pytest.fixture
def handler(aws, dynamodb_calls, runware):
    spec = importlib.util.spec_from_file_location(f"reconcile_app_{uuid.uuid4().hex}", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Only the transport is replaced: the API key still comes from Secrets Manager, as deployed.
    module.reconciler.runware = RunwareClient(
        aws.settings.runware_api_url,
        partial(read_secret, aws.settings.runware_api_key_secret),
        http=httpx.Client(transport=httpx.MockTransport(runware)),
        sleep=lambda seconds: None,
    )
    # The pass looks at jobs open longer than its maximum age plus CHECK_GRACE_SECONDS (30 minutes):
    # with 0 here, at jobs open 30 minutes; the settle rules keep the deployed maximum age (4 hours).
    module.reconciler.max_age_seconds = 0
    yield module
    module.metrics.clear_metrics()


@pytest.fixture
def store(aws):
    return JobStore(aws.dynamodb, JOBS_TABLE)


def add_job(store: JobStore, age: timedelta) -> str:
    job_id = str(uuid.uuid4())
    created = datetime.now(UTC) - age
    seed_job(
        store,
        {
            "jobId": job_id,
            "sourceBucket": INBOX_BUCKET,
            "sourceKey": f"inbox/{job_id[:8]}.jpg",
            "eventTime": iso(created - timedelta(seconds=2)),
            "inputFormat": "JPEG",
            "inputWidth": 800,
            "inputHeight": 600,
            "outputFormat": "JPG",
            "outputBucket": OUTPUT_BUCKET,
            "outputKey": f"upscaled/{job_id[:8]}.jpg.{job_id[:8]}.jpg",
        },
        JobStatus.CLAIMED,
        now=created,
    )
    move_job(store, job_id, JobStatus.SUBMITTED, {"submittedAt": iso(created)}, now=created)
    return job_id


def put_jpeg_output(aws, store: JobStore, job_id: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (2304, 1728), (250, 200, 30)).save(buffer, format="JPEG", quality=70)
    job = store.get(job_id)
    aws.s3.put_object(Bucket=job.output_bucket, Key=job.output_key, Body=buffer.getvalue())


def emitted_metrics(stdout: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in stdout.splitlines():
        document = json.loads(line) if line.startswith("{") else {}
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                values[metric["Name"]] = values.get(metric["Name"], 0) + (
                    sum(value) if isinstance(value, list) else value
                )
    return values


def test_scheduled_run_completes_fails_and_times_out_without_scanning(
    aws, handler, store, runware, dynamodb_calls, capsys
):
    lost = add_job(store, timedelta(minutes=40))
    runware.successes[lost] = 0.0052
    put_jpeg_output(aws, store, lost)
    failed = add_job(store, timedelta(minutes=40))
    runware.failures[failed] = "invalidImageURL"
    ancient = add_job(store, timedelta(hours=5))
    processing = add_job(store, timedelta(minutes=40))
    fresh = add_job(store, timedelta(minutes=1))
    dynamodb_calls.clear()

    counts = handler.lambda_handler(SCHEDULE_EVENT, LambdaContext())

    statuses = {job_id: store.get(job_id).status for job_id in (lost, failed, ancient, processing, fresh)}
    assert statuses == {
        lost: "COMPLETED",
        failed: "FAILED",
        ancient: "TIMED_OUT",
        processing: "SUBMITTED",
        fresh: "SUBMITTED",
    }
    assert counts == {
        "examined": 4,
        "stillProcessing": 1,
        "outputNotReady": 0,
        "unreadable": 0,
        "indexedFromLegacy": 0,
        "stagedExamined": 0,
        "stagedLeftoversRemoved": 0,
        "nowCompleted": 1,
        "nowFailed": 1,
        "nowTimedOut": 1,
    }
    assert fresh not in runware.polled
    assert runware.authorization == {f"Bearer {RUNWARE_KEY}"}
    assert "Scan" not in dynamodb_calls
    assert "Query" in dynamodb_calls
    completed = store.get(lost)
    assert (completed.output_width, completed.output_height) == (2304, 1728)
    assert completed.result_via == "reconcile"
    metrics = emitted_metrics(capsys.readouterr().out)
    assert (metrics["JobsCompleted"], metrics["JobsFailed"], metrics["JobsTimedOut"]) == (1, 1, 1)
    assert metrics["StaleJobsExamined"] == counts["examined"] == 4
    assert metrics["CostUSD"] == pytest.approx(0.0052)
    assert metrics["EndToEndLatency"] >= 30 * 60


def test_scheduled_run_with_nothing_stale_polls_nothing_and_publishes_the_oldest_open_job_only(
    handler, store, runware, capsys
):
    add_job(store, timedelta(minutes=1))
    capsys.readouterr()

    counts = handler.lambda_handler(SCHEDULE_EVENT, LambdaContext())

    assert counts == {
        "examined": 0,
        "stillProcessing": 0,
        "outputNotReady": 0,
        "unreadable": 0,
        "indexedFromLegacy": 0,
        "stagedExamined": 0,
        "stagedLeftoversRemoved": 0,
    }
    assert runware.authorization == set()
    # Only the age of the oldest open job, published on every run (its alarm treats silence as a fault).
    metrics = emitted_metrics(capsys.readouterr().out)
    assert set(metrics) == {"OldestOpenJobAgeSeconds"} and 60 <= metrics["OldestOpenJobAgeSeconds"] < 120


def test_runware_down_leaves_every_job_as_it_was(handler, store, runware):
    job_ids = [add_job(store, timedelta(minutes=40)), add_job(store, timedelta(hours=5))]
    before = [store.get(job_id) for job_id in job_ids]
    runware.down = True

    counts = handler.lambda_handler(SCHEDULE_EVENT, LambdaContext())

    assert [store.get(job_id) for job_id in job_ids] == before
    assert counts == {
        "examined": 2,
        "stillProcessing": 0,
        "outputNotReady": 0,
        "unreadable": 0,
        "indexedFromLegacy": 0,
        "stagedExamined": 0,
        "stagedLeftoversRemoved": 0,
    }
    assert runware.authorization == {f"Bearer {RUNWARE_KEY}"}  # it was asked, and kept refusing


def test_run_with_no_time_left_polls_nothing(handler, store, runware):
    job_id = add_job(store, timedelta(hours=5))

    handler.lambda_handler(SCHEDULE_EVENT, LambdaContext(remaining_ms=3_000))

    assert runware.polled == []
    assert store.get(job_id).status == "SUBMITTED"


# --- the one-minute schedule: resuming intake after a pause -------------------------------------

RESUME_EVENT = {"run": "resume-intake"}  # the IntakeResumeSchedule's Input (template.yaml)


def test_the_resume_schedule_reports_a_pause_and_enables_the_mapping_once_the_wait_is_over(
    aws, handler, runware, capsys
):
    from tests.conftest import SUBMIT_FUNCTION
    from tests.unit.queue_events import mapping_state, register_ingest_mapping
    from upscaler.intake_pause import BackOff, PauseReason, PauseStore

    mapping = register_ingest_mapping(SUBMIT_FUNCTION)
    boto3.client("lambda").update_event_source_mapping(UUID=mapping, Enabled=False)  # as submit left it
    pauses = PauseStore(aws.dynamodb, JOBS_TABLE, BackOff(60, 1800))
    now = datetime.now(UTC)
    pauses.open(PauseReason.ACCOUNT_REFUSED, "HTTP 402 insufficientCredits", None, now)
    capsys.readouterr()

    waiting = handler.lambda_handler(RESUME_EVENT, LambdaContext())
    assert waiting["intakePaused"] is True and waiting["pauseReason"] == "account refused"
    assert waiting["mappingEnabled"] is False and mapping_state(mapping) == "Disabled"
    assert emitted_metrics(capsys.readouterr().out) == {"IntakePaused": 1.0}, "the alarm's metric, every minute"
    assert runware.authorization == set(), "the resume schedule asks Runware nothing"

    pauses.open(PauseReason.ACCOUNT_REFUSED, "still 402", pauses.read(), now - timedelta(hours=1))  # wait over
    due = handler.lambda_handler(RESUME_EVENT, LambdaContext())
    assert due["mappingEnabled"] is True and mapping_state(mapping) == "Enabled"


def test_a_pause_for_the_spend_limit_publishes_the_alarms_metric_and_resumes_once_the_limit_is_raised(
    aws, handler, runware, capsys
):
    from tests.conftest import SUBMIT_FUNCTION
    from tests.unit.queue_events import mapping_state, register_ingest_mapping
    from upscaler.intake_pause import BackOff, PauseReason, PauseStore
    from upscaler.spend_limit import DailyLimit

    mapping = register_ingest_mapping(SUBMIT_FUNCTION)
    boto3.client("lambda").update_event_source_mapping(UUID=mapping, Enabled=False)  # as submit left it
    pauses = PauseStore(aws.dynamodb, JOBS_TABLE, BackOff(60, 1800))
    # The handler's environment sets no limit: one of 20 images was in force when intake paused, so
    # the limit read now (none) is higher.
    pauses.open_pause(
        PauseReason.SPEND_LIMIT_REACHED,
        "20 images a day reached",
        None,
        datetime.now(UTC),
        resume_state=DailyLimit(images=20).as_text(),
    )
    capsys.readouterr()
    report = handler.lambda_handler(RESUME_EVENT, LambdaContext())
    assert report["pauseReason"] == "daily spend limit reached"
    assert emitted_metrics(capsys.readouterr().out) == {"IntakePaused": 1.0, "SpendLimitReached": 1.0}
    assert report["mappingEnabled"] is True and mapping_state(mapping) == "Enabled", "the limit was lifted"


def test_without_a_pause_the_resume_schedule_publishes_nothing(aws, handler, runware, capsys):
    capsys.readouterr()
    with pytest.warns(UserWarning, match="No application metrics to publish"):
        report = handler.lambda_handler(RESUME_EVENT, LambdaContext())
    assert report["intakePaused"] is False
    assert '"_aws"' not in capsys.readouterr().out
