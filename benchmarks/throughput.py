"""Throughput of the whole local stack: N uploads into the inbox until N jobs are finished.

Run by the benchmark driver, one run per process (moto's state is global to a process):

    python -m benchmarks.throughput    (a JSON spec on stdin: objects, uploaders, seed)

Everything shares this process and its cores: moto, the Runware emulator, the gateway and the
three real handlers. To tell the pipeline's cost from the stand-in's image work, the CPU time of
each part is counted in the threads that do it (time.thread_time): the emulator's image work
(decode, resize, encode), the emulator's transfers (GET of the input, PUT of the output), and
each handler's invocations. What is left of the process's CPU time is the other stand-ins: moto's
server side, the HTTP servers, the invocation queue.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.inputs import photo_jpeg
from benchmarks.probe import RESULT_PREFIX
from local.runware_emulator import processing
from local.stack import LocalStack, StackConfig
from upscaler.job_record import TERMINAL_STATUSES


class CpuAccounting:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.last_finish: dict[str, float] = {}

    def timed(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return call(*args, **kwargs)
            finally:
                with self._lock:
                    self.cpu[name] += time.thread_time() - started
                    self.calls[name] += 1
                    self.last_finish[name] = time.perf_counter()

        return wrapper


def run(objects: int, uploaders: int, seed: int) -> dict[str, Any]:
    stack = LocalStack(StackConfig(seed=seed, function_log_level="ERROR")).start()
    try:
        accounting = CpuAccounting()
        emulator = stack.emulator
        assert emulator is not None
        # An instance attribute shadows the method, so the task runner's own calls go through the meter.
        runner = emulator.runner
        runner._process = accounting.timed("emulator task", runner._process)
        # Image work is decoding, resizing and encoding: the names the runner calls them by.
        for name in ("decode_image", "upscale_image", "encode_image"):
            setattr(processing, name, accounting.timed("image work", getattr(processing, name)))
        for logical_id, function in stack.functions.items():
            function.handler = accounting.timed(logical_id, function.handler)

        body = photo_jpeg(640, 427)
        s3 = stack.client("s3")
        bucket, prefix = stack.names["inbox_bucket"], stack.names["inbox_prefix"]
        cpu_started, started = time.process_time(), time.perf_counter()
        keys = [f"{prefix}run/{i:05d}.jpg" for i in range(objects)]
        with ThreadPoolExecutor(uploaders) as pool:
            list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=body), keys))
        uploaded = time.perf_counter() - started
        deadline = started + 60 + objects * 2.0
        while True:
            jobs = stack.jobs()
            if sum(job["status"] in TERMINAL_STATUSES for job in jobs) >= objects or time.perf_counter() > deadline:
                break
            time.sleep(0.5)
        cpu_total = time.process_time() - cpu_started
        wall = accounting.last_finish.get("WebhookFunction", time.perf_counter()) - started
    finally:
        stack.stop()

    statuses: dict[str, int] = defaultdict(int)
    for job in jobs:
        statuses[job["status"]] += 1
    latencies = sorted(float(job["totalSeconds"]) for job in jobs if job.get("totalSeconds") is not None)
    cpu = dict(accounting.cpu)
    image_work = cpu.pop("image work", 0.0)
    transfers = cpu.pop("emulator task", 0.0) - image_work
    handlers = {name: seconds for name, seconds in cpu.items() if name in stack.functions}
    return {
        "objects": objects,
        "input_bytes": len(body),
        "statuses": dict(statuses),
        "upload_seconds": uploaded,
        "wall_seconds": wall,
        "objects_per_second": objects / wall,
        "job_seconds_median": statistics.median(latencies) if latencies else None,
        "job_seconds_p95": latencies[int(0.95 * (len(latencies) - 1))] if latencies else None,
        "cpu_seconds": {
            "total": cpu_total,
            "image work": image_work,
            "emulator transfers": transfers,
            "handlers": sum(handlers.values()),
            "other stand-ins": cpu_total - image_work - transfers - sum(handlers.values()),
        },
        "handler_cpu_seconds": handlers,
        "handler_invocations": {name: accounting.calls[name] for name in handlers},
    }


def main() -> int:
    spec = json.loads(sys.stdin.read())
    result = run(spec["objects"], spec.get("uploaders", 4), spec.get("seed", 11))
    sys.stdout.write("\n" + RESULT_PREFIX + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
