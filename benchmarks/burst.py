"""A burst of uploads at once against a rate-limited Runware: the ingestion queue beside direct invocation.

Run by the benchmark driver, one run per process (moto's state is global to a process):

    python -m benchmarks.burst    (a JSON spec on stdin: design, objects, rate, seed)

Designs, both through the real submit handler and the local stack's event source mapping:
- "queue": the template's defaults (SubmitBatchSize 10, SubmitBatchingWindowSeconds,
  SubmitMaximumConcurrency), one Runware request per batch; each container learns its spacing from
  the 429s it gets;
- "queue, rate set": the same with RunwareRequestsPerSecond set to the emulator's rate;
- "direct": what S3 invoking the function per object amounts to: batches of one, no batching
  window, and DIRECT_CONCURRENCY pollers standing in for "as many functions as the account allows".
The emulator answers 429 with Retry-After above `rate` requests per second (a token bucket).
Counted: Runware upscale requests (429s included), each job's end, the DLQ, the submit function's
AWS calls (botocore events on its own clients) and its billed milliseconds (each invocation's
duration rounded up to the millisecond, as Lambda bills).
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from benchmarks.inputs import photo_jpeg
from benchmarks.probe import RESULT_PREFIX
from local.runware_emulator import FaultConfig
from local.stack import LocalStack, StackConfig
from upscaler.job_record import TERMINAL_STATUSES

DIRECT_CONCURRENCY = 50
POLL_SECONDS = 5.0
UPLOADERS = 16


DESIGNS = ("queue", "queue, rate set", "direct")


def design_parameters(
    design: str, template_defaults: dict[str, Any], concurrency: int | None, rate: float
) -> dict[str, str]:
    """The direct design's settings, or the template's defaults (MaximumConcurrency sized to the rate
    limit when `concurrency` is given, as an operator would set SubmitMaximumConcurrency); "queue, rate
    set" also tells the functions the account's rate (RunwareRequestsPerSecond), as an operator who
    knows it would."""
    if design == "direct":
        return {
            "SubmitBatchSize": "1",
            "SubmitBatchingWindowSeconds": "0",
            "SubmitMaximumConcurrency": str(DIRECT_CONCURRENCY),
        }
    parameters = {
        name: str(template_defaults[name])
        for name in ("SubmitBatchSize", "SubmitBatchingWindowSeconds", "SubmitMaximumConcurrency")
    }
    if concurrency:
        parameters["SubmitMaximumConcurrency"] = str(concurrency)
    if design == "queue, rate set":
        parameters["RunwareRequestsPerSecond"] = f"{rate:g}"
    return parameters


class SubmitMeter:
    """The submit function's invocations (billed ms) and AWS calls, counted in its own process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.billed_ms = 0
        self.invocations = 0
        self.aws_calls: Counter[str] = Counter()

    def wrap(self, handler: Any) -> Any:
        def timed(event: Any, context: Any) -> Any:
            started = time.perf_counter()
            try:
                return handler(event, context)
            finally:
                with self.lock:
                    self.billed_ms += math.ceil((time.perf_counter() - started) * 1000)
                    self.invocations += 1

        return timed

    def count(self, client: Any) -> None:
        def counted(event_name: str, **_: Any) -> None:
            with self.lock:
                self.aws_calls[event_name.rsplit(".", 1)[-1]] += 1

        client.meta.events.register("before-call", counted)


