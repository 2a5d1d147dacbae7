"""The moto server's per-request costs that grow with the queue, removed; every answer stays the same.

A burst of thousands of uploads keeps thousands of messages in the ingestion queue (and, with no
consumer, in the completion events queue). moto does work per message on every request there:
- receiving checks each message it returns against the retention period by reading the queue's
  whole attribute set, which counts every message (ApproximateNumberOf...): a receive of 10 counts
  the queue 10 times;
- each count (sending a message builds the attribute set too) asks the clock once per message,
  through datetime arithmetic;
- every request to the server lists moto's package directory (about 180 entries, twice) under the
  server's one lock, to find the service;
- every EventBridge target parses the same eight JSONPath expressions again per event.
Here the retention period is read from the queue, the clock from `time.time()`, the
directory listing once, and each JSONPath expression is parsed once. Installed by the local stack
before its moto server starts.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

_installed = False


def install_moto_speedups() -> None:
    global _installed
    if _installed:
        return
    _read_moto_modules_once()
    _sqs_without_queue_counts()
    _parse_each_jsonpath_once()
    _installed = True


def _read_moto_modules_once() -> None:
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]


def _clock(original: Callable[..., float], per_second: float) -> Callable[..., float]:
    """moto's unix_time / unix_time_millis: the same figure for "now", without datetime arithmetic."""

    def now(dt: Any = None) -> float:
        return time.time() * per_second if dt is None else original(dt)

    return now


def _sqs_without_queue_counts() -> None:
    from moto.sqs import models

    models.unix_time = _clock(models.unix_time, 1.0)  # type: ignore[assignment]
    models.unix_time_millis = _clock(models.unix_time_millis, 1000.0)  # type: ignore[assignment]

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_period = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention_period + message.sent_timestamp / 1000 > time.time())

    models.SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]


def _parse_each_jsonpath_once() -> None:
    from jsonpath_ng import ext

    ext.parse = functools.lru_cache(maxsize=256)(ext.parse)
