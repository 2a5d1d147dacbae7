"""A token bucket for the rate_limit_per_second knob: ``rate`` tokens a second, holding at most ``burst``."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate_per_second: float, clock: Callable[[], float]) -> None:
        self._rate = rate_per_second
        # A bucket smaller than one token would refuse everything.
        self._capacity = max(rate_per_second, 1.0)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = self._capacity
        self._updated = clock()

    def take(self) -> float | None:
        """None if a request may pass now, else the seconds until one may."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return (1.0 - self._tokens) / self._rate


def retry_after_header(wait_seconds: float) -> str:
    """Retry-After in whole seconds (HTTP's form), never less than the real wait."""
    return str(max(1, math.ceil(wait_seconds)))
