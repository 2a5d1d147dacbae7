"""The existing-bucket path, in a stack of its own (run as a child process by test_ingestion.py).

The stack is started with ExistingBucketName: it creates no inbox bucket, the bucket sends
EventBridge events, the template's rule routes them to the ingestion queue. Prints one JSON line:
the scenario's report row, the event shapes the submit function was given, and the buckets.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import asdict
from typing import Any

from local.stack import LocalStack, StackConfig
from tests.reliability.harness import (
    EMULATOR_WORKERS,
    JOB_MAX_AGE_SECONDS,
    RECONCILE_AFTER_SECONDS,
    Drop,
    check,
    drop_all,
    image_bytes,
    scaled,
    settle,
)

EXISTING_BUCKET = "my-existing-photos"
RESULT_PREFIX = "EXISTING-BUCKET-RESULT "


def existing_bucket_config(seed: int) -> StackConfig:
    """A local stack watching an existing bucket (EventBridge rule -> ingestion queue)."""
    os.environ["RUNWARE_MAX_ATTEMPTS"] = "3"
    return StackConfig(
        emulator_workers=EMULATOR_WORKERS,
        reconcile_interval_seconds=1.0,
        parameter_overrides={
            "ExistingBucketName": EXISTING_BUCKET,
            "ReconcileAfterSeconds": str(RECONCILE_AFTER_SECONDS),
            "JobMaxAgeSeconds": str(JOB_MAX_AGE_SECONDS),
        },
        seed=seed,
    )


def main() -> int:
    config = existing_bucket_config(seed=20240612)
    with LocalStack(config) as stack:
        shapes: list[str] = []
        lock = threading.Lock()
        submit = stack.functions["SubmitFunction"]
        original = submit.invoke

        def recording(event: dict[str, Any]) -> Any:
            for message in event.get("Records", []):
                body = json.loads(message["body"])
                with lock:
                    shapes.append(str(body.get("detail-type") or body.get("Event") or "S3 notification"))
            return original(event)

        submit.invoke = recording  # type: ignore[method-assign]
        prefix = "rel-existing/"
        names = ["a.jpg", "My Photos/été + plus.jpg", "deep/er/path/c.png", "d+e.jpg"]
        drops = [
            Drop(
                f"{round_}/{name}",
                image_bytes(180, 120, "PNG" if name.endswith(".png") else "JPEG", shade=round_ * 7 + i),
                {"target-megapixels": "1"},
            )
            for round_ in range(scaled(2, 10))
            for i, name in enumerate(names)
        ]
        started = time.monotonic()
        dropped = drop_all(stack, prefix, drops)
        s3 = stack.client("s3")
        s3.put_object(Bucket=EXISTING_BUCKET, Key="elsewhere/outside-the-prefix.jpg", Body=drops[0].body)
        settled = settle(stack, prefix, dropped)
        row = check(stack, "existing bucket: EventBridge events", prefix, dropped, started=started, settled=settled)
        result = {
            "row": asdict(row),
            "shapes": shapes,
            "buckets": sorted(bucket["Name"] for bucket in s3.list_buckets()["Buckets"]),
            "inbox_bucket": stack.names["inbox_bucket"],
            "job_buckets": sorted({job["sourceBucket"] for job in stack.jobs()}),
            "jobs": len(stack.jobs()),
        }
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
