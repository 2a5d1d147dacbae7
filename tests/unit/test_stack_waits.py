"""The stack suites' progress wait (tests/stack_waits.py), on a fake clock: no stack needed."""

from __future__ import annotations

from collections.abc import Callable

from tests.stack_waits import Observation, wait_for_progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def wait(clock: FakeClock, observe: Callable[[], Observation], **bounds: float):
    return wait_for_progress(observe, clock=clock, pause=clock.pause, poll_seconds=0.5, **bounds)


def test_slow_but_steady_progress_is_waited_for_far_past_the_stall_window() -> None:
    clock = FakeClock()
    started = clock.now

    def observe() -> Observation:
        elapsed = clock.now - started
        finished = int(elapsed // 40)  # one job finishes every 40 s: never 60 s without a change
        return Observation(finished >= 10, finished, f"{10 - finished} jobs")

    waited = wait(clock, observe, stall_seconds=60, bound_seconds=900)

    assert waited and waited.settled
    assert waited.failure == ""
    assert 400 <= waited.seconds < 401
    assert max(clock.pauses) == 0.5


def test_a_stall_fails_after_the_window_and_says_what_was_pending() -> None:
    clock = FakeClock()
    started = clock.now

    def observe() -> Observation:
        # Moves for 30 s, then nothing changes again.
        finished = min(int(clock.now - started) // 10, 3)
        return Observation(False, finished, f"{5 - finished} jobs SUBMITTED")

    waited = wait(clock, observe, stall_seconds=60, bound_seconds=900)

    assert not waited
    assert waited.seconds == 90  # the last change at 30 s, then 60 s of nothing
    assert "nothing moved for 60 s" in waited.failure
    assert "of 90 s waited" in waited.failure
    assert "2 jobs SUBMITTED" in waited.failure


def test_never_moving_fails_after_the_stall_window_from_the_start() -> None:
    clock = FakeClock()

    waited = wait(clock, lambda: Observation(False, "same", "one job CLAIMED"), stall_seconds=60, bound_seconds=900)

    assert not waited
    assert waited.seconds == 60
    assert "one job CLAIMED" in waited.failure


def test_endless_movement_fails_at_the_overall_bound() -> None:
    clock = FakeClock()
    counter = iter(range(1_000_000))

    waited = wait(
        clock, lambda: Observation(False, next(counter), "a job going round"), stall_seconds=60, bound_seconds=900
    )

    assert not waited
    assert waited.seconds == 900
    assert "overall bound of 900 s" in waited.failure
    assert "a job going round" in waited.failure


def test_done_at_once_does_not_pause() -> None:
    clock = FakeClock()

    waited = wait(clock, lambda: Observation(True, None), stall_seconds=60, bound_seconds=900)

    assert waited and waited.seconds == 0
    assert clock.pauses == []


def test_a_pause_that_wakes_early_changes_nothing_but_the_number_of_looks() -> None:
    clock = FakeClock()
    looks = 0

    def observe() -> Observation:
        nonlocal looks
        looks += 1
        return Observation(False, "stuck", "")

    def early(seconds: float) -> None:
        clock.now += seconds / 5  # an idle wait that returns as soon as something finishes

    waited = wait_for_progress(observe, clock=clock, pause=early, poll_seconds=0.5, stall_seconds=60, bound_seconds=900)

    assert not waited
    assert 60 <= waited.seconds < 60.5
    assert looks > 600
