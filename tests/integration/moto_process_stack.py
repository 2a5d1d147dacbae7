"""A local stack whose moto server runs in a process of its own (run as a child process by
test_moto_process_stack.py: one stack, one environment per process). Prints one JSON line: what
was observed."""

from __future__ import annotations

import json
import os
import sys

from botocore.exceptions import ClientError

from local.stack import LocalStack, StackConfig
from tests.integration.conftest import drop, image_bytes, wait_for_jobs

RESULT_PREFIX = "MOTO-PROCESS-STACK-RESULT "
UNGRANTED_KEY = "arn:aws:kms:us-east-1:123456789012:key/not-in-the-grant"


def main() -> int:
    config = StackConfig(moto_in_own_process=True, reconcile_interval_seconds=0, seed=20261203)
    with LocalStack(config) as stack:
        keys = [drop(stack, f"moto-process/{n}.jpg", image_bytes(320 + 16 * n, 240)) for n in range(3)]
        jobs = wait_for_jobs(stack, keys)
        s3 = stack.client("s3")
        # Outside the inbox prefix (no job is made of it): only the read itself is looked at.
        encrypted = "outside-the-inbox-prefix/encrypted.jpg"
        s3.put_object(
            Bucket=stack.names["inbox_bucket"],
            Key=encrypted,
            Body=b"x",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=UNGRANTED_KEY,
        )
        try:
            s3.get_object(Bucket=stack.names["inbox_bucket"], Key=encrypted)
            refusal = ""
        except ClientError as error:
            refusal = str(error.response["Error"]["Code"])
        assert stack.moto_server is not None
        result = {
            "statuses": sorted(job["status"] for job in jobs.values()),
            "via": sorted(job.get("resultVia", "") for job in jobs.values()),
            "refusal": refusal,
            "moto_pid": getattr(stack.moto_server, "pid", None),
            "stack_pid": os.getpid(),
            "moto_cpu_seconds": stack.moto_server.cpu_seconds(),
            "dead_letters": stack.dead_letter_count(),
        }
    sys.stdout.write("\n" + RESULT_PREFIX + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
