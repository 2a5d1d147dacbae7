"""The report: the machine, a verdict per goal, and one table per measurement, in markdown."""

from __future__ import annotations

import os
import platform
import statistics
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmarks.burst_report import burst_goals, burst_section
from benchmarks.capacity_report import capacity_goals, capacity_section
from benchmarks.markdown import fmt, size, table
from benchmarks.recovery_report import recovery_goals, recovery_section
from benchmarks.warm_report import warm_goals, warm_section

LAYER_REQUIREMENTS = Path(__file__).resolve().parent.parent / "layers" / "common" / "requirements.in"

# Lambda list prices (us-east-1, arm64, as the template deploys): per GB-second and per request.
PRICE_PER_GB_SECOND = 0.0000133334
PRICE_PER_REQUEST = 0.20 / 1_000_000
MEMORY_GB = 256 / 1024


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    except OSError:
        pass
    packages = {}
    for name in ("boto3", "aws-lambda-powertools", "aws-xray-sdk", "httpx", "moto", "pillow"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = "not installed"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": model,
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": sys.version.split()[0],
        "packages": packages,
    }


def lambda_cost_per_1000(billed_ms: float, invocations: int) -> float:
    return 1000 * (billed_ms / 1000 * MEMORY_GB * PRICE_PER_GB_SECOND + invocations * PRICE_PER_REQUEST)


# ---- goals ----------------------------------------------------------------------------------------


