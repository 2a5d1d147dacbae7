"""The five measurements, each against its baseline in the same run. Each returns plain data
(samples and their summaries) for the report; the probes do the measuring in fresh processes."""

from __future__ import annotations

import itertools
import math
import os
import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from benchmarks.inputs import noise_png, photo_jpeg, s3_event
from benchmarks.probe import ALLOWED_PACKAGES_VARIABLE
from benchmarks.services import ROOT, Services, run_child, run_probe

LAYER = ROOT / "layers" / "common"
FUNCTIONS = ("submit", "webhook", "reconcile")
MIB = 1024 * 1024
XRAY_DAEMON = "127.0.0.1:2000"  # loopback: trace segments sent over UDP go nowhere


def summary(values: Iterable[float]) -> dict[str, float]:
    data = list(values)
    return {"median": statistics.median(data), "min": min(data), "max": max(data), "n": len(data)}


def progress(message: str) -> None:
    print(f"  {message}", flush=True)


def check_submitted(
    services: Services, what: str, outcomes: list[dict[str, Any]], records: list[dict[str, Any]], status: str, log: str
) -> None:
    """That the submit function did the real work: no message reported as failed, and the job of
    every record in the jobs table with the expected status. Read after the probe, so unmetered."""
    reported = [outcome for outcome in outcomes if outcome != {"failed_messages": []}]
    statuses = services.job_statuses(records)
    if reported or any(found != status for found in statuses):
        raise RuntimeError(
            f"{what}: answers {reported or 'all without batchItemFailures'}; job statuses {statuses}, "
            f"expected {status}\n{log[-2000:]}"
        )


def check_upscaled(what: str, outcomes: list[dict[str, Any]], records_per_outcome: int, log: str) -> None:
    """That the baseline upscaled every record of each event it was given."""
    wrong = [outcome for outcome in outcomes if outcome != {"upscaled": records_per_outcome}]
    if wrong:
        raise RuntimeError(f"{what}: unexpected answers {wrong}\n{log[-2000:]}")


# ---- 1. zero-copy: memory and bytes against image size --------------------------------------------


def zero_copy(services: Services, sizes: list[tuple[str, int, int]]) -> dict[str, Any]:
    """One submit invocation (ours, on a one-message SQS batch) or one naive invocation (on the S3
    event), in a fresh process per sample. Ours counts once its job is COMPLETED."""
    services.set_faults()  # no latency: the invocations are timed too, and nothing waits on purpose
    env = services.environment(MAX_INPUT_BYTES=str(64 * MIB), DEFAULT_TARGET_MEGAPIXELS="8")
    results: dict[str, Any] = {}
    for label, size, runs in sizes:
        body, side = noise_png(size)
        source = services.put(f"bench/zero-copy/{label.replace(' ', '')}.png", body)
        samples: dict[str, list[dict[str, Any]]] = {"ours": [], "naive": []}
        for run in range(runs):
            for name, handler in (("ours", "SubmitFunction"), ("naive", "naive")):
                record = services.copy(source, f"bench/zero-copy/{label.replace(' ', '')}-{name}-{run}.png")
                event = services.queue_event([record]) if name == "ours" else s3_event([record])
                sample = run_probe("zero-copy", {"handler": handler, "event": event}, env=env)
                services.settle()
                log = sample.pop("stderr")
                if name == "ours":
                    check_submitted(services, f"zero-copy on {label}", [sample["outcome"]], [record], "COMPLETED", log)
                    services.delete_messages(event)
                else:
                    check_upscaled(f"baseline on {label}", [sample["outcome"]], 1, log)
                samples[name].append(sample)
                services.remove(record)
            progress(f"zero-copy {label}: run {run + 1}/{runs}")
        results[label] = {
            "input_bytes": len(body),
            "input": f"{side}x{side} RGBA PNG, 16 bits per channel",
            **{name: _zero_copy_summary(runs_) for name, runs_ in samples.items()},
        }
    return results


