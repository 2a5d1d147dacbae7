"""The capacity and cost model, measured: this tree's design beside the design before it, same run.

For each design, benchmarks/capacity_run.py runs N jobs through the local stack in a process of its
own (the baseline with PYTHONPATH at a copy of BASELINE_COMMIT) and records every request. Here the
requests become (1) what AWS bills per 1,000 images, by line, from list prices, and (2) the ceiling
in jobs per second that each limit allows, with default parameters and with parameters scaled for
a target rate; the lowest ceiling binds. DynamoDB units are computed from the items' real sizes and
the indexes of that tree's template.yaml (benchmarks.dynamodb_billing), since moto does not bill.
"""

from __future__ import annotations

import io
import json
import math
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks import capacity_figures as figures
from benchmarks.capacity_limits import TARGET_JOBS_PER_SECOND
from benchmarks.capacity_recorder import OUTSIDE_HANDLERS
from benchmarks.dynamodb_billing import IndexDefinition, indexes_of, item_size, read_units, write_cost, write_units
from benchmarks.probe import RESULT_PREFIX
from benchmarks.services import ROOT
from local.template import TemplateResolver, load_template

# The design before the open-jobs index, the recovery queue and single conditional writes: the
# last commit with the jobsByStatus index (status, createdAt; projection ALL), the 5-minute
# oldest-first reconcile sweep and TransactWriteItems for a batch's claims and moves.
BASELINE_COMMIT = "a6b0f43"

RUN_SCRIPT = Path(__file__).resolve().parent / "capacity_run.py"
# Round trips added to each AWS call for the durations in AWS (as benchmarks.suites, AWS's
# documented typical latencies); Runware's answer to a submission is not documented: assumed 1 s.
AWS_ROUND_TRIP_SECONDS = {"s3": 0.020, "dynamodb": 0.005}
OTHER_ROUND_TRIP_SECONDS = 0.010
RUNWARE_ANSWER_SECONDS = 1.0
# The local stack looks for jobs without a webhook after 20 s; a loaded machine delivers some webhooks
# later than that, and recovery would then count work that AWS (after 600 s) never does. After 60 s,
# the jobs recovered are those whose webhook was dropped. A parameter a tree does not have is ignored.
RECOVERY_OVERRIDES = {"ReconcileAfterSeconds": "60"}
# Priced as "PUT, COPY, POST, LIST requests" (Amazon S3 pricing): LIST with the writes.
S3_PUT_CLASS = {
    "PutObject",
    "CopyObject",
    "PostObject",
    "ListObjectsV2",
    "ListObjects",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
}
S3_FREE = {"DeleteObject", "DeleteObjects", "AbortMultipartUpload"}
# A month of scheduled runs: 730 hours, the month AWS's pricing pages compute their examples with.
HOURS_PER_MONTH = 730
# Requests made outside any handler whose service is not billed per request: the stand-ins of
# Lambda's queue pollers read their mapping's state (lambda:GetEventSourceMapping) to know whether
# to deliver; in AWS, Lambda's own pollers know it without a request on the account.
UNBILLED_OUTSIDE_HANDLERS = ("lambda:",)


# ---- running --------------------------------------------------------------------------------------


