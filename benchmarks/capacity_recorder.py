"""What the capacity run records, installed in its process (benchmarks/capacity_run.py).

Loaded from beside capacity_run.py by file name, after the measured tree's paths: it imports
nothing from the measured tree or from `benchmarks`, only the standard library, botocore and httpx.
"""

from __future__ import annotations

import contextvars
import io
import json
import threading
import time
from collections import Counter, defaultdict
from typing import Any

DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
# Requests and log lines made outside any handler's invocation (the stack's stand-ins for Lambda's
# queue pollers, for instance) are recorded under this invocation number.
OUTSIDE_HANDLERS = 0
# The invocation whose code is running: a context variable, so that the worker threads a handler
# starts with the context copied (upscaler.parallel.run_each does) are counted as its own.
CURRENT_INVOCATION: contextvars.ContextVar[int] = contextvars.ContextVar("capacity_invocation", default=0)


class LineCounter(io.TextIOBase):
    """Stands in for stdout: counts the bytes and lines the functions print (logs, EMF metrics)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.lines = 0
        self.by_invocation: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # number -> [bytes, lines]
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.bytes = self.lines = 0
            self.by_invocation.clear()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        size, lines = len(text.encode("utf-8")), text.count("\n")
        with self._lock:
            self.bytes += size
            self.lines += lines
            counted = self.by_invocation[CURRENT_INVOCATION.get()]
            counted[0] += size
            counted[1] += lines
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
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.calls: Counter[str] = Counter()
            self.calls_by_function: dict[str, Counter[str]] = defaultdict(Counter)
            self.calls_by_invocation: dict[int, Counter[str]] = defaultdict(Counter)
            # Number -> the function and what invoked it (upscaler-independent: see trigger_of).
            self.invocations: dict[int, dict[str, str]] = {}
            self.events: list[dict[str, Any]] = []
            self.errors: Counter[str] = Counter()
            self.writes: list[dict[str, Any]] = []
            self.reads: list[dict[str, Any]] = []
            self.s3: list[dict[str, Any]] = []
            self.sqs: list[dict[str, Any]] = []
            self.events_entries = 0
            self.http: list[dict[str, Any]] = []

    def begin(self, function: str, trigger: str) -> int:
        """A new invocation's number, recorded with its function and trigger."""
        with self._lock:
            number = len(self.invocations) + 1
            self.invocations[number] = {"function": function, "trigger": trigger}
        return number

    def function_of(self, invocation: int) -> str:
        found = self.invocations.get(invocation)
        return found["function"] if found else "(not in a handler's thread)"

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
        invocation = CURRENT_INVOCATION.get()
        try:
            with self._lock:
                self.calls[f"{service}:{operation}"] += 1
                self.calls_by_function[self.function_of(invocation)][f"{service}:{operation}"] += 1
                self.calls_by_invocation[invocation][f"{service}:{operation}"] += 1
                if error:
                    self.errors[f"{service}:{operation}:{error}"] += 1
            if service == "dynamodb":
                self._dynamodb(operation, params, parsed, model, context, error, invocation)
            elif service == "s3":
                with self._lock:
                    self.s3.append(
                        {
                            "operation": operation,
                            "bucket": params.get("Bucket"),
                            "key": params.get("Key"),
                            "invocation": invocation,
                        }
                    )
            elif service == "sqs":
                received = len(parsed.get("Messages", [])) if operation == "ReceiveMessage" else None
                entries = len(params.get("Entries", [])) if "Entries" in params else None
                with self._lock:
                    self.sqs.append(
                        {"operation": operation, "received": received, "entries": entries, "invocation": invocation}
                    )
            elif service == "events" and operation == "PutEvents":
                with self._lock:
                    self.events_entries += len(params.get("Entries", []))
                    self.events.append({"entries": len(params.get("Entries", [])), "invocation": invocation})
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
        invocation: int,
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
                        "invocation": invocation,
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
                    "invocation": invocation,
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
                            "invocation": CURRENT_INVOCATION.get(),
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


def trigger_of(event: Any) -> str:
    """What invoked a handler, from its event's shape: "sqs" (an event source mapping's batch), "http"
    (the webhook route), "schedule" (an EventBridge schedule without Input: its Scheduled Event) or
    "input:" and the event itself (a schedule's constant Input is the whole event); the model
    matches the last two against the template's Schedule events."""
    if not isinstance(event, dict):
        return "other"
    records = event.get("Records")
    if isinstance(records, list):
        sources = {str(record.get("eventSource", "")) for record in records if isinstance(record, dict)}
        return "sqs" if sources <= {"aws:sqs"} else "records"
    if "requestContext" in event or "routeKey" in event:
        return "http"
    if event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event":
        return "schedule"
    return "input:" + json.dumps(event, sort_keys=True)


class Timed:
    """A handler whose invocations are timed: wall clock (as Lambda bills it) and the CPU time of
    the invoking thread; the recorder attributes every request and log line made while it runs (in
    its thread, or in worker threads started with its context) to this invocation."""

    def __init__(self, handler: Any, name: str, recorder: Recorder, samples: list[dict[str, float]]) -> None:
        self.handler = handler
        self.name = name
        self.recorder = recorder
        self.samples = samples

    def __call__(self, event: Any, context: Any) -> Any:
        invocation = self.recorder.begin(self.name, trigger_of(event))
        token = CURRENT_INVOCATION.set(invocation)
        started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            return self.handler(event, context)
        finally:
            wall, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
            CURRENT_INVOCATION.reset(token)
            self.samples.append({"wall_ms": wall * 1000, "cpu_ms": cpu * 1000, "invocation": invocation})
