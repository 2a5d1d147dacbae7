"""The faults in force and the seeded draws made from them: one lock, one ``random.Random(seed)``."""

from __future__ import annotations

import dataclasses
import random
import threading
from dataclasses import dataclass

from local.runware_emulator.faults import FaultConfig


@dataclass(frozen=True)
class TaskFate:
    """The random choices for one task, drawn at acceptance so they follow request order."""

    faults: FaultConfig
    latency_seconds: float
    fail: bool
    drop_webhook: bool
    duplicate_webhook: bool


class FaultState:
    """The current FaultConfig, what is left of its 429 burst, and the draws."""

    def __init__(self, faults: FaultConfig, seed: int | None) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self._faults = faults
        self._burst_429_remaining = faults.burst_429
        self._rng = random.Random(seed)

    @property
    def config(self) -> FaultConfig:
        """The knobs in force, with burst_429 showing what is left of the burst."""
        with self._lock:
            return dataclasses.replace(self._faults, burst_429=self._burst_429_remaining)

    def replace(self, faults: FaultConfig) -> None:
        with self._lock:
            self._faults = faults
            self._burst_429_remaining = faults.burst_429

    def reset(self) -> None:
        """Re-arms the 429 burst and restarts the draws from the seed."""
        with self._lock:
            self._burst_429_remaining = self._faults.burst_429
            self._rng = random.Random(self._seed)

    @property
    def burst_429_remaining(self) -> int:
        with self._lock:
            return self._burst_429_remaining

    def current(self) -> FaultConfig:
        """The configuration as set (burst_429 as configured), for one request's decisions."""
        with self._lock:
            return self._faults

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
