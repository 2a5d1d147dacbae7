"""The events the submit function receives: SQS batches from the ingestion queue."""

from __future__ import annotations

import hashlib
import json
from typing import Any

# The ingestion queue the unit tests' moto world holds (tests/conftest.py).
INGEST_QUEUE_ARN = "arn:aws:sqs:eu-west-1:123456789012:test-ingest"


def sqs_batch(*bodies: dict[str, Any] | str) -> dict[str, Any]:
    """The event Lambda's event source mapping gives the function for these message bodies."""
    records = []
    for index, body in enumerate(bodies):
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
        records.append(
            {
                "messageId": f"00000000-0000-4000-8000-{index:012d}",
                "receiptHandle": f"handle-{index}",
                "body": text,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1778751379433"},
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(text.encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": INGEST_QUEUE_ARN,
                "awsRegion": "eu-west-1",
            }
        )
    return {"Records": records}


def queued(*records: dict[str, Any]) -> dict[str, Any]:
    """The batch for these S3 records as the ingestion queue delivers them: S3 sends each object's
    notification as its own message, one record in each."""
    return sqs_batch(*({"Records": [record]} for record in records))


def message_id(batch: dict[str, Any], index: int) -> str:
    return str(batch["Records"][index]["messageId"])


def register_ingest_mapping(function_name: str, queue_arn: str = INGEST_QUEUE_ARN) -> str:
    """The function and its mapping on the ingestion queue in moto's Lambda (inside mock_aws), as
    the deployed stack has them; moto's own invoker is taken off the queue. The mapping's UUID."""
    import boto3

    from local.event_source_mapping import MappingSettings, register_mapping

    region = queue_arn.split(":")[3]
    settings = MappingSettings(
        queue_url="",
        queue_arn=queue_arn,
        batch_size=10,
        batching_window_seconds=0,
        maximum_concurrency=2,
        report_batch_item_failures=True,
        region=region,
    )
    return register_mapping(
        boto3.client("lambda", region_name=region), boto3.client("iam", region_name=region), function_name, settings
    )


def mapping_state(uuid: str, region: str = "eu-west-1") -> str:
    import boto3

    return str(boto3.client("lambda", region_name=region).get_event_source_mapping(UUID=uuid)["State"])
