"""The ceilings of the capacity model: the jobs per second each limit allows, and which one binds.

A limit of L (units per second) on a resource that each job uses u times allows L / u jobs per
second. AWS's limits come from benchmarks.capacity_figures; the parameters a user sets come from the
template (defaults) or from `scaled_parameters` (the values docs/capacity.md gives for a target rate).
"""

from __future__ import annotations

import math
from typing import Any

from benchmarks import capacity_figures as figures

TARGET_JOBS_PER_SECOND = 1000.0
HEADROOM = 1.2  # scaled parameters allow this much more than the target


def scaled_parameters(data: dict[str, Any], target: float = TARGET_JOBS_PER_SECOND) -> dict[str, float]:
    """The parameters a user sets for `target` jobs per second, with HEADROOM (docs/capacity.md)."""
    webhook_per_job = data["http_per_job"].get("webhook", 1.0)
    runware_per_job = data["http_per_job"].get("runware", 0.1)
    scaled = {
        # An event source mapping's MaximumConcurrency is 2 to 1,000.
        consumer["parameter"]: min(
            1000.0, max(2.0, math.ceil(HEADROOM * target * consumer["concurrency_seconds_per_job"]))
        )
        for consumer in data["consumers"].values()
        if consumer["parameter"]
    }
    return {
        **scaled,
        "WebhookThrottlingRateLimit": math.ceil(HEADROOM * target * webhook_per_job),
        "WebhookThrottlingBurstLimit": 5000.0,
        "RunwareRequestsPerSecond": math.ceil(HEADROOM * target * runware_per_job),
    }


def ceilings(data: dict[str, Any], parameters: dict[str, float]) -> list[dict[str, Any]]:
    """(resource, per job, limit, jobs/s it allows, kind) for each limit; kind: aws or parameter."""
    rows: list[dict[str, Any]] = []

    def add(resource: str, per_job: float, limit: float, unit: str, source: str, kind: str = "aws") -> None:
        ceiling = math.inf if per_job <= 0 else limit / per_job
        rows.append(
            {
                "resource": resource,
                "per_job": per_job,
                "limit": limit,
                "unit": unit,
                "ceiling": ceiling,
                "source": source,
                "kind": kind,
            }
        )

    dynamodb = data["dynamodb"]
    for where, units in dynamodb["write_units_per_job"].items():
        if where == "table":
            add(
                "DynamoDB table writes",
                units,
                figures.TABLE_WRITE_UNITS.value,
                "WRU/s per table",
                figures.TABLE_WRITE_UNITS.cite(),
            )
        else:
            add(
                f"DynamoDB index {where} writes",
                units,
                figures.TABLE_WRITE_UNITS.value,
                "WRU/s per index",
                figures.TABLE_WRITE_UNITS.cite(),
            )
    hottest = sorted(dynamodb["partition_writes_per_job"].items(), key=lambda kv: -kv[1])[:1]
    for partition, units in hottest:
        add(
            f"DynamoDB index partition {partition}, writes",
            units,
            figures.PARTITION_WRITE_UNITS.value,
            "WCU/s per partition",
            figures.PARTITION_WRITE_UNITS.cite(),
        )
    hottest_reads = sorted(dynamodb["partition_reads_per_job"].items(), key=lambda kv: -kv[1])[:1]
    for partition, units in hottest_reads:
        add(
            f"DynamoDB index partition {partition}, reads",
            units,
            figures.PARTITION_READ_UNITS.value,
            "RCU/s per partition",
            figures.PARTITION_READ_UNITS.cite(),
        )
    add(
        "DynamoDB new on-demand table, before warm throughput",
        dynamodb["write_total_per_job"],
        figures.NEW_TABLE_WRITE_UNITS.value,
        "WRU/s",
        figures.NEW_TABLE_WRITE_UNITS.cite(),
    )
    add(
        "Lambda account concurrency",
        data["concurrency_seconds_per_job"],
        figures.ACCOUNT_CONCURRENCY.value,
        "concurrent executions",
        figures.ACCOUNT_CONCURRENCY.cite(),
    )
    for logical_id, consumer in data["consumers"].items():
        name = consumer["parameter"]
        add(
            f"{logical_id} MaximumConcurrency" + (f" ({name})" if name else ""),
            consumer["concurrency_seconds_per_job"],
            parameters.get(name, consumer["value"]) if name else consumer["value"],
            "concurrent invocations",
            "template parameter" if name else "template",
            "parameter",
        )
    submit = data["consumers"].get("SubmitFunction")
    if submit and parameters.get("SubmitReservedConcurrency"):
        add(
            "SubmitFunction reserved concurrency (SubmitReservedConcurrency)",
            submit["concurrency_seconds_per_job"],
            parameters["SubmitReservedConcurrency"],
            "concurrent invocations",
            "template parameter",
            "parameter",
        )
    add(
        "SQS standard queues",
        data["sqs_per_job"].get("ReceiveMessage (with messages)", 0.1),
        figures.SQS_THROUGHPUT.value,
        "API calls/s",
        figures.SQS_THROUGHPUT.cite(),
    )
    webhook = data["http_per_job"].get("webhook", 0.0)
    add(
        "HTTP API account throttle",
        webhook,
        figures.HTTP_API_ACCOUNT_RATE.value,
        "requests/s",
        figures.HTTP_API_ACCOUNT_RATE.cite(),
    )
    add(
        "Webhook route throttle (WebhookThrottlingRateLimit)",
        webhook,
        parameters["WebhookThrottlingRateLimit"],
        "requests/s",
        "template parameter",
        "parameter",
    )
    add(
        "EventBridge PutEvents",
        data["calls_per_job"].get("events:PutEvents", 0.0),
        figures.PUT_EVENTS_RATE.value,
        "requests/s",
        figures.PUT_EVENTS_RATE.cite(),
    )
    add(
        "Secrets Manager GetSecretValue",
        data["calls_per_job"].get("secretsmanager:GetSecretValue", 0.0),
        figures.GET_SECRET_VALUE_RATE.value,
        "requests/s",
        figures.GET_SECRET_VALUE_RATE.cite(),
    )
    for prefix, count in sorted(data["s3_prefix_per_job"].items()):
        limit = figures.S3_PREFIX_READS if prefix.startswith("GET") else figures.S3_PREFIX_WRITES
        label = prefix.split(" ", 1)[1]
        kind_label = "GET/HEAD" if prefix.startswith("GET") else "PUT/COPY/DELETE"
        add(f"S3 {kind_label} on {label}", count, limit.value, "requests/s per prefix", limit.cite())
    runware = data["http_per_job"].get("runware", 0.0)
    rate = parameters.get("RunwareRequestsPerSecond", 0.0)
    if rate > 0:
        add(
            "Runware requests (RunwareRequestsPerSecond)",
            runware,
            rate,
            "requests/s",
            "template parameter: your Runware account's rate",
            "parameter",
        )
    else:
        rows.append(
            {
                "resource": "Runware requests (RunwareRequestsPerSecond)",
                "per_job": runware,
                "limit": math.nan,
                "unit": "requests/s (not set: Runware documents no rate)",
                "ceiling": math.inf,
                "source": "template parameter: your Runware account's rate",
                "kind": "parameter",
            }
        )
    return rows


def binding(rows: list[dict[str, Any]], kind: str | None = None) -> dict[str, Any]:
    chosen = [row for row in rows if kind is None or row["kind"] == kind]
    return min(chosen, key=lambda row: row["ceiling"])
