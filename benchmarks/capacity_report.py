"""The capacity section of the benchmark report: ceilings, cost per 1,000 images, requests per job and
the conditional-writes comparison, this tree's design beside the design before it."""

from __future__ import annotations

import math
from typing import Any

from benchmarks import capacity_figures as figures
from benchmarks.capacity_limits import HEADROOM, TARGET_JOBS_PER_SECOND, binding, ceilings, scaled_parameters
from benchmarks.markdown import fmt, table

COST_GOAL_PER_1000 = 0.02


def jobs_per_second(value: float) -> str:
    if math.isinf(value):
        return "no limit"
    if math.isnan(value):
        return "n/a"
    return f"{value:,.0f}"


def evaluate(data: dict[str, Any]) -> dict[str, Any]:
    """Ceilings with the template's defaults and with the scaled parameters, and what binds."""
    defaults = dict(data["parameters"])
    scaled = {**defaults, **scaled_parameters(data)}
    default_rows, scaled_rows = ceilings(data, defaults), ceilings(data, scaled)
    warm = HEADROOM * TARGET_JOBS_PER_SECOND * data["dynamodb"]["write_total_per_job"]
    for row in scaled_rows:
        if row["resource"].startswith("DynamoDB new on-demand table"):
            # Scaled: the table is pre-warmed (WarmThroughput) for the target, a setting the user makes.
            row.update(limit=warm, ceiling=warm / row["per_job"], kind="parameter", source="table WarmThroughput")
    return {
        "defaults": defaults,
        "scaled": scaled,
        "default_rows": default_rows,
        "scaled_rows": scaled_rows,
        "binding_default": binding(default_rows),
        "binding_scaled": binding(scaled_rows),
        "lowest_aws_scaled": binding(scaled_rows, "aws"),
    }


def capacity_goals(capacity: dict[str, Any]) -> list[tuple[str, str, str]]:
    designs = capacity["designs"]
    names = list(designs)
    ours = designs[names[0]]
    before = designs[names[1]] if len(names) > 1 else None
    verdicts = []
    evaluated = evaluate(ours["model"])
    lowest = evaluated["lowest_aws_scaled"]
    measured = f"this tree: lowest AWS limit {lowest['resource']} at {jobs_per_second(lowest['ceiling'])} jobs/s"
    if before:
        old = evaluate(before["model"])["lowest_aws_scaled"]
        measured += f"; before: {old['resource']} at {jobs_per_second(old['ceiling'])} jobs/s"
    verdicts.append(
        (
            f"Capacity: no AWS resource binds below {TARGET_JOBS_PER_SECOND:,.0f} jobs/s with the parameters "
            "scaled as docs/capacity.md says",
            measured,
            "met" if lowest["ceiling"] >= TARGET_JOBS_PER_SECOND else "not met",
        )
    )
    cost = ours["model"]["aws_per_1000"]
    measured = f"this tree ${cost:.4f}{_fixed_note(ours)}"
    if before:
        measured += f", before ${before['model']['aws_per_1000']:.4f}{_fixed_note(before)}"
    measured += f" (Runware ${ours['model']['runware_per_1000']:.2f})"
    verdicts.append(
        (
            f"AWS cost per 1,000 images at most ${COST_GOAL_PER_1000} (excluding data transfer; scheduled work "
            "apart, as a cost per month)",
            measured,
            "met" if cost <= COST_GOAL_PER_1000 else "not met",
        )
    )
    if before:
        mine, theirs = ours["batches"], before["batches"]
        verdicts.append(
            (
                "Conditional writes: the cheaper of transactions and single writes is kept",
                f"per million batches of 10 (write units and billed time): this tree "
                f"${mine['total_usd'] * 1e6:.2f} ({', '.join(mine['requests'])}), before "
                f"${theirs['total_usd'] * 1e6:.2f} ({', '.join(theirs['requests'])})",
                "met" if mine["total_usd"] <= theirs["total_usd"] else "not met",
            )
        )
    return verdicts