def _zero_copy_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    def field(name: str, scale: float = 1.0) -> dict[str, float]:
        return summary(sample[name] * scale for sample in samples)

    return {
        "peak_rss_mib": field("peak_rss_kb", 1 / 1024),
        "rss_after_init_mib": field("rss_after_init_kb", 1 / 1024),
        "invocation_rss_growth_mib": summary((s["peak_rss_kb"] - s["rss_after_init_kb"]) / 1024 for s in samples),
        "s3_body_bytes": field("s3_body_bytes"),
        "net_sent_bytes": field("net_sent"),
        "net_received_bytes": field("net_received"),
        "wall_ms": field("wall_ms"),
        "cpu_ms": field("cpu_ms"),
        "aws_calls": samples[0]["aws_calls"],
        "samples": samples,
    }


# ---- 2. billed time per image ----------------------------------------------------------------------


def billed_time(services: Services, images: int, latency_seconds: float) -> dict[str, Any]:
    """Handler milliseconds per image with Runware taking `latency_seconds` per task."""
    services.set_faults(latency_seconds=latency_seconds)
    body = photo_jpeg(2000, 1500)
    source = services.put("bench/billed/photo.jpg", body)
    env = services.environment()
    results: dict[str, Any] = {"input_bytes": len(body), "input": "2000x1500 JPEG", "latency_seconds": latency_seconds}
    for name, handler in (("ours", "SubmitFunction"), ("naive", "naive")):
        records = [services.copy(source, f"bench/billed/{name}-{i}.jpg") for i in range(images + 1)]
        # Ours: one SQS batch of one message per image, as the queue delivers them one at a time.
        events = [services.queue_event([r]) if name == "ours" else s3_event([r]) for r in records]
        spec = {"handler": handler, "warmup": events[0], "events": events[1:]}
        result = run_probe("billed", spec, env=env)
        services.settle()
        invocations = [result["warmup"], *result["samples"]]
        outcomes = [s["outcome"] for s in invocations]
        if name == "ours":
            check_submitted(services, "billed time", outcomes, records, "COMPLETED", result["stderr"])
            statuses = [s["webhook_status"] for s in invocations]
            if statuses != [200] * len(invocations):
                raise RuntimeError(f"billed time: webhook answers {statuses}\n{result['stderr'][-2000:]}")
            for event in events:
                services.delete_messages(event)
        else:
            check_upscaled("billed time, baseline", outcomes, 1, result["stderr"])
        # Lambda bills each invocation's duration rounded up to the millisecond.
        per_image = [sum(math.ceil(ms) for ms in s["handler_ms"]) for s in result["samples"]]
        calls: dict[str, int] = defaultdict(int)
        for sample in result["samples"]:
            for call, count in sample["aws_calls"].items():
                calls[call] += count
        results[name] = {
            "billed_ms": summary(per_image),
            "invocations_ms": [s["handler_ms"] for s in result["samples"]],
            "warmup_ms": result["warmup"]["handler_ms"],
            "aws_calls_per_image": {call: count / len(result["samples"]) for call, count in sorted(calls.items())},
        }
        progress(f"billed time: {name} done")
    services.set_faults()
    results["ratio"] = results["naive"]["billed_ms"]["median"] / results["ours"]["billed_ms"]["median"]
    return results


# ---- 3. cold start -----------------------------------------------------------------------------------


def deployed_packages() -> list[str]:
    """Top-level modules a deployed function can import: the layer's requirements (Powertools with
    the X-Ray SDK its Tracer needs), boto3 from the Lambda runtime, their dependencies, our code."""
    from importlib.metadata import PackageNotFoundError, distribution, packages_distributions

    from packaging.requirements import Requirement

    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    lines = (LAYER / "requirements.in").read_text().splitlines()
    wanted = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    wanted += [Requirement("aws-lambda-powertools[tracer]"), Requirement("boto3")]
    extras: dict[str, set[str]] = {}
    while wanted:
        requirement = wanted.pop()
        name = normal(requirement.name)
        if name in extras and set(requirement.extras) <= extras[name]:
            continue
        extras.setdefault(name, set()).update(requirement.extras)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        environments = [{"extra": extra} for extra in extras[name] or {""}]
        for text in requires:
            dependency = Requirement(text)
            if dependency.marker is None or any(dependency.marker.evaluate(env) for env in environments):
                wanted.append(dependency)
    modules = {top for top, dists in packages_distributions().items() if any(normal(d) in extras for d in dists)}
    return sorted(modules | {"app", "bare_handler", "upscaler"})


