"""Independent per-item steps run at once on a bounded thread pool, their results in item order.

The submit path makes, per source, an S3 read and one or two DynamoDB writes: network round trips
that do not depend on each other's sources, so a batch waits for its slowest source instead of
for the sum. A step that raises is that item's result, never its neighbours'.

A pool is made per call, not kept per container: starting a thread costs microseconds against
milliseconds per round trip, and no thread outlives the invocation that needed it (Lambda freezes
the container between invocations; idle pool threads would carry per-thread state, such as a trace
entity, from one invocation into the next).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Generic, Protocol, TypeVar

Item = TypeVar("Item")
Value = TypeVar("Value")


class ThreadHandoff(Protocol):
    """Called in the calling thread with a piece of work; returns what a worker thread runs instead:
    the work under the caller's per-thread context (such as the X-Ray SDK's current trace entity)."""

    def __call__(self, work: Callable[[], Value], /) -> Callable[[], Value]: ...


@dataclass(frozen=True)
class StepResult(Generic[Value]):
    """What one item's step returned, or the exception it raised."""

    value: Value | None = None
    error: Exception | None = None

    def unwrap(self) -> Value:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # None only when the step returned None


def run_each(
    items: Sequence[Item],
    step: Callable[[Item], Value],
    *,
    parallelism: int,
    handoff: ThreadHandoff | None = None,
) -> list[StepResult[Value]]:
    """`step` for every item, at most `parallelism` at once; results in the order of `items`.

    One item (or a parallelism of 1) runs in the calling thread, with no pool at all.
    """
    if parallelism <= 1 or len(items) <= 1:
        return [_attempt(step, item) for item in items]
    with ThreadPoolExecutor(max_workers=min(parallelism, len(items)), thread_name_prefix="step") as pool:
        works = [partial(_attempt, step, item) for item in items]
        # Each step sees the caller's context variables (a copy each: one context cannot be entered
        # by two threads at once), as it would in the calling thread.
        futures = [pool.submit(contextvars.copy_context().run, handoff(work) if handoff else work) for work in works]
        return [future.result() for future in futures]


def _attempt(step: Callable[[Item], Value], item: Item) -> StepResult[Value]:
    try:
        return StepResult(value=step(item))
    except Exception as error:  # this item's own failure; the caller decides what it means
        return StepResult(error=error)


def in_handler_trace(work: Callable[[], Value]) -> Callable[[], Value]:
    """A ThreadHandoff for Lambda handlers traced with X-Ray: `work` for a worker thread, under the
    trace entity current here (the handler's subsegment).

    The X-Ray SDK keeps the current entity per thread; for a thread pool it advises passing the
    entity to the worker (set_trace_entity), so the worker's AWS calls are recorded under it, and
    clearing it when the work is done (clear_trace_entities), so none is left on the thread.
    """
    from aws_xray_sdk.core import xray_recorder

    entity = xray_recorder.get_trace_entity()

    def traced() -> Value:
        xray_recorder.set_trace_entity(entity)
        try:
            return work()
        finally:
            xray_recorder.clear_trace_entities()

    return traced
