"""Measurements that need a process of their own: the benchmark driver starts one probe per sample.

    python -m benchmarks.probe cold <module file> [<path> ...]
        Import a handler module the way Lambda's runtime does (its folder and the layer on
        sys.path) and report the time it took. Nothing else is imported first.
    python -m benchmarks.probe init-steps [<path> ...]
        The same, step by step: boto3, its clients, Powertools, httpx, Tracer() as submit makes it, our library.
    python -m benchmarks.probe zero-copy|billed|warm   (a JSON spec on stdin)
        Load a handler, then invoke it on the events of the spec and report what it cost.

AWS and Runware are served by other processes (the driver's local stack), so what a probe
measures is the handler alone. The result is one JSON object on a line starting with RESULT_PREFIX.
"""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: the cold-start probe must import nothing it need not
if TYPE_CHECKING:
    from local.lambda_runtime import LocalFunction

RESULT_PREFIX = "BENCHMARK-RESULT "
ALLOWED_PACKAGES_VARIABLE = "BENCHMARK_ALLOWED_PACKAGES"


# ---- cold start ---------------------------------------------------------------------------------


class DeployedPackagesOnly:
    """An import hook that refuses packages a deployed function would not have.

    The development environment holds test tools that some libraries import when present (httpx
    loads its command-line extras if click is installed, the X-Ray SDK patches requests); in
    Lambda these imports fail at once. Refusing them here makes the import graph the deployed one.
    """

    def __init__(self, allowed: list[str]) -> None:
        self.allowed = frozenset(allowed)

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        top = name.partition(".")[0]
        if top in self.allowed or top in sys.stdlib_module_names or top in sys.builtin_module_names:
            return None
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def importing_as_deployed(search_path: list[str]) -> None:
    """Put the given folders first on sys.path and refuse what a deployed function lacks."""
    import os

    allowed = os.environ.get(ALLOWED_PACKAGES_VARIABLE)
    if allowed:
        sys.meta_path.insert(0, DeployedPackagesOnly(allowed.split(",")))
    sys.path[:0] = search_path


def cold_start(module_file: str, search_path: list[str]) -> dict[str, object]:
    import importlib
    import os

    folder, file_name = os.path.split(os.path.abspath(module_file))
    importing_as_deployed([folder, *search_path])
    modules_before = len(sys.modules)
    started, cpu_started = time.perf_counter(), time.process_time()
    importlib.import_module(file_name.removesuffix(".py"))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "init_ms": elapsed * 1000,
        "init_cpu_ms": cpu * 1000,
        "modules_loaded": len(sys.modules) - modules_before,
        "peak_rss_kb": peak_rss_kb(),
    }


def init_steps(search_path: list[str]) -> dict[str, object]:
    """Milliseconds of each thing the handler modules do at import, in their order; a step finds
    loaded whatever an earlier step imported."""
    importing_as_deployed(search_path)
    steps: dict[str, float] = {}
    last = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        steps[name], last = (now - last) * 1000, now

    import boto3

    lap("import boto3")
    boto3.client("s3"), boto3.client("dynamodb")
    lap("create the S3 and DynamoDB clients")
    from aws_lambda_powertools import Logger, Metrics, Tracer

    lap("import aws_lambda_powertools")
    Logger(), Metrics()
    lap("Logger() and Metrics()")
    import httpx

    lap("import httpx")
    Tracer(patch_modules=["botocore", "httpx"])
    lap("Tracer()")
    httpx.Client(timeout=httpx.Timeout(20.0, connect=5.0), limits=httpx.Limits(max_connections=10))
    lap("httpx.Client() as the Runware client makes it")
    import upscaler.job_metrics
    import upscaler.wiring  # noqa: F401

    lap("import the upscaler library")
    import aws_lambda_powertools.event_handler  # noqa: F401

    lap("import the event handler (webhook only)")
    return {"steps_ms": steps}


# ---- handler invocations ------------------------------------------------------------------------


