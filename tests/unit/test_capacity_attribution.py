"""The capacity model's attribution: what an image caused, and what a schedule costs per run and per month."""

from __future__ import annotations

import contextvars
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from benchmarks.capacity_attribution import rate_seconds, split_run
from benchmarks.capacity_model import fixed_cost, model, traces_per_image
from benchmarks.capacity_recorder import CURRENT_INVOCATION, LineCounter, Recorder, Timed, trigger_of

RESUME_INPUT = '{"run": "resume-intake"}'

TEMPLATE: dict[str, Any] = {
    "Parameters": {"ReconcileSchedule": {"Type": "String", "Default": "rate(5 minutes)"}},
    "Globals": {"Function": {"MemorySize": 256}},
    "Resources": {
        "ReconcileFunction": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "Events": {
                    "ReconcileSchedule": {"Type": "Schedule", "Properties": {"Schedule": {"Ref": "ReconcileSchedule"}}},
                    "IntakeResumeSchedule": {
                        "Type": "Schedule",
                        "Properties": {"Schedule": "rate(1 minute)", "Input": RESUME_INPUT},
                    },
                }
            },
        },
        "SubmitFunction": {"Type": "AWS::Serverless::Function", "Properties": {}},
    },
}

SCHEDULED_EVENT = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}, "time": "t"}


def test_triggers_are_told_apart_by_the_event_shape():
    assert trigger_of({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}) == "sqs"
    assert trigger_of({"version": "2.0", "routeKey": "POST /webhook", "requestContext": {}}) == "http"
    assert trigger_of(SCHEDULED_EVENT) == "schedule"
    assert trigger_of(json.loads(RESUME_INPUT)) == "input:" + json.dumps(json.loads(RESUME_INPUT), sort_keys=True)


def test_rate_expressions_in_seconds():
    assert rate_seconds("rate(5 minutes)") == 300
    assert rate_seconds("rate(1 minute)") == 60
    assert rate_seconds("rate(2 hours)") == 7200
    assert rate_seconds("cron(0 12 * * ? *)") is None


def test_requests_and_log_lines_belong_to_the_invocation_that_made_them_even_in_its_worker_threads():
    recorder, counter = Recorder(), LineCounter()
    samples: list[dict[str, float]] = []

    def handler(event: Any, context: Any) -> list[int]:
        counter.write("in the handler\n")
        with ThreadPoolExecutor(2) as pool:  # as upscaler.parallel.run_each: each step in a copy of the context
            futures = [pool.submit(contextvars.copy_context().run, CURRENT_INVOCATION.get) for _ in range(3)]
            return [future.result() for future in futures]

    timed = Timed(handler, "SubmitFunction", recorder, samples)
    seen = timed({"Records": [{"eventSource": "aws:sqs"}]}, None)
    counter.write("a stand-in's line\n")

    (number,) = recorder.invocations
    assert seen == [number, number, number]
    assert recorder.invocations[number] == {"function": "SubmitFunction", "trigger": "sqs"}
    assert samples[0]["invocation"] == number
    assert counter.by_invocation[number] == [len("in the handler\n"), 1]
    assert counter.by_invocation[0] == [len("a stand-in's line\n"), 1]
    assert CURRENT_INVOCATION.get() == 0