def run_tree(tree: Path, spec: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    env = {"PYTHONPATH": f"{tree}:{tree / 'layers' / 'common'}", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    completed = subprocess.run(
        [sys.executable, str(RUN_SCRIPT)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=tree,
        env=env,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"capacity run in {tree} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX) :])
    return result


def baseline_tree(into: Path) -> Path | None:
    """A copy of BASELINE_COMMIT's files (git archive), or None without that history (a shallow clone)."""
    found = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{BASELINE_COMMIT}^{{commit}}"], capture_output=True, check=False
    )
    if found.returncode != 0:
        return None
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE_COMMIT], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def measure(jobs: int, drop_webhook_rate: float, batches: int, progress: Any = print) -> dict[str, Any]:
    jobs_spec = {
        "mode": "jobs",
        "jobs": jobs,
        "drop_webhook_rate": drop_webhook_rate,
        "parameter_overrides": RECOVERY_OVERRIDES,
    }
    batches_spec = {
        "mode": "batches",
        "batches": batches,
        "round_trip_ms": {k: v * 1000 for k, v in AWS_ROUND_TRIP_SECONDS.items()},
    }
    designs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="capacity-baseline-") as folder:
        trees: dict[str, Path | None] = {"this tree": ROOT, f"before ({BASELINE_COMMIT})": baseline_tree(Path(folder))}
        for name, tree in trees.items():
            if tree is None:
                continue
            run = run_tree(tree, jobs_spec)
            progress(f"capacity: {name}: {jobs} jobs in {run['wall_seconds']:.0f} s ({run['statuses']})")
            batch_run = run_tree(tree, batches_spec)
            progress(f"capacity: {name}: {len(batch_run['samples'])} submit batches of {batch_run['batch_size']}")
            template = load_template(tree / "template.yaml")
            batches = batch_model(batch_run, template)
            per_image, scheduled = split_run(run, template)
            designs[name] = {
                "model": model(per_image, template, batches["billed_ms"]["median"], batches["batch_size"]),
                "scheduled": [
                    fixed_cost(schedule, template, batches["billed_ms"]["median"], batches["batch_size"])
                    for schedule in scheduled
                ],
                "batches": batches,
                "statuses": run["statuses"],
            }
    return {
        "jobs": jobs,
        "drop_webhook_rate": drop_webhook_rate,
        "baseline_commit": BASELINE_COMMIT,
        "baseline_available": len(designs) == 2,
        "designs": designs,
    }


# ---- the template ----------------------------------------------------------------------------------


def parameter(template: dict[str, Any], name: str, default: float = 0.0) -> float:
    spec = template.get("Parameters", {}).get(name)
    return float(spec["Default"]) if spec and "Default" in spec else default


def table_indexes(template: dict[str, Any]) -> dict[str, list[IndexDefinition]]:
    """Logical id of each table -> its global secondary indexes, as the template deploys them with its
    parameters' defaults (an index kept only under a condition, such as the status index during a
    migration, is there only when the condition holds)."""
    resolver = TemplateResolver(template)
    tables = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        properties = dict(resource.get("Properties", {}))
        properties["GlobalSecondaryIndexes"] = resolver.resolve(properties.get("GlobalSecondaryIndexes") or [])
        tables[logical_id] = indexes_of(properties)
    return tables


def indexes_for(table_name: str, tables: dict[str, list[IndexDefinition]]) -> list[IndexDefinition]:
    """The indexes of a table by its physical name (the local stack ends it with the logical id)."""
    for logical_id, indexes in tables.items():
        if table_name.endswith(logical_id) or table_name == logical_id:
            return indexes
    return []


def queue_consumers(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Functions fed by an SQS event source mapping whose MaximumConcurrency is set: the parameter
    that sets it (None for a literal) and its value with the template's defaults."""
    consumers = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") != "SQS":
                continue
            maximum = event.get("Properties", {}).get("ScalingConfig", {}).get("MaximumConcurrency")
            if isinstance(maximum, dict) and "Ref" in maximum:
                consumers[logical_id] = {"parameter": maximum["Ref"], "value": parameter(template, maximum["Ref"])}
            elif isinstance(maximum, int | float):
                consumers[logical_id] = {"parameter": None, "value": float(maximum)}
    return consumers


def memory_gb(template: dict[str, Any], logical_id: str) -> float:
    globals_ = template.get("Globals", {}).get("Function", {})
    properties = template.get("Resources", {}).get(logical_id, {}).get("Properties", {})
    return float(properties.get("MemorySize", globals_.get("MemorySize", 128))) / 1024


# ---- what caused each request: an image, or a schedule -------------------------------------------------


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


def _busy(run: dict[str, Any], number: str) -> bool:
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
    requests), and every scheduled run that did a job's work (`_busy`: in the design without
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
        elif _busy(run, number):
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


def fixed_cost(
    schedule: dict[str, Any], template: dict[str, Any], submit_batch_ms: float, batch_size: int
) -> dict[str, Any]:
    """What one quiet run of a schedule costs, by line, and a month of them at the template's default
    rate; the volume at which that month adds a cent per 1,000 images."""
    result = {key: value for key, value in schedule.items() if key != "run"}
    if schedule["run"] is None:
        return {**result, "per_run": None, "per_month": None, "images_per_month_for_a_cent": None}
    # Each run is a trace of its own: one run a minute or less never gets past the reservoir of the
    # default sampling rule (the first request each second is traced).
    per_run = model(schedule["run"], template, submit_batch_ms, batch_size, traces_per_invocation=1.0)
    runs_per_month = HOURS_PER_MONTH * 3600 / schedule["interval_seconds"] if schedule["interval_seconds"] else None
    usd_per_run = per_run["aws_per_1000"] / 1000
    per_month = usd_per_run * runs_per_month if runs_per_month else None
    return {
        **result,
        "runs_per_month": runs_per_month,
        "per_run": {
            "usd": usd_per_run,
            "lines": [
                (line, usd / 1000, counted.replace("/job", "/run")) for line, usd, counted in per_run["cost_lines"]
            ],
            "calls": per_run["calls_per_job"],
            "log_bytes": per_run["log_bytes_per_job"],
            "read_units": per_run["dynamodb"]["read_units_per_job"],
        },
        "per_month": per_month,
        # A cent per 1,000 images is $0.00001 per image: the monthly volume over which the month's runs spread to that.
        "images_per_month_for_a_cent": per_month / (0.01 / 1000) if per_month else None,
    }


# ---- the model of one run ---------------------------------------------------------------------------


def dynamodb_units(run: dict[str, Any], tables: dict[str, list[IndexDefinition]]) -> dict[str, Any]:
    table_writes: Counter[str] = Counter()
    index_writes: Counter[str] = Counter()
    partition_writes: Counter[tuple[str, str]] = Counter()
    for write in run["writes"]:
        for item in write["items"]:
            cost = write_cost(
                item["before"],
                item["after"],
                indexes_for(item["table"], tables),
                transactional=write["transactional"],
                condition_failed=item["failed"],
            )
            table_writes["table"] += cost.table_units
            for index_write in cost.index:
                index_writes[index_write.index] += index_write.units
                partition_writes[(index_write.index, index_write.partition)] += index_write.units
    reads: Counter[str] = Counter()
    partition_reads: Counter[tuple[str, str]] = Counter()
    for read in run["reads"]:
        units = read_units(sum(item_size(item) for item in read["items"]), consistent=read["consistent"])
        where = read["index"] or "table"
        reads[where] += units
        if read["index"] and read["items"]:
            definition = next((i for i in indexes_for(read["table"] or "", tables) if i.name == read["index"]), None)
            if definition is not None:
                for partition in {definition.partition(item) for item in read["items"]}:
                    partition_reads[(read["index"], partition)] += units
    return {
        "write_units": {"table": table_writes["table"], **dict(index_writes)},
        "read_units": dict(reads),
        "partition_writes": {f"{index} = {value}": units for (index, value), units in partition_writes.items()},
        "partition_reads": {f"{index} = {value}": units for (index, value), units in partition_reads.items()},
    }


def s3_requests(run: dict[str, Any]) -> dict[str, Any]:
    """Requests by price class and, for the request-rate limits, by class and bucket/prefix."""
    classes: Counter[str] = Counter()
    prefixes: Counter[str] = Counter()
    calls = [(call["operation"], call["bucket"], call["key"]) for call in run["s3"]]
    for request in run["http"]:
        if request["kind"] == "s3":
            operation = {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject"}.get(request["method"], "Other")
            calls.append((f"{operation} (Runware, presigned)", request["bucket"], request["key"]))
    by_operation: Counter[str] = Counter()
    for operation, bucket, key in calls:
        by_operation[operation] += 1
        name = operation.split(" ")[0]
        kind = "PUT" if name in S3_PUT_CLASS else "DELETE" if name in S3_FREE else "GET"
        classes[kind] += 1
        rate_class = "GET" if kind == "GET" else "PUT"  # DELETE counts against the 3,500 per prefix
        prefix = f"{bucket}/{(key or '').split('/')[0]}/"
        prefixes[f"{rate_class} {prefix}"] += 1
    return {"classes": dict(classes), "prefixes": dict(prefixes), "operations": dict(by_operation)}


def aws_seconds(calls: dict[str, int]) -> float:
    """The network time the calls of one invocation add in AWS, made one after another (an upper bound)."""
    total = 0.0
    for call, count in calls.items():
        service = call.split(":")[0]
        total += count * AWS_ROUND_TRIP_SECONDS.get(service, OTHER_ROUND_TRIP_SECONDS)
    return total


def function_times(
    run: dict[str, Any], template: dict[str, Any], submit_batch_ms: float, batch_size: int
) -> dict[str, dict[str, Any]]:
    """Each function's invocations and its billed time in AWS.

    Here every function shares one process with moto and the Runware emulator's image work, so wall
    times are inflated by the machine, not the function. The time in AWS is therefore modelled: the
    submit function's from its own measurement (`submit_batch_ms`: a full batch, AWS's round trips
    added, on a quiet stack) scaled to the batches of this run, plus Runware's answer; the others'
    as the CPU time of their invocation here plus a round trip per AWS call they made (one after
    another: an upper bound).
    """
    functions = {}
    jobs = run["jobs"]
    for logical_id, samples in run["invocations_ms"].items():
        count = len(samples)
        calls = run.get("calls_by_function", {}).get(logical_id, {})
        if logical_id == "SubmitFunction":
            per_invocation = submit_batch_ms * (jobs / max(1, count)) / batch_size + 1000 * RUNWARE_ANSWER_SECONDS
        else:
            cpu = sum(sample["cpu_ms"] for sample in samples) / max(1, count)
            per_invocation = cpu + 1000 * aws_seconds({name: n / max(1, count) for name, n in calls.items()})
        billed = count * math.ceil(per_invocation)
        gb = memory_gb(template, logical_id)
        functions[logical_id] = {
            "invocations": count,
            "billed_ms": billed,
            "ms_in_aws": per_invocation,
            "memory_gb": gb,
            "gb_seconds": billed / 1000 * gb,
            "loopback_wall_median_ms": statistics.median(s["wall_ms"] for s in samples) if samples else 0.0,
            "loopback_cpu_median_ms": statistics.median(s["cpu_ms"] for s in samples) if samples else 0.0,
            "calls_per_invocation": {name: n / max(1, count) for name, n in sorted(calls.items())},
        }
    return functions


def log_sources(run: dict[str, Any], functions: dict[str, dict[str, Any]], webhook_requests: int) -> Counter[str]:
    """CloudWatch Logs bytes by where they come from: each function's own lines (and EMF metrics),
    Lambda's START/END/REPORT lines, and the webhook route's access log."""
    sources: Counter[str] = Counter()
    overhead = figures.LOG_EVENT_OVERHEAD_BYTES.value
    for number, (printed, lines) in run.get("log_by_invocation", {}).items():
        function = run.get("invocations", {}).get(number, {}).get("function", "(outside handlers)")
        sources[f"{function}: its lines and metrics"] += printed + lines * overhead
    invocations = sum(function["invocations"] for function in functions.values())
    sources["Lambda: START, END and REPORT lines"] += invocations * (
        figures.PLATFORM_LOG_BYTES_PER_INVOCATION.value + 3 * overhead
    )
    sources["HTTP API: access log lines"] += webhook_requests * (figures.ACCESS_LOG_BYTES.value + overhead)
    return sources


def traces_per_image(functions: dict[str, dict[str, Any]], jobs: int, rate: float = TARGET_JOBS_PER_SECOND) -> float:
    """X-Ray traces per image at `rate` images per second under the default sampling rule: per
    function, the first invocation each second and 5 % of the others, so a function invoked k
    times per image records 1 + 0.05 (k rate - 1) traces a second (at least one invocation a second)."""
    traced = 0.0
    for function in functions.values():
        per_second = function["invocations"] / jobs * rate
        if per_second > 0:
            traced += min(per_second, 1.0) + figures.TRACE_SAMPLING_RATE.value * max(0.0, per_second - 1.0)
    return traced / rate


def model(
    run: dict[str, Any],
    template: dict[str, Any],
    submit_batch_ms: float,
    batch_size: int,
    *,
    traces_per_invocation: float | None = None,
) -> dict[str, Any]:
    """What one run costs per job and per 1,000 images, and what it uses of each limit.

    X-Ray: at TARGET_JOBS_PER_SECOND under the default sampling rule (`traces_per_image`), or
    `traces_per_invocation` when given (a schedule's runs: each one traced)."""
    jobs = run["jobs"]
    per_job = 1 / jobs
    tables = table_indexes(template)
    dynamodb = dynamodb_units(run, tables)
    s3 = s3_requests(run)
    calls: Counter[str] = Counter(run["calls"])
    http: Counter[str] = Counter(request["kind"] for request in run["http"])
    runware_tasks: Counter[str] = Counter(task for r in run["http"] if r["kind"] == "runware" for task in r["tasks"])
    functions = function_times(run, template, submit_batch_ms, batch_size)
    invocations = sum(f["invocations"] for f in functions.values())

    sqs_requests = Counter[str]()
    for request in run["sqs"]:
        if request["operation"] == "ReceiveMessage":
            sqs_requests["ReceiveMessage (with messages)" if request["received"] else "ReceiveMessage (empty)"] += 1
        else:
            sqs_requests[request["operation"]] += 1
    # S3 sends one message per upload to the ingestion queue (inside moto here, so not a client call).
    sqs_requests["SendMessage (S3 event notification)"] += run["uploads"]
    billed_sqs = sum(count for name, count in sqs_requests.items() if name != "ReceiveMessage (empty)")

    webhook_requests = http["webhook"]
    log_bytes = (
        run["log_bytes"]
        + run["log_lines"] * figures.LOG_EVENT_OVERHEAD_BYTES.value
        + invocations * (figures.PLATFORM_LOG_BYTES_PER_INVOCATION.value + 3 * figures.LOG_EVENT_OVERHEAD_BYTES.value)
        + webhook_requests * (figures.ACCESS_LOG_BYTES.value + figures.LOG_EVENT_OVERHEAD_BYTES.value)
    )
    target_megapixels = int(parameter(template, "TargetMegapixels", 4))
    runware_price = figures.runware_price_per_image(target_megapixels)

    write_total = sum(dynamodb["write_units"].values())
    read_total = sum(dynamodb["read_units"].values())
    lines: list[tuple[str, float, str]] = []  # (line, USD per 1,000 images, what was counted)
    for where, units in dynamodb["write_units"].items():
        name = "DynamoDB writes, table" if where == "table" else f"DynamoDB writes, index {where}"
        lines.append(
            (name, 1000 * units * per_job * figures.WRITE_REQUEST_UNIT_PRICE.value, f"{units * per_job:.2f} WRU/job")
        )
    lines.append(
        (
            "DynamoDB reads",
            1000 * read_total * per_job * figures.READ_REQUEST_UNIT_PRICE.value,
            f"{read_total * per_job:.2f} RRU/job",
        )
    )
    for logical_id, function in sorted(functions.items()):
        lines.append(
            (
                f"Lambda {logical_id} (GB-s)",
                1000 * function["gb_seconds"] * per_job * figures.GB_SECOND_PRICE_ARM.value,
                f"{function['billed_ms'] * per_job:.1f} billed ms/job at {function['memory_gb'] * 1024:.0f} MB",
            )
        )
    lines.append(
        (
            "Lambda requests",
            1000 * invocations * per_job * figures.LAMBDA_REQUEST_PRICE.value,
            f"{invocations * per_job:.2f} invocations/job",
        )
    )
    lines.append(
        (
            "SQS requests",
            1000 * billed_sqs * per_job * figures.SQS_REQUEST_PRICE.value,
            f"{billed_sqs * per_job:.2f} requests/job",
        )
    )
    lines.append(
        (
            "S3 PUT/COPY/LIST requests",
            1000 * s3["classes"].get("PUT", 0) * per_job * figures.S3_PUT_PRICE.value,
            f"{s3['classes'].get('PUT', 0) * per_job:.2f}/job",
        )
    )
    lines.append(
        (
            "S3 GET/HEAD requests",
            1000 * s3["classes"].get("GET", 0) * per_job * figures.S3_GET_PRICE.value,
            f"{s3['classes'].get('GET', 0) * per_job:.2f}/job",
        )
    )
    lines.append(("S3 DELETE requests (free)", 0.0, f"{s3['classes'].get('DELETE', 0) * per_job:.2f}/job"))
    lines.append(
        (
            "HTTP API requests",
            1000 * webhook_requests * per_job * figures.HTTP_API_REQUEST_PRICE.value,
            f"{webhook_requests * per_job:.2f}/job",
        )
    )
    lines.append(
        (
            "EventBridge events",
            1000 * run["events_entries"] * per_job * figures.EVENT_PRICE.value,
            f"{run['events_entries'] * per_job:.2f} entries/job",
        )
    )
    secret_calls = calls["secretsmanager:GetSecretValue"]
    lines.append(
        (
            "Secrets Manager API calls",
            1000 * secret_calls * per_job * figures.SECRETS_CALL_PRICE.value,
            f"{secret_calls * per_job:.3f}/job",
        )
    )
    lines.append(
        (
            "CloudWatch Logs ingestion",
            1000 * log_bytes * per_job * figures.LOG_INGESTION_PRICE.value,
            f"{log_bytes * per_job:,.0f} bytes/job",
        )
    )
    traces = (
        invocations * traces_per_invocation
        if traces_per_invocation is not None
        else jobs * traces_per_image(functions, jobs)
    )
    lines.append(
        (
            "X-Ray traces (default sampling)"
            if traces_per_invocation is not None
            else f"X-Ray traces (default sampling, at {TARGET_JOBS_PER_SECOND:,.0f} images/s)",
            1000 * traces * per_job * figures.TRACE_PRICE.value,
            f"{traces * per_job:.3f} traces/job",
        )
    )
    aws_total = sum(cost for _, cost, _ in lines)

    # Concurrency needed per job per second (Little's law): the seconds each job keeps a function busy.
    concurrency_seconds = sum(f["billed_ms"] for f in functions.values()) / 1000 * per_job
    return {
        "jobs": jobs,
        "wall_seconds": run["wall_seconds"],
        "statuses": run["statuses"],
        "calls_per_job": {name: count * per_job for name, count in sorted(calls.items())},
        "errors": run["errors"],
        "http_per_job": {kind: count * per_job for kind, count in sorted(http.items())},
        "runware_tasks_per_job": {task: count * per_job for task, count in sorted(runware_tasks.items())},
        "sqs_per_job": {name: count * per_job for name, count in sorted(sqs_requests.items())},
        "s3_per_job": {name: count * per_job for name, count in sorted(s3["operations"].items())},
        "s3_prefix_per_job": {name: count * per_job for name, count in s3["prefixes"].items()},
        "dynamodb": {
            "write_units_per_job": {where: units * per_job for where, units in dynamodb["write_units"].items()},
            "read_units_per_job": {where: units * per_job for where, units in dynamodb["read_units"].items()},
            "partition_writes_per_job": {k: v * per_job for k, v in dynamodb["partition_writes"].items()},
            "partition_reads_per_job": {k: v * per_job for k, v in dynamodb["partition_reads"].items()},
            "write_total_per_job": write_total * per_job,
        },
        "functions": functions,
        "concurrency_seconds_per_job": concurrency_seconds,
        # Each queue-fed function's busy seconds per job: its MaximumConcurrency over this is its ceiling.
        "consumers": {
            logical_id: {
                **consumer,
                "concurrency_seconds_per_job": functions.get(logical_id, {}).get("billed_ms", 0) / 1000 * per_job,
            }
            for logical_id, consumer in queue_consumers(template).items()
        },
        "log_bytes_per_job": log_bytes * per_job,
        "log_bytes_by_source_per_job": {
            source: count * per_job for source, count in log_sources(run, functions, webhook_requests).items()
        },
        "traces_per_image_by_rate": {
            str(rate): traces_per_image(functions, jobs, rate) for rate in (1.0, 10.0, TARGET_JOBS_PER_SECOND)
        },
        "cost_lines": lines,
        "aws_per_1000": aws_total,
        "runware_per_1000": 1000 * runware_price.value,
        "target_megapixels": target_megapixels,
        "parameters": {
            name: parameter(template, name)
            for name in (
                *(c["parameter"] for c in queue_consumers(template).values() if c["parameter"]),
                "SubmitReservedConcurrency",
                "WebhookThrottlingRateLimit",
                "WebhookThrottlingBurstLimit",
                "RunwareRequestsPerSecond",
                "SubmitBatchSize",
            )
        },
    }


# ---- conditional writes: transactions against single writes ---------------------------------------


def batch_model(batch_run: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
    tables = table_indexes(template)
    units = Counter[str]()
    kinds = Counter[str]()
    for write in batch_run["units_batch"]["writes"]:
        kinds[write["operation"]] += 1
        for item in write["items"]:
            cost = write_cost(
                item["before"],
                item["after"],
                indexes_for(item["table"], tables),
                transactional=write["transactional"],
                condition_failed=item["failed"],
            )
            units["table"] += cost.table_units
            units["indexes"] += sum(w.units for w in cost.index)
    billed = [sample["billed_ms"] for sample in batch_run["samples"]]
    gb = memory_gb(template, "SubmitFunction")
    median_ms = statistics.median(billed)
    table_cost = units["table"] * figures.WRITE_REQUEST_UNIT_PRICE.value
    time_cost = median_ms / 1000 * gb * figures.GB_SECOND_PRICE_ARM.value
    return {
        "batch_size": batch_run["batch_size"],
        "round_trip_ms": batch_run["round_trip_ms"],
        "requests": dict(kinds),
        "billed_ms": {"median": median_ms, "min": min(billed), "max": max(billed), "n": len(billed)},
        "table_write_units": units["table"],
        "index_write_units": units["indexes"],
        "claim_item_bytes": max(
            (item_size(i["after"]) for w in batch_run["units_batch"]["writes"] for i in w["items"]), default=0
        ),
        "write_units_usd": table_cost,
        "billed_time_usd": time_cost,
        "total_usd": table_cost + time_cost + units["indexes"] * figures.WRITE_REQUEST_UNIT_PRICE.value,
        "statuses": batch_run["statuses"],
        "write_unit_equals_ms": figures.WRITE_REQUEST_UNIT_PRICE.value
        / (gb * figures.GB_SECOND_PRICE_ARM.value)
        * 1000,
        "unit_check": write_units(1024),
    }