def lambda_environment(function: str, *, tracing: bool) -> dict[str, str]:
    """What Lambda sets for a function (with placeholder names and credentials), plus its settings."""
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "SYSTEMROOT") if name in os.environ}
    env.update(
        {
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "benchmark",
            "AWS_SECRET_ACCESS_KEY": "benchmark",
            "AWS_SESSION_TOKEN": "benchmark",
            "AWS_LAMBDA_FUNCTION_NAME": f"s3-upscale-{function}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "LAMBDA_TASK_ROOT": str(ROOT / "functions" / function),
            "AWS_XRAY_DAEMON_ADDRESS": XRAY_DAEMON,
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "JOBS_TABLE": "jobs",
            "OUTPUT_BUCKET": "output",
            "OUTPUT_PREFIX": "upscaled/",
            "INBOX_PREFIX": "inbox/",
            "RUNWARE_API_URL": "https://api.runware.ai/v1",
            "RUNWARE_API_KEY_SECRET": "runware-api-key",
            "WEBHOOK_TOKEN_SECRET": "webhook-token-key",
            "WEBHOOK_URL": "https://example.execute-api.us-east-1.amazonaws.com/webhook",
            "POWERTOOLS_SERVICE_NAME": f"upscale-{function}",
            "POWERTOOLS_METRICS_NAMESPACE": "S3Upscale",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
    )
    if not tracing:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return env


# Import-time contributors are grouped by the package that owns them.
PACKAGE_GROUPS = {
    "boto3, botocore and their dependencies": {
        "boto3",
        "botocore",
        "s3transfer",
        "urllib3",
        "dateutil",
        "jmespath",
        "six",
    },
    "aws_xray_sdk, wrapt (X-Ray SDK)": {"aws_xray_sdk", "wrapt"},
    "aws_lambda_powertools": {"aws_lambda_powertools"},
    "httpx, httpcore, h11, anyio, idna, certifi": {"httpx", "httpcore", "h11", "anyio", "idna", "certifi", "sniffio"},
    "upscaler (the shared library)": {"upscaler"},
    "typing_extensions": {"typing_extensions"},
}


def import_profile(stderr: str) -> dict[str, float]:
    """Milliseconds of import time (self time, from -X importtime) per package group."""
    totals: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        self_us, _, name = line.removeprefix("import time:").split("|")
        if not self_us.strip().isdigit():
            continue
        top = name.strip().partition(".")[0]
        group = next((g for g, members in PACKAGE_GROUPS.items() if top in members), "standard library and other")
        totals[group] += int(self_us) / 1000
    return dict(totals)


def cold_start(runs: int, profile_runs: int) -> dict[str, Any]:
    allowed = ",".join(deployed_packages())
    targets: dict[str, tuple[str, str, bool]] = {}  # variant -> (module file, function, tracing)
    for function in FUNCTIONS:
        app = str(ROOT / "functions" / function / "app.py")
        targets[f"{function} (tracing active)"] = (app, function, True)
        targets[f"{function} (tracing disabled)"] = (app, function, False)
    targets["bare (boto3, S3 + DynamoDB clients)"] = (str(ROOT / "benchmarks" / "bare_handler.py"), "submit", True)

    def probe(variant: str, options: tuple[str, ...] = ()) -> dict[str, Any]:
        module, function, tracing = targets[variant]
        env = {**lambda_environment(function, tracing=tracing), ALLOWED_PACKAGES_VARIABLE: allowed}
        return run_probe("cold", args=(module, str(LAYER)), env=env, python_options=options)

    for variant in targets:  # unmeasured: fills the bytecode and file caches
        probe(variant)
    samples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in range(runs):  # interleaved, so drift on the machine touches every variant alike
        for variant in targets:
            result = probe(variant)
            result.pop("stderr")
            samples[variant].append(result)
        progress(f"cold start: round {run + 1}/{runs}")
    bare = "bare (boto3, S3 + DynamoDB clients)"
    variants = {
        variant: {
            "init_ms": summary(s["init_ms"] for s in runs_),
            "init_cpu_ms": summary(s["init_cpu_ms"] for s in runs_),
            "modules_loaded": runs_[0]["modules_loaded"],
            "peak_rss_mib": summary(s["peak_rss_kb"] / 1024 for s in runs_),
        }
        for variant, runs_ in samples.items()
    }
    bare_median = variants[bare]["init_ms"]["median"]
    for variant in variants.values():
        variant["ratio_to_bare"] = variant["init_ms"]["median"] / bare_median

    profiles: dict[str, dict[str, float]] = {}
    for variant in (*(f"{f} (tracing active)" for f in FUNCTIONS), bare):
        per_group: dict[str, list[float]] = defaultdict(list)
        totals = []
        for _ in range(profile_runs):
            result = probe(variant, ("-X", "importtime"))
            totals.append(result["init_ms"])
            for group, ms in import_profile(result["stderr"]).items():
                per_group[group].append(ms)
        # A group a run did not import at all counts as 0 ms in that run.
        padded = {group: values + [0.0] * (profile_runs - len(values)) for group, values in per_group.items()}
        profile = {group: statistics.median(values) for group, values in padded.items()}
        profile["total init (under -X importtime)"] = statistics.median(totals)
        profiles[variant] = profile
    steps: dict[str, dict[str, dict[str, float]]] = {}
    for tracing in (True, False):
        env = {**lambda_environment("submit", tracing=tracing), ALLOWED_PACKAGES_VARIABLE: allowed}
        runs_ = [run_probe("init-steps", args=(str(LAYER),), env=env)["steps_ms"] for _ in range(profile_runs)]
        label = "tracing active" if tracing else "tracing disabled"
        steps[label] = {name: summary(r[name] for r in runs_) for name in runs_[0]}
    progress("cold start: import profiles done")
    return {
        "runs": runs,
        "variants": variants,
        "import_profiles": profiles,
        "init_steps": steps,
        "allowed_packages": allowed.split(","),
    }


# ---- 4. warm overhead ------------------------------------------------------------------------------


# Round trips as AWS documents them, for the warm runs that add network time: S3's "median latencies
# are often in the tens of milliseconds" for small requests (Best Practices Design Patterns: Optimizing
# Amazon S3 Performance, timeouts and retries), DynamoDB's "single-digit millisecond" latency.
AWS_ROUND_TRIP_MS = {"s3": 20.0, "dynamodb": 5.0}


def warm_overhead(
    services: Services,
    plan: list[tuple[int, int]],
    tracing_modes: Iterable[bool],
    round_trips: Iterable[dict[str, float] | None] = (None,),
) -> dict[str, Any]:
    """CPU, billed time and AWS calls per object of warm submit invocations, for SQS batches of 1
    and 10 messages (one S3 notification each).

    Runware acknowledges each task and then fails it without a webhook, so nothing runs in the
    background while the probe measures; what the submit function does is the same, and every job
    stays SUBMITTED.
    """
    services.set_faults(task_failure_rate=1.0, drop_webhook_rate=1.0)
    body, _ = noise_png(100_000)
    source = services.put("bench/warm/source.png", body)
    copies = itertools.count()

    def event(records: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        sources = [services.copy(source, f"bench/warm/{next(copies)}.png") for _ in range(records)]
        return services.queue_event(sources), sources

    results: dict[str, Any] = {}
    modes = [(tracing, None) for tracing in tracing_modes]
    modes += [(False, trips) for trips in round_trips if trips]
    for tracing, trips in modes:
        for records_per_event, events in plan:
            warmup, warmup_records = event(1)
            batches, batch_records = zip(*(event(records_per_event) for _ in range(events)), strict=True)
            env = services.environment()
            if tracing:
                env.pop("POWERTOOLS_TRACE_DISABLED", None)
                env.update(LAMBDA_TASK_ROOT=str(ROOT / "functions" / "submit"), AWS_XRAY_DAEMON_ADDRESS=XRAY_DAEMON)
            services.emulator.reset()
            spec = {"warmup": warmup, "events": list(batches), "tracing": tracing, "round_trip_ms": trips}
            result = run_probe("warm", spec, env=env)
            services.settle()
            stats = services.emulator.stats()
            bodies = services.emulator.requests
            samples = result["samples"]
            records = [*warmup_records, *itertools.chain.from_iterable(batch_records)]
            outcomes = [s["outcome"] for s in samples]
            check_submitted(services, "warm overhead", outcomes, records, "SUBMITTED", result["stderr"])
            for delivered in (warmup, *batches):
                services.delete_messages(delivered)
            calls: dict[str, int] = defaultdict(int)
            for sample in samples:
                for name, count in sample["aws_calls"].items():
                    calls[name] += count
            objects = sum(s["records"] for s in samples)
            key = f"{records_per_event} record{'s' if records_per_event > 1 else ''} per event" + (
                ", tracing active" if tracing else ""
            )
            if trips:
                key += ", with AWS round trips (" + ", ".join(f"{k} {v:g} ms" for k, v in trips.items()) + ")"
            results[key] = {
                "records_per_event": records_per_event,
                "tracing": tracing,
                "round_trip_ms": trips,
                "events": len(samples),
                "cpu_ms_per_object": summary(s["cpu_ms"] / s["records"] for s in samples),
                "wall_ms_per_event": summary(s["wall_ms"] for s in samples),
                # Lambda bills each invocation's duration rounded up to the millisecond.
                "billed_ms_per_image": summary(math.ceil(s["wall_ms"]) / s["records"] for s in samples),
                "runware_requests": stats["requests"],
                "runware_requests_per_event": stats["requests"] / (len(samples) + 1),
                "runware_tasks_per_request": summary(len(b) if isinstance(b, list) else 0 for b in bodies),
                "aws_calls_per_object": {name: count / objects for name, count in sorted(calls.items())},
                "net_bytes_per_object": (sum(s["net_sent"] + s["net_received"] for s in samples)) / objects,
                "s3_body_bytes_per_object": sum(s["s3_body_bytes"] for s in samples) / objects,
            }
            progress(f"warm overhead: {key} done")
    services.set_faults()
    return results


# ---- 5. throughput ---------------------------------------------------------------------------------


def throughput(objects: int, runs: int, on_run: Callable[[int], None] | None = None) -> dict[str, Any]:
    samples = []
    for run in range(runs):
        result = run_child("benchmarks.throughput", {"objects": objects, "seed": 11 + run})
        result.pop("stderr")
        if result["statuses"].get("COMPLETED") != objects:
            raise RuntimeError(f"throughput run {run + 1}: not every job completed: {result['statuses']}")
        samples.append(result)
        progress(f"throughput: run {run + 1}/{runs} ({result['objects_per_second']:.1f} objects/s)")
    cpu_parts = samples[0]["cpu_seconds"].keys()
    return {
        "objects": objects,
        "input_bytes": samples[0]["input_bytes"],
        "wall_seconds": summary(s["wall_seconds"] for s in samples),
        "objects_per_second": summary(s["objects_per_second"] for s in samples),
        "job_seconds_median": summary(s["job_seconds_median"] for s in samples),
        "job_seconds_p95": summary(s["job_seconds_p95"] for s in samples),
        "cpu_seconds": {part: summary(s["cpu_seconds"][part] for s in samples) for part in cpu_parts},
        "handler_cpu_ms_per_object": summary(1000 * s["cpu_seconds"]["handlers"] / objects for s in samples),
        "image_work_share": summary(s["cpu_seconds"]["image work"] / s["cpu_seconds"]["total"] for s in samples),
        "handler_share": summary(s["cpu_seconds"]["handlers"] / s["cpu_seconds"]["total"] for s in samples),
        "samples": samples,
    }