def recorded_run() -> dict[str, Any]:
    """Two images: a submit batch, two webhooks; three sweeps, one of which finished a job; two resume runs."""
    invocations = {
        "1": ("SubmitFunction", "sqs"),
        "2": ("WebhookFunction", "http"),
        "3": ("WebhookFunction", "http"),
        "4": ("ReconcileFunction", "schedule"),
        "5": ("ReconcileFunction", "schedule"),
        "6": ("ReconcileFunction", "schedule"),
        "7": ("ReconcileFunction", "input:" + json.dumps(json.loads(RESUME_INPUT), sort_keys=True)),
        "8": ("ReconcileFunction", "input:" + json.dumps(json.loads(RESUME_INPUT), sort_keys=True)),
    }
    query = {"operation": "Query", "table": "JobsTable", "index": "openJobs", "consistent": False, "items": []}
    return {
        "jobs": 2,
        "uploads": 2,
        "wall_seconds": 10.0,
        "statuses": {"COMPLETED": 2},
        "errors": {},
        "invocations": {n: {"function": f, "trigger": t} for n, (f, t) in invocations.items()},
        "calls_by_invocation": {
            "0": {"sqs:ReceiveMessage": 3, "lambda:GetEventSourceMapping": 40},
            "1": {"dynamodb:PutItem": 2},
            "4": {"dynamodb:Query": 32, "s3:ListObjectsV2": 1},
            "5": {"dynamodb:Query": 32, "s3:ListObjectsV2": 1},
            "6": {"dynamodb:Query": 32, "s3:ListObjectsV2": 1, "dynamodb:UpdateItem": 1},
            "7": {"dynamodb:GetItem": 1},
            "8": {"dynamodb:GetItem": 1},
        },
        "calls": {},
        "writes": [
            {"operation": "PutItem", "transactional": False, "error": None, "items": [], "invocation": 1},
            {"operation": "UpdateItem", "transactional": False, "error": None, "items": [], "invocation": 6},
        ],
        "reads": [{**query, "invocation": n} for n in (4, 5, 6) for _ in range(32)],
        "s3": [{"operation": "ListObjectsV2", "bucket": "out", "key": None, "invocation": n} for n in (4, 5, 6)],
        "sqs": [{"operation": "ReceiveMessage", "received": 2, "entries": None, "invocation": 0}],
        "http": [
            {
                "kind": "webhook",
                "method": "POST",
                "status": 200,
                "tasks": [],
                "bucket": None,
                "key": None,
                "path": "/webhook",
                "invocation": 0,
            }
        ]
        * 2,
        "events": [],
        "events_entries": 0,
        "invocations_ms": {
            "SubmitFunction": [{"wall_ms": 900.0, "cpu_ms": 50.0, "invocation": 1}],
            "WebhookFunction": [{"wall_ms": 90.0, "cpu_ms": 20.0, "invocation": n} for n in (2, 3)],
            "ReconcileFunction": [{"wall_ms": 50.0, "cpu_ms": 5.0, "invocation": n} for n in (4, 5, 6, 7, 8)],
        },
        "log_by_invocation": {
            "1": [300, 2],
            "2": [200, 1],
            "3": [200, 1],
            "4": [100, 1],
            "5": [100, 1],
            "6": [400, 3],
            "7": [0, 0],
            "8": [0, 0],
        },
    }


def test_a_schedule_that_only_looked_is_a_fixed_cost_and_one_that_did_a_jobs_work_is_the_images():
    per_image, scheduled = split_run(recorded_run(), TEMPLATE)
    by_event = {schedule["event"]: schedule for schedule in scheduled}

    sweep, resume = by_event["ReconcileSchedule"], by_event["IntakeResumeSchedule"]
    assert (sweep["quiet_runs"], sweep["busy_runs"]) == (2, 1)
    assert (resume["quiet_runs"], resume["busy_runs"]) == (2, 0)
    assert sweep["interval_seconds"] == 300 and resume["interval_seconds"] == 60
    # The quiet sweeps' own requests, and nothing of the images'.
    assert sweep["run"]["calls"] == {"dynamodb:Query": 64, "s3:ListObjectsV2": 2}
    assert sweep["run"]["log_bytes"] == 200 and sweep["run"]["uploads"] == 0

    # Per image: the submit batch, the webhooks, the stand-ins' billed requests and the sweep that
    # finished a job (whole), but not the pollers' mapping-state reads (Lambda makes none in AWS).
    assert per_image["calls"] == {
        "sqs:ReceiveMessage": 3,
        "dynamodb:PutItem": 2,
        "dynamodb:Query": 32,
        "s3:ListObjectsV2": 1,
        "dynamodb:UpdateItem": 1,
    }
    assert sorted(per_image["invocations_ms"]) == ["ReconcileFunction", "SubmitFunction", "WebhookFunction"]
    assert len(per_image["invocations_ms"]["ReconcileFunction"]) == 1
    assert per_image["log_bytes"] == 300 + 200 + 200 + 400
    assert len(per_image["reads"]) == 32 and len(per_image["http"]) == 2


