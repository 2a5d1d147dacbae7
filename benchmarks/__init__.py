"""Benchmarks against baselines: memory, bytes moved, billed time, cold start, warm overhead, throughput.

Run with ``make bench`` (or ``python -m benchmarks --help``); the report goes to
``benchmarks/results/latest.md`` and ``latest.json``. Every figure is measured in the same run as
its baseline, on the embedded local stack (moto for AWS, the Runware emulator), loopback only.
"""
