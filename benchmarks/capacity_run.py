"""One measurement for the capacity model, in a process of its own, against the tree on PYTHONPATH.

    python benchmarks/capacity_run.py    (a JSON spec on stdin; PYTHONPATH=<tree>:<tree>/layers/common)

The driver runs this file once per design: with PYTHONPATH at this tree, and at a copy of the
baseline commit. So it imports nothing from `benchmarks` and uses only what both trees have: the
local stack's public API (LocalStack, StackConfig, FaultConfig, its functions, emulator, gateway,
names and ingestion), botocore's event system and httpx.

Modes (spec["mode"]):
- "jobs": N uploads through the whole local stack, a share of Runware's webhooks dropped so that
  the recovery path finishes those jobs, until every job is terminal. Recorded: every AWS request
  the handlers and the stack's Lambda stand-ins make (by service and operation, with what billing
  needs: the items before and after each DynamoDB write, the items each read returned, S3 keys,
  SQS messages, EventBridge entries), every HTTP request to Runware, to the webhook route and to
  S3 through presigned URLs, each invocation's duration, and the bytes the functions log.
- "batches": the submit function invoked directly on SQS batches of 10 new uploads, each AWS call
  delayed by a round trip as in AWS; per batch its duration and its DynamoDB writes.

The result is one JSON object on a line starting with RESULT_PREFIX.
"""

from __future__ import annotations

import sys

# Run as a script: the folder of this file must not shadow the measured tree's modules, so it goes
# last on the path, where only the recorder beside this file is found.
if sys.path and sys.path[0].rstrip("/").endswith("benchmarks"):
    sys.path.append(sys.path.pop(0))

import io
import json
import math
import os
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote, urlsplit

from capacity_recorder import LineCounter, Recorder, Timed

RESULT_PREFIX = "BENCHMARK-RESULT "
TERMINAL = {"COMPLETED", "FAILED", "REJECTED", "TIMED_OUT"}
# The functions' SECRET_CACHE_SECONDS default (upscaler.settings), which the template does not change.
DEPLOYED_SECRET_CACHE_SECONDS = 300