def run(
    design: str, objects: int, rate: float, seed: int, max_seconds: float, concurrency: int | None = None
) -> dict[str, Any]:
    from local.template import load_template

    defaults = {name: spec.get("Default") for name, spec in load_template()["Parameters"].items()}
    parameters = design_parameters(design, defaults, concurrency, rate)
    faults = FaultConfig(rate_limit_per_second=rate)
    stack = LocalStack(
        StackConfig(
            faults=faults,
            seed=seed,
            function_log_level="ERROR",
            emulator_workers=4,
            reconcile_interval_seconds=5.0,
            parameter_overrides=parameters,
        )
    ).start()
    meter = SubmitMeter()
    try:
        submit = stack.functions["SubmitFunction"]
        submit.handler = meter.wrap(submit.handler)
        submitter = submit.module.submitter
        meter.count(submitter.objects._s3)
        meter.count(submitter.jobs._db)
        emulator = stack.emulator
        assert emulator is not None

        body = photo_jpeg(160, 107)
        s3 = stack.client("s3")
        bucket, prefix = stack.names["inbox_bucket"], stack.names["inbox_prefix"]
        keys = [f"{prefix}burst/{i:05d}.jpg" for i in range(objects)]
        started = time.perf_counter()
        started_at = time.time()
        metadata = {"target-megapixels": "1"}  # small outputs: the emulator's image work is not under test
        with ThreadPoolExecutor(UPLOADERS) as pool:
            list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata), keys))
        uploaded = time.perf_counter() - started
        last_terminal = None
        while True:
            # Seldom: a scan of thousands of jobs takes the stack's own CPU. The time each job ended is
            # read from its record (updatedAt, the write that made it terminal), not from this poll.
            time.sleep(POLL_SECONDS)
            jobs = stack.jobs()
            terminal = sum(job["status"] in TERMINAL_STATUSES for job in jobs)
            dead = stack.dead_letter_count()
            now = time.perf_counter() - started
            if terminal + dead >= objects:
                ended = [_epoch(job["updatedAt"]) for job in jobs if job["status"] in TERMINAL_STATUSES]
                last_terminal = now if dead else max(ended) - started_at
                break
            if now > max_seconds:
                break
        settled = last_terminal is not None
        statuses = Counter(job["status"] for job in jobs)
        ended = [
            job.get("completedAt") for job in jobs if job["status"] in TERMINAL_STATUSES and job.get("completedAt")
        ]
        upscale_requests = [
            request
            for request in emulator.requests
            if isinstance(request, list)
            and any(isinstance(t, dict) and t.get("taskType") == "upscale" for t in request)
        ]
        counters = emulator.stats()
        mapping = stack.ingestion
        batch_sizes = list(mapping.batch_sizes) if mapping else []
    finally:
        stack.stop()

    batch_size = int(parameters["SubmitBatchSize"])
    rate_limit_seconds = math.ceil(objects / batch_size) / rate
    return {
        "design": design,
        "parameters": parameters,
        "objects": objects,
        "rate_per_second": rate,
        "settled": settled,
        "upload_seconds": uploaded,
        "last_terminal_seconds": last_terminal,
        "rate_limit_alone_seconds": rate_limit_seconds,
        "ratio_to_rate_limit": (last_terminal / rate_limit_seconds) if last_terminal else None,
        "statuses": dict(statuses),
        "in_dlq": dead,
        "not_finished": objects - terminal - dead,
        "runware_upscale_requests": len(upscale_requests),
        "runware_requests_per_image": len(upscale_requests) / objects,
        "emulator_counters": {k: v for k, v in counters.items() if isinstance(v, int | float)},
        "submit_invocations": meter.invocations,
        "submit_billed_ms": meter.billed_ms,
        "submit_billed_ms_per_image": meter.billed_ms / objects,
        "submit_aws_calls": dict(meter.aws_calls),
        "submit_aws_calls_per_object": sum(meter.aws_calls.values()) / objects,
        "mean_batch": (sum(batch_sizes) / len(batch_sizes)) if batch_sizes else None,
        "peak_concurrency": mapping.peak_concurrency if mapping else None,
        "completed_at_count": len(ended),
    }


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def main() -> int:
    spec = json.loads(sys.stdin.read())
    result = run(
        spec["design"],
        spec["objects"],
        spec["rate"],
        spec.get("seed", 17),
        spec.get("max_seconds", 900.0),
        spec.get("concurrency"),
    )
    sys.stdout.write("\n" + RESULT_PREFIX + json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def measure(objects: int, rate: float, concurrency: int | None = None, seed: int = 17) -> dict[str, Any]:
    """Both designs on the same burst, each in a fresh process; the direct design gets the wall
    budget the queue design must meet (1.25x what the rate limit alone allows it), no more."""
    from benchmarks.services import run_child
    from benchmarks.suites import progress

    results: dict[str, Any] = {"objects": objects, "rate_per_second": rate}
    for design in ("queue", "queue, rate set"):
        run = run_child(
            "benchmarks.burst",
            {
                "design": design,
                "objects": objects,
                "rate": rate,
                "seed": seed,
                "max_seconds": 3600,
                "concurrency": concurrency,
            },
            timeout=3900,
        )
        run.pop("stderr")
        results[design] = run
        progress(f"burst: {design} design done in {run['last_terminal_seconds']} s")
    queue = results["queue"]
    budget = 1.25 * queue["rate_limit_alone_seconds"]
    direct = run_child(
        "benchmarks.burst",
        {"design": "direct", "objects": objects, "rate": rate, "seed": seed, "max_seconds": budget},
        timeout=budget + 600,
    )
    direct.pop("stderr")
    results["direct"] = direct
    results["direct_budget_seconds"] = budget
    progress(f"burst: direct design after {budget:.0f} s: {direct['statuses']}, {direct['in_dlq']} in the DLQ")
    return results
