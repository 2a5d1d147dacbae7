"""Hundreds of objects dropped at once into a stack whose Runware has few, slow workers."""

from __future__ import annotations

import threading

from local.runware_emulator import FaultConfig
from local.stack import LocalStack
from tests.reliability.harness import EMULATOR_WORKERS, Drop, image_bytes, jobs_by_key, run_scenario, scaled

SMALL = {"target-megapixels": "1"}


def test_load_with_a_saturated_provider_loses_nothing(stack: LocalStack) -> None:
    assert stack.emulator is not None
    emulator = stack.emulator
    count = scaled(300, 1000)
    # Two workers, each task held 0.1-0.15 s on top of the real work: fewer tasks a second than are submitted.
    emulator.faults = FaultConfig(latency_seconds=0.1, latency_jitter_seconds=0.05)
    bodies = [image_bytes(128 + 16 * (index % 5), 96 + 8 * (index % 3), shade=index) for index in range(15)]
    drops = [Drop(f"{index // 100:02d}/{index:05d}.jpg", bodies[index % len(bodies)], SMALL) for index in range(count)]
    peak_busy = 0
    stop = threading.Event()

    def watch_queue() -> None:
        nonlocal peak_busy
        while not stop.wait(0.25):
            peak_busy = max(peak_busy, int(emulator.stats()["busy"]))

    watcher = threading.Thread(target=watch_queue, daemon=True)
    watcher.start()

    try:
        row, _ = run_scenario(
            stack,
            f"load: {count} at once, {EMULATOR_WORKERS} slow Runware workers",
            "rel-load/",
            drops,
        )
    finally:
        stop.set()
        watcher.join()

    row.scenario += f", Runware busy with up to {peak_busy} tasks and webhooks"
    late = sum(1 for job in jobs_by_key(stack, "rel-load/").values() if job.get("lateResult"))
    if late:
        row.scenario += f" ({late} timed out in the queue, then completed late)"
    assert row.completed == row.objects
    # Saturated: tasks queued up behind the workers.
    assert peak_busy > 4 * EMULATOR_WORKERS, peak_busy
