"""The capacity model's ceilings: limit per second over uses per job, and the lowest one binds."""

from __future__ import annotations

import math
from typing import Any

from benchmarks.capacity_limits import binding, ceilings, scaled_parameters


def per_job(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "dynamodb": {
            "write_units_per_job": {"table": 4.0, "byStatus": 6.0},
            "partition_writes_per_job": {"byStatus = CLAIMED": 2.0, "byStatus = SUBMITTED": 4.0},
            "partition_reads_per_job": {},
            "write_total_per_job": 10.0,
        },
        "concurrency_seconds_per_job": 0.5,
        # Five submits at once, each busy 0.2 s per job (2 s for a batch of 10).
        "consumers": {
            "SubmitFunction": {
                "parameter": "SubmitMaximumConcurrency",
                "value": 5.0,
                "concurrency_seconds_per_job": 0.2,
            }
        },
        "sqs_per_job": {"ReceiveMessage (with messages)": 0.1},
        "http_per_job": {"webhook": 1.0, "runware": 0.1},
        "calls_per_job": {"events:PutEvents": 1.0, "secretsmanager:GetSecretValue": 0.01},
        "s3_prefix_per_job": {"PUT out/staging/": 2.0, "GET in/inbox/": 1.0},
    }
    data.update(overrides)
    return data


PARAMETERS = {"SubmitMaximumConcurrency": 5.0, "WebhookThrottlingRateLimit": 20.0, "RunwareRequestsPerSecond": 0.0}


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["resource"]: row for row in rows}


def test_each_ceiling_is_the_limit_over_the_uses_per_job():
    rows = by_name(ceilings(per_job(), PARAMETERS))
    # Only the hottest key value of an index is a row: 1,000 units a second over 4 per job.
    assert rows["DynamoDB index partition byStatus = SUBMITTED, writes"]["ceiling"] == 250
    assert "DynamoDB index partition byStatus = CLAIMED, writes" not in rows
    assert rows["Lambda account concurrency"]["ceiling"] == 2000
    assert rows["SubmitFunction MaximumConcurrency (SubmitMaximumConcurrency)"]["ceiling"] == 25
    assert rows["Webhook route throttle (WebhookThrottlingRateLimit)"]["ceiling"] == 20
    assert rows["S3 PUT/COPY/DELETE on out/staging/"]["ceiling"] == 1750
    assert math.isinf(rows["SQS standard queues"]["ceiling"])
    assert math.isinf(rows["Runware requests (RunwareRequestsPerSecond)"]["ceiling"])  # not set


def test_the_lowest_ceiling_binds_and_aws_limits_can_be_told_from_parameters():
    rows = ceilings(per_job(), PARAMETERS)
    assert binding(rows)["resource"] == "Webhook route throttle (WebhookThrottlingRateLimit)"
    assert binding(rows, "aws")["resource"] == "DynamoDB index partition byStatus = SUBMITTED, writes"


def test_scaled_parameters_let_the_target_through_with_headroom():
    data = per_job()
    scaled = {**PARAMETERS, **scaled_parameters(data, target=1000)}
    rows = by_name(ceilings(data, scaled))
    for name in (
        "SubmitFunction MaximumConcurrency (SubmitMaximumConcurrency)",
        "Webhook route throttle (WebhookThrottlingRateLimit)",
        "Runware requests (RunwareRequestsPerSecond)",
    ):
        assert rows[name]["ceiling"] >= 1000


def test_the_model_reads_the_indexes_the_template_deploys_with_its_defaults() -> None:
    from benchmarks.capacity import table_indexes
    from local.template import load_template

    template = load_template()
    indexes = table_indexes(template)
    assert [index.name for index in indexes["JobsTable"]] == ["openJobs"], "the status index only while migrating"
    migrating = {**template, "Parameters": {**template["Parameters"]}}
    migrating["Parameters"]["StatusIndexMigration"] = {
        **template["Parameters"]["StatusIndexMigration"],
        "Default": "true",
    }
    assert [index.name for index in table_indexes(migrating)["JobsTable"]] == ["openJobs", "jobsByStatus"]