def goals(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(goal, what was measured, verdict) for each goal whose measurement ran."""
    verdicts = []
    zero = results.get("zero_copy")
    if zero:
        by_size = sorted(zero.values(), key=lambda data: data["input_bytes"])
        small, large = by_size[0], by_size[-1]
        ours = [s["ours"]["peak_rss_mib"]["median"] for s in (small, large)]
        naive = [s["naive"]["peak_rss_mib"]["median"] for s in (small, large)]
        ours_read = [s["ours"]["s3_body_bytes"]["median"] for s in (small, large)]
        naive_read = [s["naive"]["s3_body_bytes"]["median"] for s in (small, large)]
        # Flat: the same bytes read and the peak within 5 % (+1 MiB of noise) at both sizes. Linear: the
        # whole object is read at each size and the peak grows at least by the difference in size.
        flat = ours[1] <= ours[0] * 1.05 + 1 and ours_read[0] == ours_read[1]
        linear = (
            naive_read == [small["input_bytes"], large["input_bytes"]]
            and naive[1] - naive[0] >= (large["input_bytes"] - small["input_bytes"]) / 2**20
        )
        verdicts.append(
            (
                "Submit: memory and bytes read flat in image size; baseline linear",
                f"ours {ours[0]:.1f} → {ours[1]:.1f} MiB peak RSS, {size(ours_read[0])} → {size(ours_read[1])} read; "
                f"baseline {naive[0]:.1f} → {naive[1]:.1f} MiB, {size(naive_read[0])} → {size(naive_read[1])} read "
                f"({size(small['input_bytes'])} → {size(large['input_bytes'])} input)",
                "met" if flat and linear else "not met",
            )
        )
    billed = results.get("billed_time")
    if billed:
        ours, naive = billed["ours"]["billed_ms"]["median"], billed["naive"]["billed_ms"]["median"]
        verdicts.append(
            (
                f"Billed Lambda time per image below the baseline's (Runware latency {billed['latency_seconds']:g} s)",
                f"ours {ours:,.0f} ms (submit + webhook), baseline {naive:,.0f} ms: {billed['ratio']:.1f}x less",
                "met" if ours < naive else "not met",
            )
        )
    cold = results.get("cold_start")
    if cold:
        traced = {k.split(" ")[0]: v["ratio_to_bare"] for k, v in cold["variants"].items() if "tracing active" in k}
        verdicts.append(
            (
                "Cold start under 1.3x a bare boto3 handler (tracing active, as deployed)",
                ", ".join(f"{name} {ratio:.2f}x" for name, ratio in traced.items()),
                "met" if all(r < 1.3 for r in traced.values()) else "not met",
            )
        )
    warm = results.get("warm_overhead")
    if warm:
        per_event = {k: v["runware_requests_per_event"] for k, v in warm.items() if not v["tracing"]}
        verdicts.append(
            (
                "One Runware request per event, not per record",
                ", ".join(f"{v:.2f} per event with {k.split(' per ')[0]}" for k, v in per_event.items()),
                "met" if all(v == 1 for v in per_event.values()) else "not met",
            )
        )
        verdicts += warm_goals(warm)
    return verdicts


def findings(results: dict[str, Any]) -> list[str]:
    """Observations the figures support, worded from this run's numbers."""
    notes = []
    requirements = LAYER_REQUIREMENTS.read_text()
    if "aws-xray-sdk" not in requirements and "[tracer]" not in requirements:
        notes.append(
            "The layer's requirements.in has neither `aws-lambda-powertools[tracer]` nor `aws-xray-sdk`, and "
            "Powertools' `Tracer()` imports the X-Ray SDK unconditionally (even with POWERTOOLS_TRACE_DISABLED): "
            "in a layer built from that file every handler module fails at import with ModuleNotFoundError "
            "(`aws_xray_sdk.core`). The cold-start figures here assume the SDK is in the layer."
        )
    cold = results.get("cold_start")
    if cold:
        active, disabled = cold["init_steps"]["tracing active"], cold["init_steps"]["tracing disabled"]

        def ms(steps: dict[str, Any], name: str) -> float:
            return float(steps[name]["median"])

        boto = ms(active, "import boto3") + ms(active, "create the S3 and DynamoDB clients")
        bare = cold["variants"]["bare (boto3, S3 + DynamoDB clients)"]["init_ms"]["median"]
        notes.append(
            f"boto3 sets the floor: importing it and creating the two clients takes {boto:.0f} ms in the step "
            f"probe (the bare handler: {bare:.0f} ms). A ratio of 1.3x leaves about {0.3 * bare:.0f} ms for "
            "everything else."
        )
        notes.append(
            f"`Tracer()` as the submit function makes it (patching botocore and httpx only) takes "
            f"{ms(active, 'Tracer()'):.0f} ms with tracing active and still {ms(disabled, 'Tracer()'):.0f} ms with "
            "tracing disabled, since Powertools imports the X-Ray SDK either way. Patching every supported "
            "library, the default, would also import requests and more."
        )
        notes.append(
            f"`httpx.Client()` ({ms(active, 'httpx.Client() as the Runware client makes it'):.0f} ms: an SSL "
            "context from certifi's CA bundle) is made on first use, so it is not in these figures: submit pays "
            "it in its first invocation, reconcile only when a run finds stale jobs to poll."
        )
        webhook_profiles = cold["import_profiles"]
        httpx_group = "httpx, httpcore, h11, anyio, idna, certifi"
        traced = webhook_profiles.get("webhook (tracing active)", {}).get(httpx_group, 0.0)
        untraced = webhook_profiles.get("webhook (tracing disabled)", {}).get(httpx_group, 0.0)
        if traced > 0.5:
            cause = (
                "only because Tracer patches every library it supports"
                if untraced <= 0.5
                else "through its own imports as well as Tracer's patching"
            )
            notes.append(
                f"The webhook function never calls Runware but loads httpx ({traced:.0f} ms of import self-time) "
                f"with tracing active, {cause}. It also pays "
                f"{ms(active, 'import the event handler (webhook only)'):.0f} ms for `APIGatewayHttpResolver`."
            )
        notes.append(
            f"Importing the upscaler library itself takes {ms(active, 'import the upscaler library'):.0f} ms once "
            "boto3, Powertools and httpx are loaded."
        )
    zero = results.get("zero_copy")
    if zero:
        largest = zero[max(zero, key=lambda k: zero[k]["input_bytes"])]
        peak = largest["naive"]["peak_rss_mib"]["median"]
        if peak > 256:
            notes.append(
                f"At {size(largest['input_bytes'])} the baseline peaks at {peak:.0f} MiB, over the 256 MB the "
                "template gives each function: deployed like ours, it would be killed for running out of memory."
            )
    return notes


# ---- sections -------------------------------------------------------------------------------------


def zero_copy_section(zero: dict[str, Any]) -> list[str]:
    lines = [
        "## 1. Zero-copy: submit memory and bytes against image size",
        "",
        "One invocation on one new object, in a fresh process per run (first invocation of the container, "
        "so secrets are read too). Ours is given what the ingestion queue's event source mapping delivers: an "
        "SQS batch of one message, received from the stack's queue, whose body is the object's S3 "
        "notification; it counts once its job is COMPLETED. The baseline is given the S3 event, as S3 invoking "
        "a function directly delivers it. Inputs: PNGs of random pixels (16 bits per channel, incompressible), "
        "upscaled to 8 MP. Baseline: `benchmarks/naive_handler.py` (download, base64, `deliveryMethod` "
        "sync, download the result, put it to S3). Peak RSS is the process's VmHWM after the invocation "
        "(getrusage's ru_maxrss is inherited from the forking process, so it cannot be used here); it "
        "includes the interpreter and the probe's loader, the same for both; "
        "bytes are counted in the handler's process by the same hooks for both: S3 object-body bytes "
        "(botocore `StreamingBody.read`) and all bytes through its sockets. Wall time with no Runware latency.",
        "",
    ]
    header = ["Measure"]
    rows: dict[str, list[str]] = {}
    measures = [
        ("Peak RSS (MiB)", "peak_rss_mib", 1, 1.0),
        ("RSS after imports and init (MiB)", "rss_after_init_mib", 1, 1.0),
        ("RSS growth during the invocation (MiB)", "invocation_rss_growth_mib", 1, 1.0),
        ("S3 object bytes read", "s3_body_bytes", 0, 1.0),
        ("Bytes sent (all sockets)", "net_sent_bytes", 0, 1.0),
        ("Bytes received (all sockets)", "net_received_bytes", 0, 1.0),
        ("Invocation wall time (ms)", "wall_ms", 0, 1.0),
        ("Invocation CPU time (ms)", "cpu_ms", 0, 1.0),
    ]
    for data in zero.values():
        for who, name in (("ours", "ours (submit)"), ("naive", "baseline")):
            n = data[who]["peak_rss_mib"]["n"]
            header.append(f"{name}, {size(data['input_bytes'])} (n={n})")
            for title, key, digits, scale in measures:
                rows.setdefault(title, [title]).append(fmt(data[who][key], digits, scale))
    lines += table(header, list(rows.values()))
    first = next(iter(zero.values()))
    lines.append(
        "AWS calls per invocation — ours: "
        + ", ".join(f"{k} {v}" for k, v in first["ours"]["aws_calls"].items())
        + "; baseline: "
        + ", ".join(f"{k} {v}" for k, v in first["naive"]["aws_calls"].items())
        + ". Receiving and deleting the queue's messages is the event source mapping's work, not the "
        "function's, so no SQS calls appear here."
    )
    lines.append("")
    return lines


def billed_section(billed: dict[str, Any]) -> list[str]:
    ours, naive = billed["ours"], billed["naive"]
    n = ours["billed_ms"]["n"]
    ours_calls = sum(ours["aws_calls_per_image"].values())
    lines = [
        "## 2. Billed Lambda time per image",
        "",
        f"{size(billed['input_bytes'])} {billed['input']} upscaled to 4 MP, Runware emulator latency "
        f"{billed['latency_seconds']:g} s per task (on top of its own image work). Warm containers: one "
        f"unmeasured image first, then {n} images one after another. Ours: submit duration (on an SQS batch "
        "of one message, as the ingestion queue delivers it) + webhook duration (the webhook function runs in "
        "the probe's process behind its own gateway); baseline: its one synchronous invocation on the S3 "
        "event. Each invocation's duration is rounded up to the millisecond, as Lambda bills. On loopback "
        f"every AWS and Runware round trip takes about a millisecond; in AWS each of ours' {ours_calls:g} AWS "
        "calls per image (and its one Runware request) adds network time, which still leaves it far from the "
        "baseline's wait.",
        "",
    ]
    ours_ms, naive_ms = ours["billed_ms"]["median"], naive["billed_ms"]["median"]
    rows = [
        ["Billed ms per image", fmt(ours["billed_ms"], 0), fmt(naive["billed_ms"], 0), f"{billed['ratio']:.1f}x"],
        ["Invocations per image", "2", "1", ""],
        [
            "Lambda cost per 1,000 images at 256 MB, arm64 (USD)",
            f"{lambda_cost_per_1000(ours_ms, 2):.4f}",
            f"{lambda_cost_per_1000(naive_ms, 1):.4f}",
            f"{lambda_cost_per_1000(naive_ms, 1) / lambda_cost_per_1000(ours_ms, 2):.1f}x",
        ],
    ]
    lines += table(["Per image", f"ours (n={n})", f"baseline (n={n})", "baseline / ours"], rows)
    submit = statistics.median(ms[0] for ms in ours["invocations_ms"])
    webhook = statistics.median(ms[1] for ms in ours["invocations_ms"])
    lines.append(
        f"Ours split: submit {submit:.0f} ms, webhook {webhook:.0f} ms "
        "(medians). AWS calls per image — ours (submit + webhook): "
        + ", ".join(f"{k} {v:g}" for k, v in ours["aws_calls_per_image"].items())
        + "; baseline: "
        + ", ".join(f"{k} {v:g}" for k, v in naive["aws_calls_per_image"].items())
        + f". Cost uses list prices (${PRICE_PER_GB_SECOND}/GB-s, $0.20 per million requests) and "
        "excludes Runware's price, which is the same for both. At 50 MB inputs the baseline would also need "
        "a larger memory size (section 1), which multiplies its cost."
    )
    lines.append("")
    return lines


def cold_section(cold: dict[str, Any]) -> list[str]:
    lines = [
        "## 3. Cold start: import and init of each handler module",
        "",
        f"Each run is a fresh interpreter that imports the handler module as Lambda's runtime does (its "
        f"folder and the layer on `sys.path`) with the environment Lambda sets; the time is "
        f"`time.perf_counter()` around the import, which includes the module-level clients. Runs are "
        f"interleaved, {cold['runs']} per variant after one unmeasured round. Only packages a deployed "
        "function has can be imported (the layer's requirements with the X-Ray SDK, and boto3); the "
        "development tools in this environment are refused, as they would be in Lambda. "
        "Bare: `benchmarks/bare_handler.py` imports boto3 and creates the S3 and DynamoDB clients, which "
        "is what each of the three functions creates.",
        "",
    ]
    rows = []
    for variant, data in cold["variants"].items():
        rows.append(
            [
                variant,
                fmt(data["init_ms"], 0),
                f"{data['ratio_to_bare']:.2f}x",
                fmt(data["init_cpu_ms"], 0),
                str(data["modules_loaded"]),
                fmt(data["peak_rss_mib"], 1),
            ]
        )
    n = next(iter(cold["variants"].values()))["init_ms"]["n"]
    lines += table(
        ["Handler module", f"Init ms (n={n})", "vs bare", "Init CPU ms", "Modules loaded", "Peak RSS MiB"], rows
    )
    profiles = cold["import_profiles"]
    groups = sorted({g for p in profiles.values() for g in p if not g.startswith("total")})
    lines += [
        "Where the time goes: import self-time by package (`-X importtime`, medians of a few runs; the "
        "instrumentation inflates every figure a little). The rest of the total is code run at import: "
        "client creation, Powertools' Tracer patching libraries.",
        "",
    ]
    header = ["Package (ms)", *[v.replace(" (tracing active)", "") for v in profiles]]
    rows = [[group, *[f"{p.get(group, 0.0):.1f}" for p in profiles.values()]] for group in groups]
    rows.append(
        [
            "total init under -X importtime",
            *[f"{p['total init (under -X importtime)']:.0f}" for p in profiles.values()],
        ]
    )
    lines += table(header, rows)
    return lines


def throughput_section(data: dict[str, Any]) -> list[str]:
    n = data["wall_seconds"]["n"]
    cpu = data["cpu_seconds"]
    lines = [
        "## 5. Throughput of the whole local stack",
        "",
        f"{data['objects']} uploads of a {size(data['input_bytes'])} JPEG into the inbox (4 uploader threads), "
        "through the real S3 notification to the ingestion queue, its event source mapping (the template's "
        "batch size, batching window and maximum concurrency), submit, Runware emulator (4 workers, no added "
        "latency, upscaling to 4 MP), webhook gateway and webhook function, until every job is COMPLETED. "
        f"One local stack per run, in a fresh process; {n} runs. Wall time is from the first upload to the "
        "last webhook invocation's end.",
        "",
    ]
    rows = [
        ["Wall time (s)", fmt(data["wall_seconds"], 1)],
        ["Objects per second", fmt(data["objects_per_second"], 2)],
        ["Upload-to-result per job, median (s)", fmt(data["job_seconds_median"], 2)],
        ["Upload-to-result per job, p95 (s)", fmt(data["job_seconds_p95"], 2)],
        *[[f"CPU s: {part}", fmt(stat, 1)] for part, stat in cpu.items()],
        ["Handlers' CPU ms per object (submit + webhook + reconcile)", fmt(data["handler_cpu_ms_per_object"], 1)],
        ["Image work's share of the process CPU", fmt(data["image_work_share"], 0, 100) + " %"],
        ["Handlers' share of the process CPU", fmt(data["handler_share"], 0, 100) + " %"],
    ]
    lines += table(["Measure", f"n={n}"], rows)
    lines += [
        "Method: everything runs in one process on this machine's cores, so the run is split by CPU time, "
        "counted in the threads that do each part (`time.thread_time()`): the emulator's image work "
        "(decode, resize, encode: what Runware does on its own machines), the emulator's transfers (GET of "
        "the input, PUT of the output), the three handlers' invocations (what Lambda runs and bills), and the "
        "rest, which is the local stand-ins for AWS (moto's server side, the HTTP servers, the invocation "
        "queue). The pipeline's own share is the handlers' line; the stand-ins, not the handlers, bound this "
        "figure on a laptop. In AWS each invocation has its own Lambda instance, so throughput is bounded by "
        "Lambda concurrency and Runware, while each object costs the handlers' CPU shown here.",
        "",
    ]
    return lines


def render(results: dict[str, Any]) -> str:
    info = results["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    lines = [
        "# Benchmarks: cost, memory and speed against the obvious alternatives",
        "",
        f"Measured {info['date']} by `make bench` ({results['duration_seconds']:.0f} s). Machine: "
        f"{info['cores']} cores, {info['cpu']}, {info['system']}; Python {info['python']}; {packages}. "
        "Lambda runs Python 3.13 on arm64 (Graviton): absolute figures there differ, ratios less so. "
        "AWS is moto and Runware is the emulator, on loopback.",
        "",
        "Figures are medians over the runs, with [min-max]; n is the number of runs."
        + (" **Quick run (--quick): too few runs to rely on.**" if results["arguments"].get("quick") == "True" else ""),
        "",
        "## Goals",
        "",
    ]
    rows = [list(row) for row in goals(results)]
    if "burst" in results:
        rows += [list(row) for row in burst_goals(results["burst"])]
    if "capacity" in results:
        rows += [list(row) for row in capacity_goals(results["capacity"])]
    if "recovery" in results:
        rows += [list(row) for row in recovery_goals(results["recovery"])]
    lines += table(["Goal", "Measured", "Verdict"], rows)
    sections = [
        ("zero_copy", zero_copy_section),
        ("billed_time", billed_section),
        ("cold_start", cold_section),
        ("warm_overhead", warm_section),
        ("throughput", throughput_section),
        ("burst", burst_section),
        ("capacity", capacity_section),
        ("recovery", recovery_section),
    ]
    for key, section in sections:
        if key in results:
            lines += section(results[key])
    if results.get("notes"):
        lines += ["## Findings", "", *[f"- {note}" for note in results["notes"]], ""]
    return "\n".join(lines)
