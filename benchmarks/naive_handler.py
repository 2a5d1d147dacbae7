"""Baseline: the obvious integration, where the image passes through the function.

For each record: download the object, send it base64-encoded to Runware with deliveryMethod sync,
wait for the upscale, download the result and put it into the output bucket. Written the way such
a handler usually is, with the same care as ours where it costs nothing: clients created once per
container, the API key read from Secrets Manager once. It keeps no job records, so it does less
bookkeeping than the pipeline; only what it costs in memory, bytes and time is compared.

Configuration comes from the same environment variables the pipeline's functions read.
"""

from __future__ import annotations

import base64
import os
import uuid
from typing import Any
from urllib.parse import unquote_plus

import boto3
import httpx

MODEL_ID = "prunaai:p-image@upscale"

s3 = boto3.client("s3")
secrets = boto3.client("secretsmanager")
http = httpx.Client(timeout=httpx.Timeout(300.0, connect=5.0))
_api_key: str | None = None


def api_key() -> str:
    global _api_key
    if _api_key is None:
        _api_key = secrets.get_secret_value(SecretId=os.environ["RUNWARE_API_KEY_SECRET"])["SecretString"]
    return _api_key


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    results = []
    for record in event["Records"]:
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])
        image = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        task = {
            "taskType": "upscale",
            "taskUUID": str(uuid.uuid4()),
            "model": MODEL_ID,
            "inputs": {"image": base64.b64encode(image).decode("ascii")},
            "targetMegapixels": int(os.environ.get("DEFAULT_TARGET_MEGAPIXELS", "4")),
            "outputType": "URL",
            "outputFormat": "JPG",
            "outputQuality": 95,
            "deliveryMethod": "sync",
            "includeCost": True,
        }
        response = http.post(
            os.environ["RUNWARE_API_URL"], json=[task], headers={"Authorization": f"Bearer {api_key()}"}
        )
        response.raise_for_status()
        result = response.json()["data"][0]
        upscaled = http.get(result["imageURL"])
        upscaled.raise_for_status()
        output_key = f"{os.environ.get('OUTPUT_PREFIX', 'upscaled/')}{key}.{task['taskUUID'][:8]}.jpg"
        s3.put_object(
            Bucket=os.environ["OUTPUT_BUCKET"], Key=output_key, Body=upscaled.content, ContentType="image/jpeg"
        )
        results.append({"sourceKey": key, "outputKey": output_key, "cost": result.get("cost")})
    return {"results": results}
