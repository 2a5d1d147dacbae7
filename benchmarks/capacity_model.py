"""The capacity model of one run: what AWS bills per job, from the requests the run recorded.

DynamoDB units from the items' real sizes and the indexes of that tree's template.yaml
(benchmarks.dynamodb_billing), since moto does not bill; Lambda time modelled (the functions share
one process here); every other line from its requests and list prices (benchmarks.capacity_figures).
The same model prices one run of a schedule (`fixed_cost`), and a month of them.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterator
from typing import Any

from benchmarks import capacity_figures as figures
from benchmarks.capacity_limits import TARGET_JOBS_PER_SECOND
from benchmarks.dynamodb_billing import IndexDefinition, WriteCost, indexes_of, item_size, read_units, write_cost
from local.template import TemplateResolver

# Round trips added to each AWS call for the durations in AWS (as benchmarks.suites, AWS's
# documented typical latencies); Runware's answer to a submission is not documented: assumed 1 s.
AWS_ROUND_TRIP_SECONDS = {"s3": 0.020, "dynamodb": 0.005}
OTHER_ROUND_TRIP_SECONDS = 0.010
RUNWARE_ANSWER_SECONDS = 1.0
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


# ---- the model of one run ---------------------------------------------------------------------------


def item_write_costs(write: dict[str, Any], tables: dict[str, list[IndexDefinition]]) -> Iterator[WriteCost]:
    """What DynamoDB bills for each item of one recorded write request."""
    for item in write["items"]:
        yield write_cost(
            item["before"],
            item["after"],
            indexes_for(item["table"], tables),
            transactional=write["transactional"],
            condition_failed=item["failed"],
        )


def dynamodb_units(run: dict[str, Any], tables: dict[str, list[IndexDefinition]]) -> dict[str, Any]:
    table_writes: Counter[str] = Counter()
    index_writes: Counter[str] = Counter()
    partition_writes: Counter[tuple[str, str]] = Counter()
    for write in run["writes"]:
        for cost in item_write_costs(write, tables):
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


def full_batch_sqs_requests(run: dict[str, Any]) -> float:
    """SQS's billed requests for this run's messages as they go at volume, where Lambda's pollers
    receive full batches and batch requests are full: each ReceiveMessage that brought messages, and
    each batch request, counted as its messages or entries over SQS_BATCH_LIMIT; single-message
    requests and S3's notifications (one SendMessage per upload) as they are. Empty receives are a
    cost per hour whatever the volume, left out as in the measured count."""
    batch = figures.SQS_BATCH_LIMIT.value
    requests = float(run["uploads"])
    for request in run["sqs"]:
        if request["operation"] == "ReceiveMessage":
            requests += (request["received"] or 0) / batch
        elif request["entries"] is not None:
            requests += request["entries"] / batch
        else:
            requests += 1
    return requests


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
    at_volume = traces_per_invocation is None  # the per-image model, at TARGET_JOBS_PER_SECOND
    if at_volume:
        billed_sqs = full_batch_sqs_requests(run)

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
    measured_sqs = sum(count for name, count in sqs_requests.items() if name != "ReceiveMessage (empty)")
    lines.append(
        (
            f"SQS requests (full batches, as at {TARGET_JOBS_PER_SECOND:,.0f} images/s)"
            if at_volume
            else "SQS requests",
            1000 * billed_sqs * per_job * figures.SQS_REQUEST_PRICE.value,
            f"{billed_sqs * per_job:.2f} requests/job"
            + (f" ({measured_sqs * per_job:.2f} in this run)" if at_volume else ""),
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
    measured_secret_calls = secret_calls
    if at_volume:
        # Each warm container reads the secret once per cache period; at a steady rate the warm
        # containers number the rate times the seconds each image keeps a function busy (Little's law).
        busy_seconds = sum(f["billed_ms"] for f in functions.values()) / 1000
        secret_calls = busy_seconds / figures.SECRET_CACHE_SECONDS.value
    lines.append(
        (
            f"Secrets Manager API calls (each warm container's, as at {TARGET_JOBS_PER_SECOND:,.0f} images/s)"
            if at_volume
            else "Secrets Manager API calls",
            1000 * secret_calls * per_job * figures.SECRETS_CALL_PRICE.value,
            f"{secret_calls * per_job:.4f}/job"
            + (f" ({measured_secret_calls * per_job:.3f} in this run)" if at_volume else ""),
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
