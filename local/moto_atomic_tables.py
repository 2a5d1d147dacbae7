"""DynamoDB requests made atomic in the moto server, as each is in DynamoDB.

moto checks a write's condition and then applies the write, as two steps with nothing between them
held; the moto server answers requests on many threads. Two conditional writes to one item at
once can then both pass their checks and both succeed (seen 3 times in 200 races of two updates),
where DynamoDB lets exactly one through and refuses the other with ConditionalCheckFailedException.
moto's update also reads the item it returns (ReturnValues) before the update, and a query or scan
walks a table's items while another request may change them. Here each DynamoDB request holds one
lock for the whole of its action: requests to the local tables happen one after the other, each
whole. Installed by the local stack before its moto server starts.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

_installed = False
_tables_lock = threading.RLock()


def install_atomic_table_requests() -> None:
    global _installed
    if _installed:
        return
    from moto.dynamodb.responses import DynamoHandler

    DynamoHandler.call_action = one_at_a_time(DynamoHandler.call_action)  # type: ignore[method-assign]
    _installed = True


def one_at_a_time(action: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(action)
    def locked(handler: Any) -> Any:
        # Reentrant: a request whose action makes another DynamoDB call in the same thread still runs.
        with _tables_lock:
            return action(handler)

    return locked