def peak_rss_kb() -> int:
    """This process's peak resident set size, in KiB.

    Linux's VmHWM, when there is one: getrusage's ru_maxrss would be wrong here, since a process
    started by fork and exec keeps the peak of the process it was forked from (the driver, whose
    local stack holds every test object in memory).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class Meter:
    """Counts what the process moves, the same way for every handler: bytes through its sockets,
    bytes of S3 object bodies it reads, and the AWS API calls it makes."""

    def __init__(self) -> None:
        self.counts = {"net_sent": 0, "net_received": 0, "s3_body_bytes": 0}
        self.aws_calls: dict[str, int] = {}

    def snapshot(self) -> tuple[dict[str, int], dict[str, int]]:
        return dict(self.counts), dict(self.aws_calls)

    def since(self, snapshot: tuple[dict[str, int], dict[str, int]]) -> dict[str, object]:
        counts, calls = snapshot
        delta: dict[str, object] = {name: value - counts[name] for name, value in self.counts.items()}
        delta["aws_calls"] = {
            name: count - calls.get(name, 0) for name, count in self.aws_calls.items() if count > calls.get(name, 0)
        }
        return delta

    def install(self, *, count_bytes: bool = True) -> Meter:
        """Hook the counters in; without count_bytes only AWS calls are counted (nothing is added
        to each socket operation of a timed invocation)."""
        import botocore.client

        meter = self
        make_api_call = botocore.client.BaseClient._make_api_call

        def counted_call(client: botocore.client.BaseClient, operation: str, params: object) -> object:
            name = f"{client.meta.service_model.service_name}:{operation}"
            meter.aws_calls[name] = meter.aws_calls.get(name, 0) + 1
            return make_api_call(client, operation, params)

        botocore.client.BaseClient._make_api_call = counted_call
        if count_bytes:
            self._count_bytes()
        return self

    def _count_bytes(self) -> None:
        import socket

        import botocore.response

        meter = self
        send, sendall = socket.socket.send, socket.socket.sendall
        recv, recv_into = socket.socket.recv, socket.socket.recv_into

        def counted_send(sock: socket.socket, data: bytes, *args: object) -> int:
            count = send(sock, data, *args)
            meter.counts["net_sent"] += count
            return count

        def counted_sendall(sock: socket.socket, data: bytes, *args: object) -> None:
            sendall(sock, data, *args)
            meter.counts["net_sent"] += memoryview(data).nbytes

        def counted_recv(sock: socket.socket, *args: object) -> bytes:
            data = recv(sock, *args)
            meter.counts["net_received"] += len(data)
            return data

        def counted_recv_into(sock: socket.socket, buffer: object, *args: object) -> int:
            count = recv_into(sock, buffer, *args)
            meter.counts["net_received"] += count
            return count

        socket.socket.send = counted_send
        socket.socket.sendall = counted_sendall
        socket.socket.recv = counted_recv
        socket.socket.recv_into = counted_recv_into

        read = botocore.response.StreamingBody.read

        def counted_read(body: botocore.response.StreamingBody, amt: int | None = None) -> bytes:
            data = read(body, amt)
            meter.counts["s3_body_bytes"] += len(data)
            return data

        botocore.response.StreamingBody.read = counted_read


def load_handler(name: str) -> LocalFunction:
    """A LocalFunction for a template function (by logical id) or for the naive baseline."""
    from local.lambda_runtime import LocalFunction
    from local.template import FunctionSpec, function_specs, load_template

    if name == "naive":
        spec = FunctionSpec("NaiveFunction", "benchmarks/", "naive_handler.lambda_handler", 900, {}, {})
    else:
        spec = function_specs(load_template())[name]
    return LocalFunction(spec, spec.logical_id)


def outcome_of(result: object) -> dict[str, object]:
    """What a handler's answer says it did: the messages the submit function reports as not done
    (`batchItemFailures`), or the images the baseline upscaled. The driver checks it against the
    event, and for ours the job records too."""
    if isinstance(result, dict) and isinstance(result.get("batchItemFailures"), list):
        return {"failed_messages": [str(item.get("itemIdentifier")) for item in result["batchItemFailures"]]}
    if isinstance(result, dict) and isinstance(result.get("results"), list):
        return {"upscaled": len(result["results"])}
    return {"unexpected": repr(result)[:200]}


def zero_copy(spec: dict) -> dict[str, object]:
    """Peak memory and bytes moved by one invocation on one object, in a fresh process."""
    rss_start = peak_rss_kb()
    function = load_handler(spec["handler"])
    rss_after_init = peak_rss_kb()
    meter = Meter().install()
    before = meter.snapshot()
    started, cpu_started = time.perf_counter(), time.process_time()
    result = function.invoke(spec["event"])
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "rss_start_kb": rss_start,
        "rss_after_init_kb": rss_after_init,
        "peak_rss_kb": peak_rss_kb(),
        "wall_ms": wall * 1000,
        "cpu_ms": cpu * 1000,
        "outcome": outcome_of(result),
        **meter.since(before),
    }


class TimedFunction:
    """Hands invocations to a function and queues each one's duration and HTTP status."""

    def __init__(self, function: LocalFunction) -> None:
        import queue

        self.function = function
        self.finished: queue.Queue[tuple[float, object]] = queue.Queue()

    def invoke(self, event: dict) -> object:
        started = time.perf_counter()
        result: object = None
        try:
            result = self.function.invoke(event)
            return result
        finally:
            status = result.get("statusCode") if isinstance(result, dict) else None
            self.finished.put(((time.perf_counter() - started) * 1000, status))


