"""Recovery of lost webhooks: per-job checks beside the scheduled sweep they replace.

Run by the benchmark driver in a process of its own (moto's state is global to a process):

    python -m benchmarks.recovery    (a JSON spec on stdin: jobs, sample, concurrency, processes,
                                      moto_in_own_process; the run itself is benchmarks/recovery_run.py)

In one local stack, with the safety-net schedule off so recovery is the only path:
- `jobs` submitted jobs whose webhooks never came are prepared directly: their records (claimed and
  submitted by the job store's own transitions, in transactions of 100), a small JPEG at each
  staging key (what Runware's upload leaves), and a finished task per job in the Runware emulator
  (so getResponse answers success), and each job's first check, due at once, sent as the submit
  path sends it (SendMessageBatch, 10 to a request): the backlog a webhook outage leaves. Measured:
  from the moment the recovery checks queue's event source mapping starts until every job is
  COMPLETED, through the real recover handler (the template's batch size and batching window), each
  of the invocations that may run at once in a process of its own, as Lambda runs them in separate
  environments (local.function_processes; in threads of the stack's process on request), and the
  moto server in a process of its own (local.moto_process; in the stack's threads on request).
- The baseline, the sweep as it was (a faithful copy of its loop, `sweep_run` in recovery_run.py): the oldest
  ReconcileMaxJobs (200) SUBMITTED jobs per run, getResponse per 25, then each job settled one after
  another, once per ReconcileSchedule (5 minutes). It is measured on `sample` further jobs prepared
  the same way (one run's worth), and extrapolated: a run cannot start before the schedule says, so
  `jobs` take ceil(jobs / 200) runs, 5 minutes apart, plus the last run's own time.
The sweep's candidates come from the open-jobs index (the status index it queried is gone) and are
read by key; the per-job work (getResponse, the bucket, the conditional write) is the same.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from benchmarks.probe import RESULT_PREFIX

SWEEP_JOBS_PER_RUN = 200  # ReconcileMaxJobs' default
SWEEP_INTERVAL_SECONDS = 300  # ReconcileSchedule's default, rate(5 minutes)
GOAL_SECONDS = 600


def main() -> int:
    from benchmarks.recovery_run import run

    spec = json.loads(sys.stdin.read())
    result = run(
        spec["jobs"],
        spec.get("sample", SWEEP_JOBS_PER_RUN),
        spec.get("max_seconds", 1800.0),
        spec.get("concurrency"),
        spec.get("processes", True),
        spec.get("moto_in_own_process", True),
    )
    sys.stdout.write("\n" + RESULT_PREFIX + json.dumps(result, default=str) + "\n")
    return 0


def measure(
    jobs: int, concurrency: int | None = None, *, processes: bool = True, moto_in_own_process: bool = True
) -> dict[str, Any]:
    """`concurrency`: RecoveryMaximumConcurrency for the run (None: the template's default);
    `processes`: each concurrent recover invocation in a process of its own (False: threads);
    `moto_in_own_process`: the stack's moto server in a process of its own (False: its threads)."""
    from benchmarks.services import run_child
    from benchmarks.suites import progress

    spec = {
        "jobs": jobs,
        "sample": min(SWEEP_JOBS_PER_RUN, jobs),
        "concurrency": concurrency,
        "max_seconds": 1800,
        "processes": processes,
        "moto_in_own_process": moto_in_own_process,
    }
    result = run_child("benchmarks.recovery", spec, timeout=3600)
    result.pop("stderr")
    progress(
        f"recovery: {result['statuses']} in {result['recovery_seconds']:.0f} s; "
        f"the sweep: {result['sweep_seconds']:.0f} s"
    )
    return result


if __name__ == "__main__":
    sys.exit(main())
