"""Upload events the existing-bucket rule cannot deliver, in a stack of its own (run as a child
process by test_upload_event_dead_letters.py): they wait in the dead-letter queue, and a re-drive
after the fix upscales them. Prints one JSON line: the report row and what was observed."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from typing import Any

from local.stack import LocalStack
from tests.reliability.existing_bucket import existing_bucket_config
from tests.reliability.harness import (
    Drop,
    check,
    drop_all,
    image_bytes,
    settle,
)
from tests.stack_waits import wait_on_stack
from upscale_cli.redrive import redrive, wait_for_task

RESULT_PREFIX = "UPLOAD-EVENT-DEAD-LETTERS-RESULT "
RULE_LOGICAL_ID = "ExistingBucketUploadRule"


def main() -> int:
    config = existing_bucket_config(seed=20240613)
    with LocalStack(config) as stack:
        events, sqs = stack.client("events"), stack.client("sqs")
        rule = stack.resolver.resources[RULE_LOGICAL_ID]["Ref"]
        [target] = events.list_targets_by_rule(Rule=rule)["Targets"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=stack.names["dlq_url"], AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        ingest_arn = target["Arn"]
        # The target misconfigured (a queue that is not there), as a broken deployment would leave it.
        missing = ingest_arn.rsplit(":", 1)[0] + ":a-queue-that-is-not-there"
        events.put_targets(Rule=rule, Targets=[{**target, "Arn": missing}])
        prefix = "rel-undelivered/"
        drops = [
            Drop(f"{index}.jpg", image_bytes(180, 120, shade=index), {"target-megapixels": "1"}) for index in (1, 2)
        ]
        started = time.monotonic()
        dropped = drop_all(stack, prefix, drops)
        wait_on_stack(stack, lambda: stack.dead_letter_count() >= len(drops), "the undelivered events dead-lettered")
        letters = sqs.receive_message(
            QueueUrl=stack.names["dlq_url"], MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
        ).get("Messages", [])
        jobs_before = len(stack.jobs())

        events.put_targets(Rule=rule, Targets=[target])  # the fix
        task = redrive(sqs, dlq_arn=dlq_arn, destination_arn=ingest_arn)
        final = wait_for_task(sqs, dlq_arn=dlq_arn, timeout=30, poll=0.5) or {}
        settled = settle(stack, prefix, dropped)
        row = check(
            stack, "existing bucket: undelivered events re-driven", prefix, dropped, started=started, settled=settled
        )
        result: dict[str, Any] = {
            "row": asdict(row),
            "target_dead_letter_arn": target.get("DeadLetterConfig", {}).get("Arn"),
            "dlq_arn": dlq_arn,
            "letters": [
                {
                    "body": json.loads(letter["Body"]),
                    "attributes": {k: v["StringValue"] for k, v in letter.get("MessageAttributes", {}).items()},
                }
                for letter in letters
            ],
            "jobs_before_redrive": jobs_before,
            "task": {"handle": task.task_handle, "status": final.get("Status")},
            "dead_letters_after": stack.dead_letter_count(),
            "statuses": sorted(job["status"] for job in stack.jobs()),
        }
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
