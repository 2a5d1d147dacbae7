"""Many conditional DynamoDB writes, each a request of its own, made at once; each with its own outcome.

A batch of N sources makes N claims and, after the Runware request, N moves to SUBMITTED. Each is
a single conditional write (PutItem or UpdateItem), at most MAX_PARALLEL_WRITES in flight at once,
so the batch waits about one round trip per wave instead of one per write, and each write's outcome
is its own by construction: written, refused (with the item as it is), or its request's error. Two
writes of the same item in one batch are never in flight together: the later one waits for the
earlier's outcome, as if they had been made one after the other.

Why not TransactWriteItems (one request for up to 100 writes): atomicity buys nothing here, since
every write keeps its own outcome, and a transactional write consumes two write units per KB of
item where a single write consumes one (DynamoDB's pricing for transactions). Measured by the
capacity section of `make bench` (the submit function on batches of 10 new uploads, a 5 ms
DynamoDB and a 20 ms S3 round trip added to every call, on loopback; jobs of 781 bytes): the
single writes consume 20 table write units per batch where the transactions consume 40. Their
batch mostly takes longer on loopback (medians of 5 batches in five runs on a loaded 2-core
machine: 456, 836, 542, 856 and 539 ms against 387, 356, 686, 315 and 595 ms), part of which is
moto answering 20 requests instead of 2 in the same process. At list prices one write unit costs as much as 187 ms
of a 256 MB arm64 function: the largest difference measured, 541 ms, is worth under 3 units, and
20 are saved. Per million batches, write units and billed time together: $34 against $45.

A write that fails otherwise (throttled, a lost connection after botocore's retries) is that write's
outcome alone; the caller decides what it means for its source.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from upscaler.parallel import ThreadHandoff, run_each

# Writes in flight at once: botocore's default connection pool (Config max_pool_connections) holds
# 10 connections, so more threads would only wait for one.
MAX_PARALLEL_WRITES = 10


@dataclass(frozen=True)
class ConditionalWrite:
    key: str  # the item's primary key, as text: writes of one item are made one after the other
    alone: Callable[[], object]  # the write as a request of its own; raises as it ends (its refusal, its error)


def write_all(
    writes: Sequence[ConditionalWrite],
    *,
    handoff: ThreadHandoff | None = None,
    parallelism: int = MAX_PARALLEL_WRITES,
) -> list[Exception | None]:
    """Every write, at most `parallelism` at once; per write, in order: None when it was written, or
    the exception it ended in (its refusal, or its request's error).

    `handoff` gives the worker threads the caller's per-thread context (see upscaler.parallel)."""
    waves: list[list[int]] = []
    seen: Counter[str] = Counter()
    for index, write in enumerate(writes):
        wave = seen[write.key]  # the n-th write of an item goes in the n-th wave
        seen[write.key] += 1
        if wave == len(waves):
            waves.append([])
        waves[wave].append(index)
    results: dict[int, Exception | None] = {}
    for wave_indexes in waves:
        steps = [writes[index].alone for index in wave_indexes]
        for index, result in zip(
            wave_indexes, run_each(steps, _call, parallelism=parallelism, handoff=handoff), strict=True
        ):
            results[index] = result.error
    return [results[index] for index in range(len(writes))]


def _call(write: Callable[[], object]) -> object:
    return write()
