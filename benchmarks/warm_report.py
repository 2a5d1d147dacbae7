"""The warm-overhead section of the benchmark report and the submit function's per-object goals."""

from __future__ import annotations

from typing import Any

from benchmarks import capacity_figures as figures
from benchmarks.markdown import fmt, size, table


def warm_goals(warm: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The submit function's per-object goals, from the warm events with tracing disabled."""
    untraced = {
        data["records_per_event"]: data
        for data in warm.values()
        if not data["tracing"] and not data.get("round_trip_ms")
    }
    networked = {data["records_per_event"]: data for data in warm.values() if data.get("round_trip_ms")}
    batch = untraced.get(10)
    if batch is None:
        return []
    calls = batch["aws_calls_per_object"]
    total = sum(calls.values())
    verdicts = [
        (
            # Three requests are each object's own (its header read, its claim, its move to SUBMITTED,
            # each a conditional write of its own: cheaper than transactions, section 7); what a batch
            # shares (the intake pause, the prior-output pointers, the recovery checks) adds at most 0.5.
            "Submit: AWS calls per object <= 3.5 (3 of its own, at most 0.5 shared by the batch)",
            f"{total:.2f} per object in events of 10 records ("
            + ", ".join(f"{name} {count:g}" for name, count in calls.items())
            + "), tracing disabled",
            "met" if total <= 3.5 else "not met",
        )
    ]
    memory_mb = submit_memory_mb()
    for where, runs in (("on loopback", untraced), ("with AWS's round trips", networked)):
        single, batched_run = runs.get(1), runs.get(10)
        if single is None or batched_run is None:
            continue
        alone, batched = billed_usd_per_image(single, memory_mb), billed_usd_per_image(batched_run, memory_mb)
        ms_alone = single["billed_ms_per_image"]["median"]
        ms_batched = batched_run["billed_ms_per_image"]["median"]
        verdicts.append(
            (
                f"Submit: billed cost per image of what a batch shares (duration at {memory_mb} MB, the "
                f"invocation, the queue's receive and delete) in batches of 10 at most a third of the "
                f"single-record figure (same run, {where})",
                f"${alone * 1e6:.3f} per million images with 1 record per event ({ms_alone:.1f} billed ms), "
                f"${batched * 1e6:.3f} in batches of 10 ({ms_batched:.1f} billed ms): {batched / alone:.2f} of it "
                f"(medians, tracing disabled); billed ms alone {ms_batched / ms_alone:.2f} of it",
                "met" if batched <= alone / 3 else "not met",
            )
        )
    return verdicts


def submit_memory_mb() -> int:
    """The submit function's MemorySize as the template deploys it (its own, or the Globals')."""
    from local.template import load_template

    template = load_template()
    own = template["Resources"]["SubmitFunction"]["Properties"].get("MemorySize")
    return int(own or template.get("Globals", {}).get("Function", {}).get("MemorySize", 128))


def billed_usd_per_image(data: dict[str, Any], memory_mb: int) -> float:
    """What Lambda and SQS bill per image for one kind of event: the invocation's billed duration at
    the function's memory size, its request charge, and the event source mapping's ReceiveMessage
    and DeleteMessage(Batch) for the event, shared by the event's records. The per-object requests
    (the source's ranged GET, the claim and the move in DynamoDB, and their units) are billed the same
    however the records are batched: section 7 prices them per 1,000 images."""
    records = data["records_per_event"]
    duration = data["billed_ms_per_image"]["median"] / 1000 * memory_mb / 1024 * figures.GB_SECOND_PRICE_ARM.value
    per_event = figures.LAMBDA_REQUEST_PRICE.value + 2 * figures.SQS_REQUEST_PRICE.value
    return duration + per_event / records


def warm_section(warm: dict[str, Any]) -> list[str]:
    lines = [
        "## 4. Warm overhead of the submit function",
        "",
        "A warm container (one unmeasured invocation first), in a process of its own; CPU time is "
        "`time.process_time()` around each invocation. Each event is what the ingestion queue's event source "
        "mapping delivers: an SQS batch of 1 or 10 messages, received from the stack's queue, each holding one "
        "upload's S3 notification. Inputs are 100 KB PNGs. Runware acknowledges each task and then fails it "
        "without a webhook, so no background work competes with the probe; the submit path is the same, and "
        "a run counts only if no message is reported in `batchItemFailures` and every job is SUBMITTED in the "
        "jobs table (read after the probe, so not in the AWS calls). Billed ms per image: each invocation's "
        "wall time rounded up to the millisecond, as Lambda bills, divided by the messages in its batch. "
        "Runware requests are counted by the emulator. On loopback every AWS call is a few milliseconds of "
        "moto's own work, and moto serves one call at a time, so the calls a batch makes at once still take "
        "their sum: there, with each request costing about the same CPU in moto and in the function, a "
        "batch's billed time per image tends to its share of the single record's requests per object, "
        "whatever the batch does at once. The rows 'with AWS round trips' add before each AWS call the "
        "network time AWS documents "
        "(S3: median latencies 'often in the tens of milliseconds' for small requests, from the S3 performance "
        "best practices; DynamoDB: 'single-digit millisecond'), taken as 20 ms and 5 ms; Runware's own round "
        "trip is not documented and none is added, so what a batch saves on it is not counted.",
        "",
    ]
    rows = []
    for key, data in warm.items():
        calls = sum(data["aws_calls_per_object"].values())
        rows.append(
            [
                key,
                str(data["events"]),
                fmt(data["cpu_ms_per_object"], 1),
                fmt(data["wall_ms_per_event"], 0),
                fmt(data["billed_ms_per_image"], 1),
                f"{data['runware_requests_per_event']:.2f}",
                f"{data['runware_tasks_per_request']['max']:.0f}",
                f"{calls:.1f}",
                size(data["net_bytes_per_object"]),
            ]
        )
    lines += table(
        [
            "Event",
            "Events",
            "CPU ms per object",
            "Wall ms per event",
            "Billed ms per image",
            "Runware requests per event",
            "Tasks per request (max)",
            "AWS calls per object",
            "Network bytes per object",
        ],
        rows,
    )
    for data in warm.values():
        if data["tracing"] or data.get("round_trip_ms"):  # the same calls as the loopback rows
            continue
        calls = data["aws_calls_per_object"]
        records = data["records_per_event"]
        lines.append(
            f"AWS calls per object with {records} record{'s' if records > 1 else ''} per event: "
            + ", ".join(f"{k} {v:g}" for k, v in calls.items())
            + "."
        )
        lines.append("")
    if not any(name.startswith("secretsmanager:") for data in warm.values() for name in data["aws_calls_per_object"]):
        lines += ["Secrets Manager values are cached for 5 minutes, so warm invocations read none.", ""]
    return lines
