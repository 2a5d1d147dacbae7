"""Waiting on the local stack by its progress, not by a fixed deadline: one place for both stack suites.

A wait goes on for as long as something moves (a job changes, a message leaves or enters the
ingestion queue, a submit invocation ends, the Runware emulator accepts, finishes, uploads or
delivers something). It fails only after STALL_SECONDS in which nothing moved, or after
BOUND_SECONDS in all, so a machine busy with other work slows a test down instead of failing it,
while a stack that has stopped moving still fails within minutes. Its message says what was still
pending and how long nothing had moved.

What counts as movement is chosen so that polling alone never looks like progress: the reconciler
asks Runware about a late task every second, so the emulator's request and response counts are
not read, only what those requests achieve.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from local.stack import LocalStack

# Fail after this long with nothing moving. A step can show nothing for a minute: an AWS call waiting
# out botocore's 60 s read timeout before its retry, a submit invocation running to its 60 s timeout.
# Under load, scenarios were seen to sit still for 60-65 s (ten ingestion messages received, nothing
# else moving) and then finish correctly; twice that is the window.
STALL_SECONDS = 120.0
# ...or after this long in all, moving or not.
BOUND_SECONDS = 15 * 60.0

# The emulator's counts that change only when work is done (not when it is merely asked about).
EMULATOR_PROGRESS_COUNTS = (
    "upload_attempts",
    "uploads",
    "upload_failures",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_failures",
    "webhooks_dropped",
    "webhooks_abandoned",
)


@dataclass(frozen=True)
class Observation:
    """One look at what is being waited for."""

    done: bool
    progress: Hashable  # any change from the previous look is progress
    pending: str = ""  # what is still pending, for the failure message


@dataclass(frozen=True)
class Waited:
    """How a wait ended: true when what was waited for happened."""

    settled: bool
    seconds: float
    failure: str = ""

    def __bool__(self) -> bool:
        return self.settled


def wait_for_progress(
    observe: Callable[[], Observation],
    *,
    stall_seconds: float | None = None,
    bound_seconds: float | None = None,
    poll_seconds: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], Any] = time.sleep,
) -> Waited:
    """Look until the observation is done; give up after `stall_seconds` without any change in its
    progress, or after `bound_seconds` in all. `pause(poll_seconds)` may return early (an idle wait
    that wakes when work ends); the clock decides. The bounds default to the module's, read at the call."""
    stall_seconds = STALL_SECONDS if stall_seconds is None else stall_seconds
    bound_seconds = BOUND_SECONDS if bound_seconds is None else bound_seconds
    started = clock()
    moved_at = started
    last: Hashable = _NOTHING_SEEN
    while True:
        seen = observe()
        now = clock()
        if seen.done:
            return Waited(True, now - started)
        if seen.progress != last:
            last, moved_at = seen.progress, now
        still = now - moved_at
        waited = now - started
        if still >= stall_seconds:
            return Waited(
                False, waited, f"nothing moved for {still:.0f} s (of {waited:.0f} s waited); pending: {seen.pending}"
            )
        if waited >= bound_seconds:
            return Waited(
                False,
                waited,
                f"still not done after the overall bound of {bound_seconds:.0f} s (last movement {still:.0f} s ago);"
                f" pending: {seen.pending}",
            )
        pause(poll_seconds)


class _NothingSeen:
    def __repr__(self) -> str:
        return "nothing seen yet"


_NOTHING_SEEN = _NothingSeen()


# ---- the stack's own signs of progress ---------------------------------------------------------


@dataclass(frozen=True)
class StackActivity:
    """Cheap to read (one SQS call, the rest in process): read on every look of a wait."""

    messages_waiting: int  # in the ingestion queue, visible: not yet received, or due to be received again
    messages_received: int  # received and not yet deleted (in a batch, or hidden until received again)
    messages_delayed: int
    messages_in_invocations: int  # of those received, in a submit invocation running now
    invocations: int  # submit invocations started so far
    messages_failed: int  # messages left for redelivery so far
    emulator_busy: int  # Runware tasks queued or processing, and webhooks pending
    emulator_tasks: tuple[tuple[str, int], ...]  # Runware tasks by status
    emulator_counts: tuple[int, ...]  # EMULATOR_PROGRESS_COUNTS

    @property
    def messages_pending(self) -> int:
        """As LocalStack.invocations_pending counts them (a message in an invocation is also received): 0 when none."""
        return self.messages_waiting + self.messages_received + self.messages_delayed + self.messages_in_invocations

    def describe(self) -> str:
        return (
            f"ingestion queue: {self.messages_waiting} message(s) waiting, {self.messages_received} received"
            f" ({self.messages_in_invocations} in a submit invocation running now), {self.messages_delayed} delayed;"
            f" Runware emulator busy with {self.emulator_busy} task(s) and webhook(s)"
        )


@functools.cache
def _sqs(stack: LocalStack) -> Any:
    return stack.client("sqs")


def stack_activity(stack: LocalStack) -> StackActivity:
    queue = _sqs(stack).get_queue_attributes(
        QueueUrl=stack.names["ingest_queue_url"],
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    ingestion = stack.ingestion
    stats = stack.emulator.stats() if stack.emulator is not None else {}
    return StackActivity(
        messages_waiting=int(queue.get("ApproximateNumberOfMessages", 0)),
        messages_received=int(queue.get("ApproximateNumberOfMessagesNotVisible", 0)),
        messages_delayed=int(queue.get("ApproximateNumberOfMessagesDelayed", 0)),
        messages_in_invocations=ingestion.in_flight if ingestion else 0,
        invocations=ingestion.invocations if ingestion else 0,
        messages_failed=ingestion.messages_failed if ingestion else 0,
        emulator_busy=int(stats.get("busy", 0)),
        emulator_tasks=tuple(sorted(stats.get("tasks", {}).items())),
        emulator_counts=tuple(int(stats.get(name, 0)) for name in EMULATOR_PROGRESS_COUNTS),
    )


def job_states(jobs: list[dict[str, Any]]) -> frozenset[tuple[str, str, str]]:
    """What a job's movement shows in: its status and when it last changed."""
    return frozenset((str(job["jobId"]), str(job["status"]), str(job.get("updatedAt", ""))) for job in jobs)


def wait_on_stack(
    stack: LocalStack,
    done: Callable[[], bool],
    what: str,
    *,
    progress: Callable[[], Hashable] | None = None,
    pending: Callable[[], str] | None = None,
    poll_seconds: float = 0.2,
) -> None:
    """Wait until `done()` while the stack moves (or `progress()` changes); fail the test with `what`
    and what was pending once nothing has moved for STALL_SECONDS or after BOUND_SECONDS."""

    def observe() -> Observation:
        activity = stack_activity(stack)
        if done():
            return Observation(True, None)
        extra = pending() if pending is not None else ""
        return Observation(
            False,
            (activity, progress() if progress is not None else None),
            f"{extra}; {activity.describe()}" if extra else activity.describe(),
        )

    waited = wait_for_progress(observe, poll_seconds=poll_seconds)
    if not waited:
        pytest.fail(f"{what}: {waited.failure}")