def jpeg(seed: int) -> bytes:
    from PIL import Image

    image = Image.radial_gradient("L").resize((320, 240)).convert("RGB")
    image.putpixel((seed % 320, 0), (seed % 256, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def terminal_statuses(dynamodb: Any, table: str) -> Counter[str]:
    statuses: Counter[str] = Counter()
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            statuses[item.get("status", {}).get("S", "?")] += 1
    return statuses


def run_jobs(spec: dict[str, Any]) -> dict[str, Any]:
    from local.runware_emulator import FaultConfig
    from local.stack import LocalStack, StackConfig

    jobs = int(spec["jobs"])
    counter = LineCounter()
    real_stdout, sys.stdout = sys.stdout, counter  # type: ignore[assignment]
    config = StackConfig(
        faults=FaultConfig(drop_webhook_rate=float(spec["drop_webhook_rate"])),
        function_log_level=spec.get("log_level", "INFO"),
        parameter_overrides=dict(spec.get("parameter_overrides", {})),
        seed=int(spec.get("seed", 5)),
    )
    recorder = Recorder()
    recorder.install()  # before the stack loads the functions, whose clients are made at import
    # Secrets are cached as deployed (SECRET_CACHE_SECONDS' default, 300 s), not for the local stack's
    # few seconds (there so a new key is used at once): a run of minutes would otherwise bill a read
    # per container every few seconds, which no deployment makes.
    import local.stack as stack_module

    if hasattr(stack_module, "LOCAL_SECRET_CACHE_SECONDS"):
        stack_module.LOCAL_SECRET_CACHE_SECONDS = str(spec.get("secret_cache_seconds", DEPLOYED_SECRET_CACHE_SECONDS))
    stack = LocalStack(config).start()
    plain = recorder.plain_clients()
    durations: dict[str, list[dict[str, float]]] = defaultdict(list)
    try:
        for logical_id, function in stack.functions.items():
            function.handler = Timed(function.handler, logical_id, recorder, durations[logical_id])
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "false"  # metrics are log lines (EMF) in AWS
        recorder.reset()
        counter.reset()
        bucket, prefix = stack.names["inbox_bucket"], stack.names["inbox_prefix"]
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as uploads:  # a burst: the queue fills batches as in one
            list(
                uploads.map(
                    lambda index: plain["s3"].put_object(
                        Bucket=bucket, Key=f"{prefix}capacity/{index:05d}.jpg", Body=jpeg(index)
                    ),
                    range(jobs),
                )
            )
        deadline = started + float(spec.get("timeout_seconds", 600))
        statuses: Counter[str] = Counter()
        while time.perf_counter() < deadline:
            statuses = terminal_statuses(plain["dynamodb"], stack.names["jobs_table"])
            if sum(count for status, count in statuses.items() if status in TERMINAL) >= jobs:
                break
            time.sleep(1.0)
        assert stack.emulator is not None
        stack.emulator.wait_idle(60)  # webhook retries still under way
        time.sleep(1.0)
        wall = time.perf_counter() - started
        endpoints = {
            "aws": stack.aws_endpoint,
            "runware": stack.emulator.url,
            "webhook": stack.gateway.url if stack.gateway else "",
        }
        emulator_stats = stack.emulator.stats()
    finally:
        stack.stop()
        sys.stdout = real_stdout
    return {
        "jobs": jobs,
        "statuses": dict(statuses),
        "wall_seconds": wall,
        "calls": dict(recorder.calls),
        "calls_by_function": {name: dict(calls) for name, calls in recorder.calls_by_function.items()},
        # Every invocation by number (its function and trigger), with its requests and log output;
        # number 0 (OUTSIDE_HANDLERS) holds what the stack's stand-ins did outside any handler.
        "invocations": {str(number): found for number, found in recorder.invocations.items()},
        "calls_by_invocation": {str(number): dict(calls) for number, calls in recorder.calls_by_invocation.items()},
        "log_by_invocation": {str(number): counted for number, counted in counter.by_invocation.items()},
        "events": recorder.events,
        "errors": dict(recorder.errors),
        "writes": recorder.writes,
        "reads": recorder.reads,
        "s3": recorder.s3,
        "sqs": recorder.sqs,
        "events_entries": recorder.events_entries,
        "http": [_http_kind(request, endpoints) for request in recorder.http],
        "invocations_ms": dict(durations),
        "log_bytes": counter.bytes,
        "log_lines": counter.lines,
        "uploads": jobs,
        "emulator": {key: value for key, value in emulator_stats.items() if isinstance(value, int | float | str)},
        "parameters": dict(stack.resolver.parameter_overrides),
    }


def _http_kind(request: dict[str, Any], endpoints: dict[str, str]) -> dict[str, Any]:
    """What an HTTP request was: to Runware's API, to the webhook route, or to S3 by a presigned URL."""
    url = request["url"]
    parts = urlsplit(url)
    kind = "other"
    bucket = key = None
    if endpoints["runware"] and url.startswith(endpoints["runware"]):
        kind = "runware"
    elif endpoints["webhook"] and url.startswith(endpoints["webhook"]):
        kind = "webhook"
    elif url.startswith(endpoints["aws"]):
        kind = "s3"
        bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
    return {
        "kind": kind,
        "method": request["method"],
        "status": request["status"],
        "tasks": request["tasks"],
        "bucket": bucket,
        "key": key,
        "path": parts.path,
        "invocation": request["invocation"],
    }


def run_batches(spec: dict[str, Any]) -> dict[str, Any]:
    """Submit invocations on batches of 10, each AWS call delayed by its service's round trip."""
    import botocore.endpoint

    from local.event_source_mapping import sqs_event
    from local.runware_emulator import FaultConfig
    from local.stack import LocalStack, StackConfig

    batches, size = int(spec["batches"]), int(spec.get("batch_size", 10))
    round_trips: dict[str, float] = spec["round_trip_ms"]
    recorder = Recorder()
    recorder.install()
    stack = LocalStack(
        StackConfig(
            # Runware acknowledges each task and never calls back: nothing runs beside the invocation.
            faults=FaultConfig(task_failure_rate=1.0, drop_webhook_rate=1.0),
            reconcile_interval_seconds=0,
            function_log_level="ERROR",
            seed=int(spec.get("seed", 9)),
        )
    ).start()
    plain = recorder.plain_clients()
    samples = []
    units_batch: dict[str, Any] = {}
    try:
        assert stack.ingestion is not None
        stack.ingestion.stop()  # the batches are received here and handed to the function
        queue = stack.ingestion.settings
        send = botocore.endpoint.Endpoint._send

        def delayed(endpoint: Any, request: Any) -> Any:
            time.sleep(round_trips.get(endpoint._endpoint_prefix, 0.0) / 1000)
            return send(endpoint, request)

        bucket, prefix = stack.names["inbox_bucket"], stack.names["inbox_prefix"]
        submit = stack.functions["SubmitFunction"]
        botocore.endpoint.Endpoint._send = delayed
        # The first batch warms the container up; the last is not timed, and its items are read
        # around each write for the write units (reads that would lengthen a timed invocation).
        for batch in range(batches + 2):
            recorder.read_items = batch == batches + 1
            for index in range(size):
                plain["s3"].put_object(Bucket=bucket, Key=f"{prefix}batches/{batch}-{index}.jpg", Body=jpeg(index))
            messages: list[dict[str, Any]] = []
            while len(messages) < size:
                response = plain["sqs"].receive_message(
                    QueueUrl=queue.queue_url,
                    MaxNumberOfMessages=size - len(messages),
                    WaitTimeSeconds=2,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
                messages += [m for m in response.get("Messages", []) if "s3:TestEvent" not in m["Body"]]
            event = sqs_event(messages, queue_arn=queue.queue_arn, region=queue.region)
            recorder.reset()
            started = time.perf_counter()
            answer = submit.invoke(event)
            wall_ms = (time.perf_counter() - started) * 1000
            for start in range(0, len(messages), 10):
                plain["sqs"].delete_message_batch(
                    QueueUrl=queue.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages[start : start + 10])
                    ],
                )
            if batch == 0:
                continue
            if recorder.read_items:
                units_batch = {"calls": dict(recorder.calls), "writes": recorder.writes}
                continue
            samples.append(
                {
                    "wall_ms": wall_ms,
                    "billed_ms": math.ceil(wall_ms),
                    "failed_messages": len((answer or {}).get("batchItemFailures", [])),
                    "calls": dict(recorder.calls),
                }
            )
        botocore.endpoint.Endpoint._send = send
        statuses = terminal_statuses(plain["dynamodb"], stack.names["jobs_table"])
    finally:
        stack.stop()
    return {
        "batch_size": size,
        "round_trip_ms": round_trips,
        "samples": samples,
        "units_batch": units_batch,
        "statuses": dict(statuses),
    }


def main() -> int:
    spec = json.loads(sys.stdin.read())
    result = {"jobs": run_jobs, "batches": run_batches}[spec["mode"]](spec)
    sys.stdout.write("\n" + RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