def copy_cost(model: dict[str, Any]) -> float:
    """USD per 1,000 images of the CopyObject requests (priced with PUT)."""
    return 1000 * model["s3_per_job"].get("CopyObject", 0.0) * figures.S3_PUT_PRICE.value


def fixed_per_month(design: dict[str, Any]) -> float:
    """The month's cost of a design's scheduled runs at the template's default rates."""
    return sum(schedule["per_month"] or 0.0 for schedule in design.get("scheduled", []))


def _fixed_note(design: dict[str, Any]) -> str:
    if not design.get("scheduled"):
        return ""
    return f" + ${fixed_per_month(design):.2f}/month scheduled"


def scheduled_section(designs: dict[str, dict[str, Any]]) -> list[str]:
    """Each design's schedules: what a run that found nothing to do costs, and a month of them."""
    lines = [
        "### Scheduled work: a fixed cost per month, whatever the volume",
        "",
        "A scheduled run that did no job's work (no DynamoDB write, no Runware request, no S3 PUT or COPY, no "
        "completion event) costs the same at any volume: its lines are priced per run from the runs recorded here "
        "(the local stack runs the schedules faster than AWS: every 5 s and 0.5 s), times the runs in a month "
        "(730 hours) at the template's default rate. A run that did a job's work is counted per image above, "
        "whole (its own look at the table included: an upper bound).",
        "",
    ]
    header = [
        "Design",
        "Schedule (template default)",
        "runs/month",
        "runs here: looked only / did work",
        "USD per run",
        "largest lines per run",
        "USD per month",
        "images/month at which it adds $0.01 per 1,000",
    ]
    rows = []
    for name, design in designs.items():
        for schedule in design.get("scheduled", []):
            per_run = schedule.get("per_run")
            ranked = sorted(per_run["lines"], key=lambda line: -line[1])[:3] if per_run else []
            rows.append(
                [
                    name,
                    f"{schedule['function']} {schedule['event']}: {schedule['expression']} "
                    f"({schedule.get('origin', 'template')})",
                    f"{schedule['runs_per_month']:,.0f}" if schedule.get("runs_per_month") else "not a rate",
                    f"{schedule['quiet_runs']} / {schedule['busy_runs']}",
                    f"{per_run['usd']:.7f}" if per_run else "none measured",
                    "; ".join(f"{line} {counted}" for line, _, counted in ranked),
                    f"{schedule['per_month']:.2f}" if schedule.get("per_month") is not None else "",
                    f"{schedule['images_per_month_for_a_cent']:,.0f}"
                    if schedule.get("images_per_month_for_a_cent")
                    else "",
                ]
            )
        if design.get("scheduled"):
            total = fixed_per_month(design)
            rows.append(
                [name, "**all schedules**", "", "", "", "", f"**{total:.2f}**", f"**{total / (0.01 / 1000):,.0f}**"]
            )
    lines += table(header, rows)
    return lines


def _rows_by_resource(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["resource"]: row for row in rows}


