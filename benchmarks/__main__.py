"""python -m benchmarks: measure, then write benchmarks/results/latest.md and latest.json.

The sections run in this order: cold start (no services needed), then zero-copy, billed time and
warm overhead against one local stack in this process, then throughput (a local stack per run,
each in its own process), then the burst against a rate-limited Runware (both designs, each in its
own process), then the capacity and cost model (this tree's design and the one before it, each in
its own process), then recovery of lost webhooks beside the sweep it replaced (its own process).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import report, suites
from benchmarks.services import Services

RESULTS = Path(__file__).resolve().parent / "results"
SECTIONS = (
    "cold_start",
    "zero_copy",
    "billed_time",
    "warm_overhead",
    "throughput",
    "burst",
    "capacity",
    "recovery",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--objects", type=int, default=200, help="objects through the stack for throughput (200)")
    parser.add_argument("--throughput-runs", type=int, default=3, help="throughput runs (3)")
    parser.add_argument("--cold-runs", type=int, default=10, help="fresh processes per cold-start variant (10)")
    parser.add_argument("--small-runs", type=int, default=5, help="zero-copy runs with the 100 KB input (5)")
    parser.add_argument("--large-runs", type=int, default=3, help="zero-copy runs with the 50 MB input (3)")
    parser.add_argument("--images", type=int, default=5, help="images per handler for billed time (5)")
    parser.add_argument("--latency", type=float, default=3.0, help="Runware latency for billed time, seconds (3)")
    parser.add_argument("--burst-objects", type=int, default=2000, help="uploads dropped at once for the burst (2000)")
    parser.add_argument(
        "--burst-rate",
        type=float,
        default=0.25,
        help="Runware requests per second before 429, for the burst (0.25: 2.5 images/s, which the local "
        "stack serves with room to spare on 2 cores; at 0.4 it would measure the stack, not the pacing)",
    )
    parser.add_argument(
        "--burst-concurrency",
        type=int,
        default=2,
        help="SubmitMaximumConcurrency for the queue design, sized to the rate limit (2)",
    )
    parser.add_argument(
        "--capacity-jobs", type=int, default=100, help="uploads per design for the capacity model (100)"
    )
    parser.add_argument(
        "--capacity-dropped-webhooks",
        type=float,
        default=0.2,
        help="share of webhooks Runware's emulator drops in the capacity run, finished by recovery (0.2)",
    )
    parser.add_argument(
        "--capacity-batches",
        type=int,
        default=5,
        help="timed submit batches of 10 per design for the capacity model (5)",
    )
    parser.add_argument(
        "--recovery-jobs", type=int, default=10_000, help="submitted jobs whose webhooks never came (10000)"
    )
    parser.add_argument(
        "--recovery-concurrency",
        type=int,
        default=6,
        help="RecoveryMaximumConcurrency for the recovery run, as an operator raises it for a backlog (6; "
        "the template's default is 5)",
    )
    parser.add_argument(
        "--recovery-in-threads",
        action="store_true",
        help="run the concurrent recover invocations in threads of the stack's process (one interpreter lock) "
        "instead of a process each, as Lambda runs them",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: few repetitions, 20 objects (the report says so)"
    )
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write latest.md and latest.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.objects, args.throughput_runs, args.cold_runs = 20, 1, 2
        args.small_runs, args.large_runs, args.images = 1, 1, 2
        args.burst_objects = 200
        args.capacity_jobs, args.capacity_batches = 30, 2
        args.recovery_jobs = 500
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    wanted = set(args.only or SECTIONS)
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": report.machine(), "arguments": {k: str(v) for k, v in vars(args).items()}}

    def section(name: str, title: str) -> bool:
        if name in wanted:
            print(f"{title} ...", flush=True)
        return name in wanted

    if section("cold_start", "3. cold start"):
        results["cold_start"] = suites.cold_start(runs=args.cold_runs, profile_runs=max(1, min(3, args.cold_runs)))
    if wanted & {"zero_copy", "billed_time", "warm_overhead"}:
        services = Services().start()
        try:
            if section("zero_copy", "1. zero-copy"):
                sizes = [("100 KB", 100_000, args.small_runs), ("50 MB", 50_000_000, args.large_runs)]
                results["zero_copy"] = suites.zero_copy(services, sizes)
            if section("billed_time", "2. billed time"):
                results["billed_time"] = suites.billed_time(services, args.images, args.latency)
            if section("warm_overhead", "4. warm overhead"):
                events = 2 if args.quick else 30
                plan = [(1, events), (10, max(1, events // 2))]
                results["warm_overhead"] = suites.warm_overhead(
                    services, plan, tracing_modes=(False, True), round_trips=(suites.AWS_ROUND_TRIP_MS,)
                )
        finally:
            services.stop()
    if section("throughput", "5. throughput"):
        results["throughput"] = suites.throughput(args.objects, args.throughput_runs)
    if section("burst", "6. burst against a rate limit"):
        from benchmarks import burst

        results["burst"] = burst.measure(args.burst_objects, args.burst_rate, args.burst_concurrency)
    if section("capacity", "7. capacity and cost per 1,000 images"):
        from benchmarks import capacity

        results["capacity"] = capacity.measure(
            args.capacity_jobs, args.capacity_dropped_webhooks, args.capacity_batches, progress=suites.progress
        )
    if section("recovery", "8. recovery of lost webhooks"):
        from benchmarks import recovery

        results["recovery"] = recovery.measure(
            args.recovery_jobs, args.recovery_concurrency, processes=not args.recovery_in_threads
        )

    results["duration_seconds"] = time.perf_counter() - started
    results["notes"] = report.findings(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = report.render(results)
    (args.out / "latest.md").write_text(markdown + "\n")
    print(markdown)
    print(f"\nwritten: {args.out / 'latest.md'}, {args.out / 'latest.json'} ({results['duration_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
