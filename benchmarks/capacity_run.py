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

# Run as a script: the folder of this file must not shadow the measured tree's modules.
if sys.path and sys.path[0].rstrip("/").endswith("benchmarks"):
    sys.path.pop(0)

import io
import json
import math
import os
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote, urlsplit

RESULT_PREFIX = "BENCHMARK-RESULT "
DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
TERMINAL = {"COMPLETED", "FAILED", "REJECTED", "TIMED_OUT"}


class LineCounter(io.TextIOBase):
    """Stands in for stdout: counts the bytes and lines the functions print (logs, EMF metrics)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.lines = 0
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self.bytes += len(text.encode("utf-8"))
            self.lines += text.count("\n")
        return len(text)


class Recorder:
    """Hooks on every botocore client created after install(), and on httpx: what billing needs."""

    def __init__(self) -> None:
        self._reader: Any = None  # the plain DynamoDB client that reads items before and after writes
        self._unrecorded = False
        self.read_items = True  # off: writes are counted, not read around (nothing added to a timed call)
        self._key_names: dict[str, list[str]] = {}
        # One write at a time per item, so the item read before and after a write is that write's
        # alone; writes of different items go on at once, as they would in DynamoDB.
        self._item_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.current = threading.local()  # .function: the handler running in this thread, if any
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.calls: Counter[str] = Counter()
            self.calls_by_function: dict[str, Counter[str]] = defaultdict(Counter)
            self.errors: Counter[str] = Counter()
            self.writes: list[dict[str, Any]] = []
            self.reads: list[dict[str, Any]] = []
            self.s3: list[dict[str, Any]] = []
            self.sqs: list[dict[str, Any]] = []
            self.events_entries = 0
            self.http: list[dict[str, Any]] = []

    # ---- botocore ---------------------------------------------------------------------------------

    def install(self) -> None:
        import botocore.client

        recorder = self
        create_client = botocore.client.ClientCreator.create_client

        def recorded_client(creator: Any, *args: Any, **kwargs: Any) -> Any:
            client = create_client(creator, *args, **kwargs)
            if recorder._unrecorded:
                return client
            client.meta.events.register("before-parameter-build", recorder._params)
            client.meta.events.register("before-call", recorder._before)
            client.meta.events.register("after-call", recorder._after)
            client.meta.events.register("after-call-error", recorder._failed)
            return client

        botocore.client.ClientCreator.create_client = recorded_client
        self._install_httpx()

    def plain_clients(self) -> dict[str, Any]:
        """Clients whose requests are not recorded: the driver's own uploads and observations are
        not the pipeline's requests. The DynamoDB one reads items around each recorded write."""
        import boto3

        session = boto3.session.Session()
        self._unrecorded = True
        try:
            clients = {name: session.client(name) for name in ("s3", "dynamodb", "sqs")}
        finally:
            self._unrecorded = False
        self._reader = clients["dynamodb"]
        return clients

    def _params(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["capacity_params"] = json.loads(json.dumps(params, default=_bytes_as_text))

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        if (
            self.read_items
            and self._reader is not None
            and model.service_model.service_name == "dynamodb"
            and model.name in DYNAMODB_WRITES
        ):
            targets = self._targets(model, context)
            locks = self._locks_of(targets)
            for lock in locks:
                lock.acquire()
            context["capacity_locked"] = locks
            context["capacity_before"] = [self._current(table, key) for table, key, _ in targets]

    def _locks_of(self, targets: list[tuple[str, dict[str, Any], str]]) -> list[threading.Lock]:
        """The items' locks, in one order for every caller (no two writes wait on each other)."""
        names = sorted({f"{table}/{json.dumps(key, sort_keys=True)}" for table, key, _ in targets})
        with self._lock:
            return [self._item_locks.setdefault(name, threading.Lock()) for name in names]

    def _failed(self, context: dict[str, Any], **_: Any) -> None:
        for lock in context.pop("capacity_locked", []):
            lock.release()

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        service, operation = model.service_model.service_name, model.name
        params = context.get("capacity_params", {})
        error = parsed.get("Error", {}).get("Code") if isinstance(parsed.get("Error"), dict) else None
        try:
            with self._lock:
                self.calls[f"{service}:{operation}"] += 1
                function = getattr(self.current, "function", None) or "(not in a handler's thread)"
                self.calls_by_function[function][f"{service}:{operation}"] += 1
                if error:
                    self.errors[f"{service}:{operation}:{error}"] += 1
            if service == "dynamodb":
                self._dynamodb(operation, params, parsed, model, context, error)
            elif service == "s3":
                with self._lock:
                    self.s3.append({"operation": operation, "bucket": params.get("Bucket"), "key": params.get("Key")})
            elif service == "sqs":
                received = len(parsed.get("Messages", [])) if operation == "ReceiveMessage" else None
                entries = len(params.get("Entries", [])) if "Entries" in params else None
                with self._lock:
                    self.sqs.append({"operation": operation, "received": received, "entries": entries})
            elif service == "events" and operation == "PutEvents":
                with self._lock:
                    self.events_entries += len(params.get("Entries", []))
        finally:
            for lock in context.pop("capacity_locked", []):
                lock.release()

    def _dynamodb(
        self,
        operation: str,
        params: dict[str, Any],
        parsed: dict[str, Any],
        model: Any,
        context: dict[str, Any],
        error: str | None,
    ) -> None:
        if operation in DYNAMODB_WRITES:
            if "capacity_before" not in context:
                return
            targets = self._targets(model, context)
            reasons = parsed.get("CancellationReasons") or []
            items = []
            for position, ((table, key, action), before) in enumerate(
                zip(targets, context["capacity_before"], strict=True)
            ):
                failed = bool(error)
                if reasons and position < len(reasons):
                    failed = reasons[position].get("Code") not in (None, "None") or bool(error)
                items.append(
                    {
                        "table": table,
                        "action": action,
                        "before": before,
                        "after": self._current(table, key),
                        "failed": failed,
                    }
                )
            with self._lock:
                self.writes.append(
                    {
                        "operation": operation,
                        "transactional": operation == "TransactWriteItems",
                        "error": error,
                        "items": items,
                    }
                )
            return
        found: list[dict[str, Any]] = []
        if operation == "GetItem" and parsed.get("Item"):
            found = [parsed["Item"]]
        elif operation in ("Query", "Scan"):
            found = list(parsed.get("Items", []))
        elif operation == "BatchGetItem":
            found = [item for items in parsed.get("Responses", {}).values() for item in items]
        with self._lock:
            self.reads.append(
                {
                    "operation": operation,
                    "table": params.get("TableName"),
                    "index": params.get("IndexName"),
                    "consistent": bool(params.get("ConsistentRead")),
                    "items": found,
                }
            )

    def _targets(self, model: Any, context: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
        """(table, key, action) of every item a write names, in order."""
        params = context.get("capacity_params", {})
        operation = model.name
        if operation == "TransactWriteItems":
            found = []
            for entry in params.get("TransactItems", []):
                ((action, request),) = entry.items()
                found.append((request["TableName"], self._key(request["TableName"], request), action))
            return found
        if operation == "BatchWriteItem":
            return [
                (table, self._key(table, request.get("PutRequest") or request["DeleteRequest"]), next(iter(request)))
                for table, requests in params.get("RequestItems", {}).items()
                for request in requests
            ]
        table = params["TableName"]
        return [(table, self._key(table, params), operation)]

    def _key(self, table: str, request: dict[str, Any]) -> dict[str, Any]:
        if "Key" in request:
            return dict(request["Key"])
        if table not in self._key_names:
            schema = self._reader.describe_table(TableName=table)["Table"]["KeySchema"]
            self._key_names[table] = [key["AttributeName"] for key in schema]
        return {name: request["Item"][name] for name in self._key_names[table]}

    def _current(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._reader.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return json.loads(json.dumps(item, default=_bytes_as_text)) if item else None

    # ---- httpx ------------------------------------------------------------------------------------

    def _install_httpx(self) -> None:
        import httpx

        recorder = self
        send = httpx.Client.send

        def recorded_send(client: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            body = request.content if request.method == "POST" else b""
            status: int | None = None  # none: no answer (a timeout): the request was still made, and billed
            try:
                response = send(client, request, **kwargs)
                status = response.status_code
                return response
            finally:
                with recorder._lock:
                    recorder.http.append(
                        {
                            "method": request.method,
                            "url": str(request.url),
                            "status": status,
                            "tasks": _task_types(body),
                        }
                    )

        httpx.Client.send = recorded_send


def _bytes_as_text(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return value.decode("latin-1")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _task_types(body: bytes) -> list[str]:
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        return []
    tasks = payload if isinstance(payload, list) else [payload] if isinstance(payload, dict) else []
    return [str(task.get("taskType")) for task in tasks if isinstance(task, dict)]


class Timed:
    """A handler whose invocations are timed: wall clock (as Lambda bills it) and the CPU time of
    the invoking thread; the recorder attributes the calls made in that thread to the function."""

    def __init__(self, handler: Any, name: str, recorder: Recorder, samples: list[dict[str, float]]) -> None:
        self.handler = handler
        self.name = name
        self.recorder = recorder
        self.samples = samples

    def __call__(self, event: Any, context: Any) -> Any:
        self.recorder.current.function = self.name
        started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            return self.handler(event, context)
        finally:
            wall, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
            self.recorder.current.function = None
            self.samples.append({"wall_ms": wall * 1000, "cpu_ms": cpu * 1000})


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
    stack = LocalStack(config).start()
    plain = recorder.plain_clients()
    durations: dict[str, list[dict[str, float]]] = defaultdict(list)
    try:
        for logical_id, function in stack.functions.items():
            function.handler = Timed(function.handler, logical_id, recorder, durations[logical_id])
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "false"  # metrics are log lines (EMF) in AWS
        recorder.reset()
        counter.bytes = counter.lines = 0
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