def capacity_section(capacity: dict[str, Any]) -> list[str]:
    designs = capacity["designs"]
    names = list(designs)
    evaluated = {name: evaluate(designs[name]["model"]) for name in names}
    first = designs[names[0]]["model"]
    lines = [
        "## 7. Capacity and cost per 1,000 images",
        "",
        f"{capacity['jobs']} uploads dropped at once into the local stack's inbox, for each design in a process of "
        f"its own; Runware's emulator drops {capacity['drop_webhook_rate']:.0%} of the webhooks, so the recovery path "
        "finishes those jobs. Every request the handlers and the stack's Lambda stand-ins make is recorded "
        "(botocore's event hooks on every client, httpx for Runware, the webhook route and presigned S3 "
        "requests); DynamoDB units are computed from the items before and after each write and the indexes "
        "of that design's template.yaml (docs/capacity.md has the formulas and the cited figures). "
        + (
            f"Before: commit {capacity['baseline_commit']} of this repository, run from a copy of its files."
            if capacity["baseline_available"]
            else f"**The baseline commit {capacity['baseline_commit']} is not in this clone's history (a shallow "
            "clone?): this tree's design is shown alone.**"
        ),
        "",
        f"Scaled parameters: what docs/capacity.md gives for {TARGET_JOBS_PER_SECOND:,.0f} jobs/s with "
        f"{HEADROOM:.0%} of the target as headroom, from each design's own figures.",
        "",
    ]
    header = ["Parameter", "template default"] + [f"scaled, {name}" for name in names]
    parameter_names = list(evaluated[names[0]]["scaled"])
    rows = [
        [name, f"{evaluated[names[0]]['defaults'].get(name, 0):,.0f}"]
        + [f"{evaluated[design]['scaled'].get(name, 0):,.0f}" for design in names]
        for name in parameter_names
    ]
    rows.append(
        ["DynamoDB WarmThroughput (write units/s, a table setting)", "not set"]
        + [
            f"{HEADROOM * TARGET_JOBS_PER_SECOND * designs[d]['model']['dynamodb']['write_total_per_job']:,.0f}"
            for d in names
        ]
    )
    lines += table(header, rows)

    lines += ["### Ceilings (jobs per second each limit allows)", ""]
    resources: list[str] = []
    for name in names:
        for row in evaluated[name]["scaled_rows"]:
            if row["resource"] not in resources:
                resources.append(row["resource"])
    header = ["Limit", "limit (scaled)"]
    for name in names:
        header += [f"per job, {name}", f"defaults, {name}", f"scaled, {name}"]
    header.append("source")
    rows = []
    for resource in resources:
        sources = ""
        row = [resource, ""]
        for name in names:
            default = _rows_by_resource(evaluated[name]["default_rows"]).get(resource)
            scaled = _rows_by_resource(evaluated[name]["scaled_rows"]).get(resource)
            if scaled is None or default is None:
                row += ["", "", ""]
                continue
            row[1] = row[1] or (
                f"{scaled['limit']:,.0f} {scaled['unit']}" if math.isfinite(scaled["limit"]) else scaled["unit"]
            )
            mark_default = "**" if default is evaluated[name]["binding_default"] else ""
            mark_scaled = "**" if scaled is evaluated[name]["binding_scaled"] else ""
            row += [
                f"{scaled['per_job']:.3g}",
                f"{mark_default}{jobs_per_second(default['ceiling'])}{mark_default}",
                f"{mark_scaled}{jobs_per_second(scaled['ceiling'])}{mark_scaled}",
            ]
            sources = scaled["source"]
        rows.append([*row, sources])
    lines += table(header, rows)
    for name in names:
        result = evaluated[name]
        lines.append(
            f"- {name}: with the template's defaults, **{result['binding_default']['resource']}** binds at "
            f"{jobs_per_second(result['binding_default']['ceiling'])} jobs/s; with the scaled parameters, "
            f"**{result['binding_scaled']['resource']}** at {jobs_per_second(result['binding_scaled']['ceiling'])} "
            f"jobs/s, and the lowest AWS limit is {result['lowest_aws_scaled']['resource']} at "
            f"{jobs_per_second(result['lowest_aws_scaled']['ceiling'])} jobs/s."
        )
    lines.append("")

    lines += [
        "### AWS cost per 1,000 images (list prices, us-east-1, excluding data transfer and storage)",
        "",
        "What scales with images: the invocations an image causes (its SQS batch, its webhook, its recovery "
        "checks), what Lambda's pollers, S3 and Runware do for it, and scheduled runs that did a job's work. "
        "Scheduled runs that only looked are a cost per month, in the table after this one.",
        "",
    ]
    header = ["Line"] + [f"USD, {name}" for name in names] + [f"counted, {name}" for name in names]
    cost_rows: dict[str, list[str]] = {}
    for position, name in enumerate(names):
        for line, usd, counted in designs[name]["model"]["cost_lines"]:
            row = cost_rows.setdefault(line, [line] + [""] * (2 * len(names)))
            row[1 + position] = f"{usd:.5f}"
            row[1 + len(names) + position] = counted
    rows = list(cost_rows.values())
    rows.append(
        ["**AWS total**"] + [f"**{designs[n]['model']['aws_per_1000']:.4f}**" for n in names] + [""] * len(names)
    )
    megapixels = first["target_megapixels"]
    rows.append(
        [f"Runware, {megapixels} MP outputs (TargetMegapixels default)"]
        + [f"{designs[n]['model']['runware_per_1000']:.2f}" for n in names]
        + ["model page: $0.005/image for 1-4 MP, $0.01 for 5-8 MP"] * len(names)
    )
    lines += table(header, rows)
    for name in names:
        ranked = sorted(designs[name]["model"]["cost_lines"], key=lambda line: -line[1])[:3]
        total = designs[name]["model"]["aws_per_1000"]
        copy = copy_cost(designs[name]["model"])
        lines.append(
            f"- {name}: the largest lines are "
            + ", ".join(f"{line} (${usd:.4f}, {usd / total:.0%})" for line, usd, _ in ranked)
            + f". The CopyObject out of staging/ (Runware uploads there; the copy publishes the checked result) "
            f"costs ${copy:.4f}: without it, ${total - copy:.4f}."
        )
    lines.append("")
    sources: list[str] = []
    for name in names:
        sources += [k for k in designs[name]["model"].get("log_bytes_by_source_per_job", {}) if k not in sources]
    lines += table(
        ["CloudWatch Logs bytes per image, by source", *names],
        [
            [source]
            + [f"{designs[n]['model'].get('log_bytes_by_source_per_job', {}).get(source, 0):,.0f}" for n in names]
            for source in sources
        ],
    )
    lines += scheduled_section(designs)
    header = ["Function"]
    for name in names:
        header += [f"invocations/job, {name}", f"here: wall / CPU ms (medians), {name}", f"modelled ms in AWS, {name}"]
    functions: list[str] = []
    for name in names:
        functions += [f for f in designs[name]["model"]["functions"] if f not in functions]
    rows = []
    for function in functions:
        row = [function]
        for name in names:
            data = designs[name]["model"]["functions"].get(function)
            if data is None:
                row += ["", "", ""]
                continue
            row += [
                f"{data['invocations'] / designs[name]['model']['jobs']:.2f}",
                f"{data['loopback_wall_median_ms']:,.0f} / {data['loopback_cpu_median_ms']:,.0f}",
                f"{data['ms_in_aws']:,.0f}",
            ]
        rows.append(row)
    lines += table(header, rows)
    lines += [
        "Lambda time is modelled, not the wall time here (where every function shares one process with moto "
        "and the emulator's image work): submit from its own measurement below (a full batch with AWS's round "
        f"trips) plus {1:.0f} s for Runware's answer (not documented: an assumption); the others as their CPU time "
        "here plus a round trip per AWS call. SQS: the pollers' empty receives are a cost per hour, not per image, "
        "and are left out; S3's notification to the ingestion queue is one SendMessage per upload. CloudWatch: "
        f"the bytes the functions print (logs and EMF metrics, at the template's LogLevel INFO), "
        f"{figures.LOG_EVENT_OVERHEAD_BYTES.value:.0f} bytes per log event, Lambda's START/END/REPORT lines and the "
        "webhook API's access log line per request; EMF metrics are also billed per metric per month, a fixed "
        "cost. X-Ray: per function, the first invocation each second and 5% of the others (the default sampling "
        f"rule, {figures.XRAY_SAMPLING}, which Lambda applies and does not let a function change), at "
        f"{TARGET_JOBS_PER_SECOND:,.0f} images/s; at lower rates the first-each-second share grows: "
        + "; ".join(
            f"{name}: "
            + ", ".join(
                f"{float(rate):,.0f}/s {traces:.3f}"
                for rate, traces in designs[name]["model"].get("traces_per_image_by_rate", {}).items()
            )
            for name in names
        )
        + " traces per image. The local stack's pollers read their mapping's state "
        "(lambda:GetEventSourceMapping) to know whether to deliver; Lambda's own pollers in AWS make no such "
        "request on the account, so those are left out.",
        "",
        "### Requests per job",
        "",
    ]
    keys: list[str] = []
    for name in names:
        data = designs[name]["model"]
        for group in ("calls_per_job", "sqs_per_job", "s3_per_job", "http_per_job", "runware_tasks_per_job"):
            for key in data[group]:
                if group == "calls_per_job" and key.startswith(("s3:", "sqs:")):
                    continue  # shown below, with presigned requests and empty receives told apart
                label = f"{group.split('_per_')[0]}: {key}"
                if label not in keys:
                    keys.append(label)
    rows = []
    for label in keys:
        group, key = label.split(": ", 1)
        row = [label]
        for name in names:
            value = designs[name]["model"][f"{group}_per_job"].get(key)
            row.append("" if value is None else f"{value:.3f}")
        rows.append(row)
    lines += table(["Request", *names], rows)

    lines += ["### DynamoDB write units per job, by index partition key value", ""]
    rows = []
    partitions: list[str] = []
    for name in names:
        for key in designs[name]["model"]["dynamodb"]["partition_writes_per_job"]:
            if key not in partitions:
                partitions.append(key)
    for key in partitions:
        rows.append(
            [key] + [f"{designs[n]['model']['dynamodb']['partition_writes_per_job'].get(key, 0):.2f}" for n in names]
        )
    lines += table(["Index = key value", *names], rows)

    if all("batches" in designs[name] for name in names):
        lines += conditional_writes_section(capacity)
    return lines


