"""Many conditional DynamoDB writes in as few requests as DynamoDB allows, each with its own outcome.

A batch of N sources makes N claims and, after the Runware request, N moves to SUBMITTED: one
TransactWriteItems request carries up to MAX_TRANSACTION_ITEMS of them where N single writes
would each pay a request's CPU and round trip. A transaction is all or nothing, so each write's
outcome is recovered as if it had been made alone:

- it commits: every write in it succeeded;
- it is cancelled (TransactionCanceledException): DynamoDB gives one reason per action, in order
  (the CancellationReasons of the TransactWriteItems API reference). ConditionalCheckFailed is
  that write's refusal, with the item as it is (ReturnValuesOnConditionCheckFailure ALL_OLD);
  a write whose reason is None was only rolled back, and goes into one more transaction; any
  other reason (TransactionConflict with a concurrent write, throttling) is settled by the write
  made alone, so a race is decided by the same single conditional write as without batching;
- it fails otherwise, or the reasons cannot be read: every write is made alone.

A write is made alone also when it is the only one (a transaction of one costs twice the write
units and saves nothing) or when an earlier write in the batch has the same key (a transaction
may touch an item once).

Cost: a transactional write consumes two write request units per KB of item instead of one
(DynamoDB's pricing for transactions). For a job of up to 1 KB, its two batched writes cost two
units more than written alone: $1.25 per million jobs at on-demand list prices ($0.625 per
million write request units).

Idempotence: botocore fills ClientRequestToken for each request and keeps it across its retries,
so a transaction retried after a lost response is not applied twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

# DynamoDB's limit on the actions in one TransactWriteItems request.
MAX_TRANSACTION_ITEMS = 100


@dataclass(frozen=True)
class ConditionalWrite:
    key: str  # the item's primary key, as text: one transaction may write an item once
    action: Mapping[str, Any]  # one TransactItems entry: {"Put": {...}} or {"Update": {...}}
    alone: Callable[[], object]  # the same write as a request of its own; raises as it would
    refused: Callable[[Mapping[str, Any] | None], Exception]  # its refusal, given the item as it is
    written: Callable[[], None]  # what follows the write once it succeeded in a transaction


def write_all(dynamodb: Any, writes: Sequence[ConditionalWrite]) -> list[Exception | None]:
    """Every write, in as few transactions as the rules above allow; per write, in order: None when
    it was written, or the exception it ended in (its refusal, or its request's error)."""
    results: dict[int, Exception | None] = {}
    alone: list[int] = []
    together: list[int] = []
    keys: set[str] = set()
    for index, write in enumerate(writes):
        (together if write.key not in keys else alone).append(index)
        keys.add(write.key)
    for start in range(0, len(together), MAX_TRANSACTION_ITEMS):
        alone += _transact(dynamodb, writes, together[start : start + MAX_TRANSACTION_ITEMS], results)
    for index in sorted(alone):
        try:
            writes[index].alone()
        except Exception as error:  # this write's own failure, reported as its outcome
            results[index] = error
        else:
            results[index] = None
    return [results[index] for index in range(len(writes))]


def _transact(
    dynamodb: Any, writes: Sequence[ConditionalWrite], indexes: list[int], results: dict[int, Exception | None]
) -> list[int]:
    """Write `indexes` in a transaction, and those it only rolled back in one more; sets their
    results, and returns those to be written alone."""
    pending, alone = indexes, []
    for _attempt in range(2):
        if len(pending) < 2:
            break
        try:
            dynamodb.transact_write_items(TransactItems=[writes[index].action for index in pending])
        except ClientError as error:
            reasons = cancellation_reasons(error, len(pending))
            if reasons is None:
                break
            rolled_back = []
            for index, reason in zip(pending, reasons, strict=True):
                code = reason.get("Code")
                if code == "ConditionalCheckFailed":
                    results[index] = writes[index].refused(reason.get("Item"))
                elif code in (None, "None"):
                    rolled_back.append(index)
                else:
                    alone.append(index)
            pending = rolled_back
            continue
        for index in pending:
            try:
                writes[index].written()
            except Exception as error:  # what follows the write failed; the write itself stands
                results[index] = error
            else:
                results[index] = None
        pending = []
        break
    return alone + pending


def cancellation_reasons(error: ClientError, actions: int) -> list[Mapping[str, Any]] | None:
    """A cancelled transaction's reasons, one per action; None for any other error, or reasons that
    do not match the actions one to one."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons = error.response.get("CancellationReasons")
    if not isinstance(reasons, list) or len(reasons) != actions:
        return None
    if not all(isinstance(reason, Mapping) for reason in reasons):
        return None
    return reasons
