"""Cold-start baseline: a handler that imports boto3 and creates the AWS clients the pipeline's
functions create at import (S3 and DynamoDB, for each of the three), and nothing else."""

from __future__ import annotations

from typing import Any

import boto3

s3 = boto3.client("s3")
dynamodb = boto3.client("dynamodb")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {}
