"""Fixtures shared by the unit tests: AWS emulated in-process by moto, configured like a deployment."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from upscaler.settings import Settings

REGION = "eu-west-1"
INBOX_BUCKET = "test-inbox"
OUTPUT_BUCKET = "test-output"
JOBS_TABLE = "test-jobs"
WEBHOOK_URL = "https://hooks.example.test/webhook"
RUNWARE_URL = "https://runware.example.test/v1"
RUNWARE_KEY = "test-runware-key"
WEBHOOK_KEY = "test-webhook-token-key"
INGEST_QUEUE = "test-ingest"
DEAD_LETTER_QUEUE = "test-ingest-dlq"
ACCOUNT = "123456789012"
SUBMIT_FUNCTION = "test-SubmitFunction"

ENVIRONMENT = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "JOBS_TABLE": JOBS_TABLE,
    "OUTPUT_BUCKET": OUTPUT_BUCKET,
    "INBOX_PREFIX": "inbox/",
    "OUTPUT_PREFIX": "upscaled/",
    "WEBHOOK_URL": WEBHOOK_URL,
    "RUNWARE_API_URL": RUNWARE_URL,
    "RUNWARE_API_KEY_SECRET": "runware-api-key",
    "WEBHOOK_TOKEN_SECRET": "webhook-token-key",
    "POWERTOOLS_SERVICE_NAME": "upscale-test",
    "POWERTOOLS_METRICS_NAMESPACE": "S3UpscaleTest",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_DEV": "false",
    "INGEST_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{INGEST_QUEUE}",
    "DEAD_LETTER_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{DEAD_LETTER_QUEUE}",
    "SUBMIT_FUNCTION_NAME": SUBMIT_FUNCTION,
    "INGEST_QUEUE_ARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{INGEST_QUEUE}",
}


def create_jobs_table(dynamodb: Any, name: str = JOBS_TABLE, *, with_status_index: bool = False) -> None:
    """The jobs table as template.yaml declares it: key jobId, the sparse openJobs index (openShard,
    openSince; keys and status projected); with_status_index adds the jobsByStatus index of earlier
    versions, as a stack migrating from it has (StatusIndexMigration=true)."""
    attributes = [
        {"AttributeName": "jobId", "AttributeType": "S"},
        {"AttributeName": "openShard", "AttributeType": "N"},
        {"AttributeName": "openSince", "AttributeType": "S"},
    ]
    indexes: list[dict[str, Any]] = [
        {
            "IndexName": "openJobs",
            "KeySchema": [
                {"AttributeName": "openShard", "KeyType": "HASH"},
                {"AttributeName": "openSince", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status"]},
        }
    ]
    if with_status_index:
        attributes += [
            {"AttributeName": "status", "AttributeType": "S"},
            {"AttributeName": "createdAt", "AttributeType": "S"},
        ]
        indexes.append(
            {
                "IndexName": "jobsByStatus",
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "createdAt", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        )
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=attributes,
        KeySchema=[{"AttributeName": "jobId", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=indexes,
    )


@dataclass
class AwsFixture:
    s3: Any
    dynamodb: Any
    secrets: Any
    settings: Settings


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return dict(ENVIRONMENT)


@pytest.fixture
def aws(environment: dict[str, str]) -> Iterator[AwsFixture]:
    """Buckets (inbox versioned), jobs table and both secrets, in moto's in-process AWS."""
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (INBOX_BUCKET, OUTPUT_BUCKET):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_versioning(Bucket=INBOX_BUCKET, VersioningConfiguration={"Status": "Enabled"})
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_jobs_table(dynamodb)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        secrets.create_secret(Name="runware-api-key", SecretString=RUNWARE_KEY)
        secrets.create_secret(Name="webhook-token-key", SecretString=WEBHOOK_KEY)
        sqs = boto3.client("sqs", region_name=REGION)
        for queue in (INGEST_QUEUE, DEAD_LETTER_QUEUE):  # where submit hands messages back, or dead-letters them
            sqs.create_queue(QueueName=queue)
        # Powertools caches secrets per process; a fresh moto world needs a fresh cache.
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
        yield AwsFixture(s3, dynamodb, secrets, Settings.from_environment())
        parameters.clear_caches()