def billed(spec: dict) -> dict[str, object]:
    """Handler durations per image: ours is submit + webhook, the baseline one synchronous call;
    and the AWS calls the handlers made for each image.

    The first event warms the container up and is reported apart from the others.
    """
    import os
    from urllib.parse import urlsplit

    events = [spec["warmup"], *spec["events"]]
    samples = []
    meter = Meter()
    if spec["handler"] == "naive":
        function = load_handler("naive")
        meter.install(count_bytes=False)
        for event in events:
            before = meter.snapshot()
            started = time.perf_counter()
            result = function.invoke(event)
            handler_ms = [(time.perf_counter() - started) * 1000]
            calls = meter.since(before)["aws_calls"]
            samples.append({"handler_ms": handler_ms, "outcome": outcome_of(result), "aws_calls": calls})
    else:
        from local.webhook_gateway import WebhookGateway

        # Runware's webhooks come to this process, where the webhook function is timed.
        gateway = WebhookGateway(host="127.0.0.1", port=0)
        gateway.start()
        path = urlsplit(os.environ["WEBHOOK_URL"]).path
        os.environ["WEBHOOK_URL"] = gateway.url + path
        submit = load_handler("SubmitFunction")
        webhook = TimedFunction(load_handler("WebhookFunction"))
        gateway.route("POST", path, webhook)
        meter.install(count_bytes=False)
        for event in events:
            before = meter.snapshot()
            started = time.perf_counter()
            result = submit.invoke(event)
            submit_ms = (time.perf_counter() - started) * 1000
            webhook_ms, status = webhook.finished.get(timeout=spec.get("webhook_timeout_seconds", 120))
            samples.append(
                {
                    "handler_ms": [submit_ms, webhook_ms],
                    "outcome": outcome_of(result),
                    "webhook_status": status,
                    "aws_calls": meter.since(before)["aws_calls"],
                }
            )
        gateway.stop()
    return {"warmup": samples[0], "samples": samples[1:], "peak_rss_kb": peak_rss_kb()}


def add_round_trips(milliseconds: dict[str, float]) -> None:
    """Each AWS call waits its service's round trip (by endpoint prefix: "s3", "dynamodb") before it is
    sent: the network time that loopback does not have."""
    import botocore.endpoint

    send = botocore.endpoint.Endpoint._send

    def delayed(endpoint: botocore.endpoint.Endpoint, request: object) -> object:
        time.sleep(milliseconds.get(endpoint._endpoint_prefix, 0.0) / 1000)
        return send(endpoint, request)

    botocore.endpoint.Endpoint._send = delayed


def warm(spec: dict) -> dict[str, object]:
    """CPU time of warm submit invocations, per event, with AWS calls and bytes moved."""
    import os
    import uuid

    if spec.get("round_trip_ms"):
        add_round_trips(spec["round_trip_ms"])
    function = load_handler("SubmitFunction")
    traced = spec.get("tracing", False)

    def invoke(event: dict) -> object:
        if traced:  # what Lambda sets for each traced invocation
            trace = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=1"
            os.environ["_X_AMZN_TRACE_ID"] = trace
        return function.invoke(event)

    invoke(spec["warmup"])
    meter = Meter().install()
    samples = []
    for event in spec["events"]:
        before = meter.snapshot()
        started, cpu_started = time.perf_counter(), time.process_time()
        result = invoke(event)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        samples.append(
            {
                "records": len(event["Records"]),
                "wall_ms": wall * 1000,
                "cpu_ms": cpu * 1000,
                "outcome": outcome_of(result),
                **meter.since(before),
            }
        )
    return {"samples": samples}


def main(argv: list[str]) -> int:
    kind = argv[1]
    if kind == "cold":
        result = cold_start(argv[2], argv[3:])
    elif kind == "init-steps":
        result = init_steps(argv[2:])
    else:
        import json

        spec = json.loads(sys.stdin.read())
        result = {"zero-copy": zero_copy, "billed": billed, "warm": warm}[kind](spec)
    import json

    sys.stdout.write("\n" + RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
