"""upscaler.parallel.run_each: steps at once on a bounded pool, results in item order, errors kept apart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from upscaler.parallel import StepResult, run_each


def test_results_come_in_item_order_whatever_order_the_steps_end_in():
    def slower_first(n: int) -> int:
        time.sleep(0.02 * (5 - n))
        return n * 10

    results = run_each(list(range(5)), slower_first, parallelism=5)
    assert [result.unwrap() for result in results] == [0, 10, 20, 30, 40]


def test_a_step_that_raises_is_its_own_items_result_only():
    def step(n: int) -> int:
        if n == 1:
            raise ValueError("bad item")
        return n

    first, second, third = run_each([0, 1, 2], step, parallelism=3)
    assert (first.unwrap(), third.unwrap()) == (0, 2)
    assert isinstance(second.error, ValueError)
    with pytest.raises(ValueError, match="bad item"):
        second.unwrap()


def test_no_more_than_parallelism_steps_run_at_once():
    running = 0
    most = 0
    lock = threading.Lock()

    def step(_: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    run_each(list(range(8)), step, parallelism=3)
    assert most == 3


@pytest.mark.parametrize(("items", "parallelism"), [([1], 4), ([1, 2, 3], 1), ([], 4)])
def test_one_item_or_a_parallelism_of_one_runs_in_the_calling_thread(items, parallelism):
    threads = run_each(items, lambda _: threading.current_thread(), parallelism=parallelism)
    assert [result.unwrap() for result in threads] == [threading.current_thread()] * len(items)


def test_a_handoff_wraps_each_work_in_the_calling_thread_and_runs_it_in_a_worker():
    caller = threading.current_thread()
    wrapped_in: list[threading.Thread] = []

    def handoff(work: Callable[[], StepResult[str]]) -> Callable[[], StepResult[str]]:
        wrapped_in.append(threading.current_thread())
        label = f"handed over by {threading.current_thread().name}"

        def run() -> StepResult[str]:
            result = work()
            return StepResult(value=f"{result.unwrap()}, {label}")

        return run

    def step(item: str) -> str:
        return f"{item} in {threading.current_thread().name}"

    results = run_each(["a", "b"], step, parallelism=2, handoff=handoff)
    assert wrapped_in == [caller, caller]
    for item, result in zip(["a", "b"], results, strict=True):
        value = result.unwrap()
        assert value.startswith(f"{item} in step")  # a pool thread, not the caller
        assert value.endswith(f"handed over by {caller.name}")


def test_without_a_pool_the_handoff_is_not_needed():
    def handoff(work: Callable[[], StepResult[int]]) -> Callable[[], StepResult[int]]:
        raise AssertionError("no thread to hand over to")

    assert run_each([7], lambda n: n + 1, parallelism=4, handoff=handoff)[0].unwrap() == 8
