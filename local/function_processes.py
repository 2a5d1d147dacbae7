"""A function run in processes of its own, one invocation per process at a time.

Lambda runs concurrent invocations of a function in separate execution environments, each with its
own CPU. The local stack normally runs every handler in its own process, in threads, where one
interpreter lock lets only one of them compute at a time: fine for correctness, but it makes
concurrent invocations take turns. A function given processes here runs each invocation in one of
`processes` worker processes (spawned, not forked: no thread or lock of this process is copied),
each of which loads the handler module once, as a warm container does, with the stack's
environment. The workers reach moto and the Runware emulator over loopback, as the handlers always
do; the handler's response (or its exception) comes back to the caller, so an event source mapping
treats it exactly as an invocation in this process.

Tests that reach into a function's module (to make it fail on purpose) need it in this process:
processes are for benchmarks that measure concurrency.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from local.lambda_runtime import LocalFunction
from local.template import FunctionSpec

_loaded: LocalFunction | None = None


class FunctionProcesses:
    """`invoke` as LocalFunction's, run in one of `processes` worker processes."""

    def __init__(self, spec: FunctionSpec, name: str, processes: int, environment: dict[str, str]) -> None:
        if processes < 1:
            raise ValueError("a function needs at least one process")
        self.spec = spec
        self.name = name
        self.processes = processes
        self._pool = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_load,
            initargs=(spec, name, dict(environment)),
        )
        self.invocations = 0
        self.errors = 0

    def invoke(self, event: dict[str, Any]) -> Any:
        self.invocations += 1
        try:
            return self._pool.submit(_invoke, event).result()
        except Exception:
            self.errors += 1
            raise

    def pids(self) -> list[int]:
        """The worker processes' ids (those started so far)."""
        return list(getattr(self._pool, "_processes", None) or {})

    def stop(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _load(spec: FunctionSpec, name: str, environment: dict[str, str]) -> None:
    """In a worker: the stack's environment, then the handler module (its module-level clients)."""
    global _loaded
    os.environ.update(environment)
    _loaded = LocalFunction(spec, name)


def _invoke(event: dict[str, Any]) -> Any:
    assert _loaded is not None, "the worker's initializer loads the function"
    return _loaded.invoke(event)
