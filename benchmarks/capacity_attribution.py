"""What caused each request of a capacity run: an image, or a schedule.

The recorder (benchmarks/capacity_recorder.py) numbers every handler invocation, notes its trigger
from the event's shape, and files every request, log line and billed millisecond under it. Here a
run is split: what images caused (their invocations, the stand-ins' work outside handlers, and
scheduled runs that did a job's work) and, for each Schedule event of the template, its runs that
only looked, which cost the same at any volume.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from benchmarks.capacity_recorder import OUTSIDE_HANDLERS
from local.template import TemplateResolver

# Requests made outside any handler whose service is not billed per request: the stand-ins of
# Lambda's queue pollers read their mapping's state (lambda:GetEventSourceMapping) to know whether
# to deliver; in AWS, Lambda's own pollers know it without a request on the account.
UNBILLED_OUTSIDE_HANDLERS = ("lambda:",)


def rate_seconds(expression: str) -> float | None:
    """The interval of an EventBridge `rate(value unit)` expression in seconds; None for cron(...)."""
    text = expression.strip()
    if not (text.startswith("rate(") and text.endswith(")")):
        return None
    value, unit = text[len("rate(") : -1].split()
    seconds = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}[unit]
    return float(value) * seconds


def schedules(template: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(function, trigger) -> each Schedule event of the template, at its parameters' defaults. The
    trigger is how capacity_recorder.trigger_of names the event EventBridge sends for it: the
    Scheduled Event without Input, or the constant Input itself."""
    found = {}
    resolver = TemplateResolver(template)
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event_name, event in (resource.get("Properties", {}).get("Events") or {}).items():
            if event.get("Type") != "Schedule":
                continue
            properties = event.get("Properties", {})
            given_schedule = properties.get("Schedule")
            expression = str(resolver.resolve(given_schedule))
            origin = (
                f"parameter {given_schedule['Ref']}'s default"
                if isinstance(given_schedule, dict) and "Ref" in given_schedule
                else "set in template.yaml"
            )
            given = properties.get("Input")
            trigger = "schedule" if given is None else "input:" + json.dumps(json.loads(given), sort_keys=True)
            found[(logical_id, trigger)] = {
                "function": logical_id,
                "event": event_name,
                "expression": expression,
                "origin": origin,
                "interval_seconds": rate_seconds(expression),
            }
    return found


def did_work(run: dict[str, Any], number: str) -> bool:
    """Whether an invocation did any job's work: a DynamoDB write, a call to Runware, an S3 PUT or
    COPY, or a completion event. A scheduled run that did none of these only looked."""
    if any(str(write["invocation"]) == number for write in run["writes"]):
        return True
    if any(str(r["invocation"]) == number and r["kind"] == "runware" for r in run["http"]):
        return True
    if any(str(c["invocation"]) == number and c["operation"] in ("PutObject", "CopyObject") for c in run["s3"]):
        return True
    return any(str(event["invocation"]) == number for event in run["events"])


def subset(run: dict[str, Any], numbers: set[str], *, jobs: int, uploads: int) -> dict[str, Any]:
    """The part of a run that the invocations `numbers` made ("0": outside any handler)."""

    def mine(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [record for record in records if str(record["invocation"]) in numbers]

    calls: Counter[str] = Counter()
    by_function: dict[str, Counter[str]] = {}
    for number in numbers:
        made = {
            call: count
            for call, count in run["calls_by_invocation"].get(number, {}).items()
            if number != str(OUTSIDE_HANDLERS) or not call.startswith(UNBILLED_OUTSIDE_HANDLERS)
        }
        calls.update(made)
        function = run["invocations"].get(number, {}).get("function", "(not in a handler's thread)")
        by_function.setdefault(function, Counter()).update(made)
    log_bytes = sum(run["log_by_invocation"].get(number, [0, 0])[0] for number in numbers)
    log_lines = sum(run["log_by_invocation"].get(number, [0, 0])[1] for number in numbers)
    return {
        **run,
        "jobs": jobs,
        "uploads": uploads,
        "calls": dict(calls),
        "calls_by_function": {name: dict(made) for name, made in by_function.items()},
        "writes": mine(run["writes"]),
        "reads": mine(run["reads"]),
        "s3": mine(run["s3"]),
        "sqs": mine(run["sqs"]),
        "http": mine(run["http"]),
        "events": mine(run["events"]),
        "events_entries": sum(event["entries"] for event in mine(run["events"])),
        "invocations_ms": {
            function: kept
            for function, samples in run["invocations_ms"].items()
            if (kept := [sample for sample in samples if str(sample["invocation"]) in numbers])
        },
        "log_bytes": log_bytes,
        "log_lines": log_lines,
        "log_by_invocation": {n: counted for n, counted in run["log_by_invocation"].items() if n in numbers},
    }


def split_run(run: dict[str, Any], template: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run's per-image part, and each schedule's quiet runs.

    Per image: every invocation an image caused (an SQS batch, a webhook, a recovery check), what the
    stack's stand-ins did outside handlers (queue pollers' receives and deletes; S3's and Runware's
    requests), and every scheduled run that did a job's work (`did_work`: in the design without
    recovery checks, the sweep finishes the jobs whose webhook was lost). A scheduled run that only
    looked costs the same whatever the volume: its schedule's fixed cost, not the images'.
    """
    found = schedules(template)
    per_image = {str(OUTSIDE_HANDLERS)}
    quiet: dict[tuple[str, str], set[str]] = {key: set() for key in found}
    busy: Counter[tuple[str, str]] = Counter()
    for number, invocation in run["invocations"].items():
        key = (invocation["function"], invocation["trigger"])
        if key not in found:
            per_image.add(number)
        elif did_work(run, number):
            per_image.add(number)
            busy[key] += 1
        else:
            quiet[key].add(number)
    scheduled = []
    for key, schedule in found.items():
        numbers = quiet[key]
        scheduled.append(
            {
                **schedule,
                "quiet_runs": len(numbers),
                "busy_runs": busy[key],
                "run": subset(run, numbers, jobs=len(numbers), uploads=0) if numbers else None,
            }
        )
    return subset(run, per_image, jobs=run["jobs"], uploads=run["uploads"]), scheduled
