"""The events the submit function receives: SQS batches from the ingestion queue."""

from __future__ import annotations

import hashlib
import json
from typing import Any


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
                "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:s3-upscale-IngestQueue-abc",
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