def conditional_writes_section(capacity: dict[str, Any]) -> list[str]:
    designs = capacity["designs"]
    names = list(designs)
    sample = designs[names[0]]["batches"]
    trips = ", ".join(f"{service} {ms:g} ms" for service, ms in sample["round_trip_ms"].items())
    lines = [
        "### A batch's claims and moves to SUBMITTED: transactions or single writes",
        "",
        f"The submit function invoked on SQS batches of {sample['batch_size']} new uploads on a quiet local "
        f"stack (loopback, with a round trip added to every AWS call: {trips}; moto's server side runs in the same "
        "process, so each extra request also costs CPU here that AWS would spend on its side). Write units from "
        "the items before and after each write.",
        "",
    ]
    rows = [
        ["DynamoDB requests per batch"]
        + [", ".join(f"{k} {v}" for k, v in designs[n]["batches"]["requests"].items()) for n in names],
        ["Billed ms per batch"] + [fmt(designs[n]["batches"]["billed_ms"], 0) for n in names],
        ["Table write units per batch"] + [f"{designs[n]['batches']['table_write_units']}" for n in names],
        ["Index write units per batch"] + [f"{designs[n]['batches']['index_write_units']}" for n in names],
        ["Largest item written (bytes)"] + [f"{designs[n]['batches']['claim_item_bytes']}" for n in names],
        ["USD per million batches: write units"]
        + [f"{designs[n]['batches']['write_units_usd'] * 1e6:.2f}" for n in names],
        ["USD per million batches: billed time (256 MB arm64)"]
        + [f"{designs[n]['batches']['billed_time_usd'] * 1e6:.2f}" for n in names],
        ["USD per million batches: total (index units included)"]
        + [f"{designs[n]['batches']['total_usd'] * 1e6:.2f}" for n in names],
    ]
    lines += table(["Per batch of 10", *names], rows)
    lines.append(
        f"One write unit costs as much as {sample['write_unit_equals_ms']:.0f} ms of a 256 MB arm64 function "
        "(list prices), so a design that saves units wins unless it adds that much time per unit saved."
    )
    lines.append("")
    return lines
