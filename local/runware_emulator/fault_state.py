"""The faults in force and the seeded draws made from them: one lock, one ``random.Random(seed)``."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from local.runware_emulator.faults import FaultConfig
from local.runware_emulator.rate_limit import TokenBucket


@dataclass(frozen=True)
class TaskFate:
    """The random choices for one task, drawn at acceptance so they follow request order."""

    faults: FaultConfig
    latency_seconds: float
    fail: bool
    drop_webhook: bool
    duplicate_webhook: bool


class FaultState:
    """The current FaultConfig, what is left of its 429 burst, its rate limit's bucket, and the draws."""

    def __init__(self, faults: FaultConfig, seed: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self._clock = clock
        self._faults = faults
        self._burst_429_remaining = faults.burst_429
        self._bucket = self._new_bucket(faults)
        self._rng = random.Random(seed)

    def _new_bucket(self, faults: FaultConfig) -> TokenBucket | None:
        rate = faults.rate_limit_per_second
        return None if rate is None else TokenBucket(rate, self._clock)

    @property
    def config(self) -> FaultConfig:
        """The knobs in force, with burst_429 showing what is left of the burst."""
        with self._lock:
            return dataclasses.replace(self._faults, burst_429=self._burst_429_remaining)

    def replace(self, faults: FaultConfig) -> None:
        with self._lock:
            self._faults = faults
            self._burst_429_remaining = faults.burst_429
            self._bucket = self._new_bucket(faults)

    def reset(self) -> None:
        """Re-arms the 429 burst, refills the rate limit's bucket and restarts the draws from the seed."""
        with self._lock:
            self._burst_429_remaining = self._faults.burst_429
            self._bucket = self._new_bucket(self._faults)
            self._rng = random.Random(self._seed)

    @property
    def burst_429_remaining(self) -> int:
        with self._lock:
            return self._burst_429_remaining

    def current(self) -> FaultConfig:
        """The configuration as set (burst_429 as configured), for one request's decisions."""
        with self._lock:
            return self._faults

    def take_rate_limit(self) -> float | None:
        """None if the rate limit (if any) lets a request through now, else the seconds to wait."""
        with self._lock:
            bucket = self._bucket
        return None if bucket is None else bucket.take()

    def take_burst_429(self) -> bool:
        with self._lock:
            if self._burst_429_remaining > 0:
                self._burst_429_remaining -= 1
                return True
            return False

    def draw(self, rate: float) -> bool:
        # No draw for a disabled knob, so enabling one knob does not reshuffle the others.
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def draw_fate(self, faults: FaultConfig, *, is_async: bool) -> TaskFate:
        with self._lock:
            rng = self._rng

            def chance(rate: float) -> bool:
                return rate > 0 and rng.random() < rate

            jitter = rng.uniform(0, faults.latency_jitter_seconds) if faults.latency_jitter_seconds > 0 else 0.0
            return TaskFate(
                faults=faults,
                latency_seconds=faults.latency_seconds + jitter,
                fail=is_async and chance(faults.task_failure_rate),
                drop_webhook=chance(faults.drop_webhook_rate),
                duplicate_webhook=chance(faults.duplicate_webhook_rate),
            )
