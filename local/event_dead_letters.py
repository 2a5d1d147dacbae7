"""EventBridge target dead-letter queues for the local moto server, which keeps a target's
DeadLetterConfig but never uses it.

In EventBridge, an event a rule cannot deliver to its target goes to the target's dead-letter queue
(at once for an error no retry can fix, such as a target that does not exist), as the event itself
with the message attributes RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE and RETRY_ATTEMPTS (EventBridge User
Guide, "Using dead-letter queues to process undelivered events"; NO_RESOURCE is the code it lists
for a target that is not there). moto instead raises out of the request that sent the event (an S3
upload, here). With this, an SQS target that does not exist dead-letters the event the same way
when the target has a dead-letter queue; without one, moto's behaviour is kept.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

_installed = False


def install_target_dead_letter_queues() -> None:
    global _installed
    if _installed:
        return
    from moto.events.models import Rule

    Rule._send_to_sqs_queue = _dead_lettering(Rule._send_to_sqs_queue)  # type: ignore[method-assign]
    _installed = True


def _dead_lettering(send: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(send)
    def send_to_sqs_queue(rule: Any, resource_id: str, event: dict[str, Any], group_id: str | None = None) -> None:
        from moto.sqs.exceptions import QueueDoesNotExist

        try:
            send(rule, resource_id, event, group_id)
        except QueueDoesNotExist as missing:
            target = next((t for t in rule.targets if str(t["Arn"]).rsplit(":", 1)[-1] == resource_id), None)
            dead_letter_arn = str(((target or {}).get("DeadLetterConfig") or {}).get("Arn") or "")
            if target is None or not dead_letter_arn:
                raise
            dead_letter(rule, target, dead_letter_arn, event, "NO_RESOURCE", str(missing))

    return send_to_sqs_queue


def dead_letter(rule: Any, target: dict[str, Any], queue_arn: str, event: dict[str, Any], code: str, why: str) -> None:
    from moto.sqs import sqs_backends

    _, _, _, region, account, name = queue_arn.split(":", 5)
    attributes = {
        "RULE_ARN": rule.arn,
        "TARGET_ARN": target["Arn"],
        "ERROR_CODE": code,
        "ERROR_MESSAGE": why or code,
        "RETRY_ATTEMPTS": "0",  # an error no retry can fix is not retried
    }
    sqs_backends[account][region].send_message(
        queue_name=name,
        message_body=json.dumps(event),
        message_attributes={key: {"DataType": "String", "StringValue": value} for key, value in attributes.items()},
    )
