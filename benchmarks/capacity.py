"""The capacity and cost model, measured: this tree's design beside the design before it, same run.

For each design, benchmarks/capacity_run.py runs N jobs through the local stack in a process of its
own (the baseline with PYTHONPATH at a copy of BASELINE_COMMIT) and records every request. Here the
requests become (1) what AWS bills per 1,000 images, by line, from list prices, and (2) the ceiling
in jobs per second that each limit allows, with default parameters and with parameters scaled for
a target rate; the lowest ceiling binds. Each run is split into what images caused and what its
schedules cost whatever the volume (benchmarks.capacity_attribution), and priced by
benchmarks.capacity_model.
"""

from __future__ import annotations

import io
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks import capacity_figures as figures
from benchmarks.capacity_attribution import split_run
from benchmarks.capacity_model import (
    AWS_ROUND_TRIP_SECONDS,
    fixed_cost,
    item_write_costs,
    memory_gb,
    model,
    table_indexes,
)
from benchmarks.dynamodb_billing import item_size, write_units
from benchmarks.probe import RESULT_PREFIX
from benchmarks.services import ROOT
from local.template import load_template

__all__ = ["measure", "table_indexes"]  # table_indexes: the model's reading of a template, for its tests

# The design before the open-jobs index, the recovery queue and single conditional writes: the
# last commit with the jobsByStatus index (status, createdAt; projection ALL), the 5-minute
# oldest-first reconcile sweep and TransactWriteItems for a batch's claims and moves.
BASELINE_COMMIT = "a6b0f43"

RUN_SCRIPT = Path(__file__).resolve().parent / "capacity_run.py"
# The local stack looks for jobs without a webhook after 20 s; a loaded machine delivers some webhooks
# later than that, and recovery would then count work that AWS (after 600 s) never does. After 60 s,
# the jobs recovered are those whose webhook was dropped. A parameter a tree does not have is ignored.
RECOVERY_OVERRIDES = {"ReconcileAfterSeconds": "60"}


# ---- running --------------------------------------------------------------------------------------


def run_tree(tree: Path, spec: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    env = {"PYTHONPATH": f"{tree}:{tree / 'layers' / 'common'}", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    completed = subprocess.run(
        [sys.executable, str(RUN_SCRIPT)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=tree,
        env=env,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"capacity run in {tree} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX) :])
    return result


def baseline_tree(into: Path) -> Path | None:
    """A copy of BASELINE_COMMIT's files (git archive), or None without that history (a shallow clone)."""
    found = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{BASELINE_COMMIT}^{{commit}}"], capture_output=True, check=False
    )
    if found.returncode != 0:
        return None
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE_COMMIT], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def measure(jobs: int, drop_webhook_rate: float, batches: int, progress: Any = print) -> dict[str, Any]:
    jobs_spec = {
        "mode": "jobs",
        "jobs": jobs,
        "drop_webhook_rate": drop_webhook_rate,
        "parameter_overrides": RECOVERY_OVERRIDES,
    }
    batches_spec = {
        "mode": "batches",
        "batches": batches,
        "round_trip_ms": {k: v * 1000 for k, v in AWS_ROUND_TRIP_SECONDS.items()},
    }
    designs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="capacity-baseline-") as folder:
        trees: dict[str, Path | None] = {"this tree": ROOT, f"before ({BASELINE_COMMIT})": baseline_tree(Path(folder))}
        for name, tree in trees.items():
            if tree is None:
                continue
            run = run_tree(tree, jobs_spec)
            progress(f"capacity: {name}: {jobs} jobs in {run['wall_seconds']:.0f} s ({run['statuses']})")
            batch_run = run_tree(tree, batches_spec)
            progress(f"capacity: {name}: {len(batch_run['samples'])} submit batches of {batch_run['batch_size']}")
            template = load_template(tree / "template.yaml")
            batches = batch_model(batch_run, template)
            per_image, scheduled = split_run(run, template)
            designs[name] = {
                "model": model(per_image, template, batches["billed_ms"]["median"], batches["batch_size"]),
                "scheduled": [
                    fixed_cost(schedule, template, batches["billed_ms"]["median"], batches["batch_size"])
                    for schedule in scheduled
                ],
                "batches": batches,
                "statuses": run["statuses"],
            }
    return {
        "jobs": jobs,
        "drop_webhook_rate": drop_webhook_rate,
        "baseline_commit": BASELINE_COMMIT,
        "baseline_available": len(designs) == 2,
        "designs": designs,
    }


# ---- conditional writes: transactions against single writes ---------------------------------------


def batch_model(batch_run: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
    tables = table_indexes(template)
    units = Counter[str]()
    kinds = Counter[str]()
    for write in batch_run["units_batch"]["writes"]:
        kinds[write["operation"]] += 1
        for cost in item_write_costs(write, tables):
            units["table"] += cost.table_units
            units["indexes"] += sum(w.units for w in cost.index)
    billed = [sample["billed_ms"] for sample in batch_run["samples"]]
    gb = memory_gb(template, "SubmitFunction")
    median_ms = statistics.median(billed)
    table_cost = units["table"] * figures.WRITE_REQUEST_UNIT_PRICE.value
    time_cost = median_ms / 1000 * gb * figures.GB_SECOND_PRICE_ARM.value
    return {
        "batch_size": batch_run["batch_size"],
        "round_trip_ms": batch_run["round_trip_ms"],
        "requests": dict(kinds),
        "billed_ms": {"median": median_ms, "min": min(billed), "max": max(billed), "n": len(billed)},
        "table_write_units": units["table"],
        "index_write_units": units["indexes"],
        "claim_item_bytes": max(
            (item_size(i["after"]) for w in batch_run["units_batch"]["writes"] for i in w["items"]), default=0
        ),
        "write_units_usd": table_cost,
        "billed_time_usd": time_cost,
        "total_usd": table_cost + time_cost + units["indexes"] * figures.WRITE_REQUEST_UNIT_PRICE.value,
        "statuses": batch_run["statuses"],
        "write_unit_equals_ms": figures.WRITE_REQUEST_UNIT_PRICE.value
        / (gb * figures.GB_SECOND_PRICE_ARM.value)
        * 1000,
        "unit_check": write_units(1024),
    }