def test_a_month_of_quiet_runs_and_the_volume_at_which_it_adds_a_cent_per_thousand_images():
    _, scheduled = split_run(recorded_run(), TEMPLATE)
    sweep = next(schedule for schedule in scheduled if schedule["event"] == "ReconcileSchedule")
    fixed = fixed_cost(sweep, TEMPLATE, submit_batch_ms=500.0, batch_size=10)

    assert fixed["runs_per_month"] == pytest.approx(730 * 3600 / 300)
    assert fixed["per_month"] == pytest.approx(fixed["per_run"]["usd"] * fixed["runs_per_month"])
    # Each run: 32 eventually consistent queries that returned nothing (0.5 read unit each), one LIST.
    lines = {line: usd for line, usd, _ in fixed["per_run"]["lines"]}
    assert lines["DynamoDB reads"] == pytest.approx(16 * 0.125 / 1e6)
    assert lines["S3 PUT/COPY/LIST requests"] == pytest.approx(0.005 / 1000)
    assert lines["X-Ray traces (default sampling)"] == pytest.approx(5.0 / 1e6)  # every run traced
    assert fixed["images_per_month_for_a_cent"] == pytest.approx(fixed["per_month"] * 100_000)


def test_traces_per_image_under_the_default_rule():
    functions = {"SubmitFunction": {"invocations": 10}, "WebhookFunction": {"invocations": 100}}
    # 1,000 images/s: submit 100/s and webhook 1,000/s, each the first a second plus 5 % of the rest.
    expected = (1 + 0.05 * 99 + 1 + 0.05 * 999) / 1000
    assert traces_per_image(functions, jobs=100, rate=1000) == pytest.approx(expected)
    # One image a second: submit runs 0.1 times a second, every run the first of its second.
    assert traces_per_image(functions, jobs=100, rate=1) == pytest.approx(0.1 + 1.0)


def test_log_bytes_per_image_by_source_add_up_and_leave_the_quiet_runs_out():
    per_image, _ = split_run(recorded_run(), TEMPLATE)
    data = model(per_image, TEMPLATE, submit_batch_ms=500.0, batch_size=10)
    sources = data["log_bytes_by_source_per_job"]
    assert sum(sources.values()) == pytest.approx(data["log_bytes_per_job"])
    # The quiet sweeps' 200 bytes are the schedule's; the sweep that finished a job printed 400 in 3 lines.
    assert sources["ReconcileFunction: its lines and metrics"] == pytest.approx((400 + 3 * 26) / 2)
    assert sources["HTTP API: access log lines"] > 0


def test_sqs_requests_at_volume_count_full_batches_and_each_notification():
    from benchmarks.capacity_model import full_batch_sqs_requests

    run = {
        "uploads": 20,
        "sqs": [
            {"operation": "ReceiveMessage", "received": 4, "entries": None},
            {"operation": "ReceiveMessage", "received": 6, "entries": None},
            {"operation": "ReceiveMessage", "received": 0, "entries": None},  # empty: a cost per hour
            {"operation": "DeleteMessageBatch", "received": None, "entries": 10},
            {"operation": "SendMessageBatch", "received": None, "entries": 5},
            {"operation": "SendMessage", "received": None, "entries": None},
        ],
    }
    # 20 notifications, 10 messages received (1 full receive), 10 deleted (1), 5 sent (0.5), 1 single send.
    assert full_batch_sqs_requests(run) == 20 + 1 + 1 + 0.5 + 1
