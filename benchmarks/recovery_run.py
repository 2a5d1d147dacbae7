"""The recovery benchmark's run, in the process `python -m benchmarks.recovery` starts (see there).

Kept apart from benchmarks/recovery.py so that the processes the run spawns (the moto server's, the
recover function's) import only that small module as the parent's main module, as spawned
processes do, and not the stack, the emulator and Pillow: a recover process's start is then the
handler's own start, as a cold start in Lambda is.
"""

from __future__ import annotations

import io
import math
import os
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from PIL import Image

from benchmarks.recovery import GOAL_SECONDS, SWEEP_INTERVAL_SECONDS, SWEEP_JOBS_PER_RUN
from local.runware_emulator.images import RenderedImage
from local.runware_emulator.tasks import TaskRecord
from local.stack import LOCAL_RUNWARE_KEY, LocalStack, StackConfig
from local.template import load_template
from upscaler.clock import iso, utc_now
from upscaler.job_record import Job, JobStatus, job_id_for
from upscaler.jobs import CLAIM, SUBMIT, JobStore
from upscaler.open_jobs import OpenJobs
from upscaler.reconciliation import POLL_BATCH_SIZE
from upscaler.recovery_checks import Check, CheckQueue
from upscaler.results import ResultRecorder
from upscaler.runware import RunwareClient
from upscaler.settlement import Settler
from upscaler.storage import ObjectStore

INPUT_SIDES = (64, 48)
OUTPUT_SIDES = (128, 96)
UPLOADERS = 8
POLL_SECONDS = 2.0


def output_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", OUTPUT_SIDES, (120, 80, 200)).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def prepare(stack: LocalStack, prefix: str, count: int) -> list[str]:
    """`count` SUBMITTED jobs whose outputs are staged and whose Runware tasks succeeded."""
    store = JobStore(stack.client("dynamodb"), stack.names["jobs_table"])
    bucket = stack.names["output_bucket"]
    submitted = utc_now() - timedelta(minutes=30)
    jobs = [
        Job(
            job_id=job_id_for("bench-inbox", f"inbox/{prefix}/{n}.png", "v1"),
            source_bucket="bench-inbox",
            source_key=f"inbox/{prefix}/{n}.png",
            source_version_id="v1",
            input_format="PNG",
            input_width=INPUT_SIDES[0],
            input_height=INPUT_SIDES[1],
            output_format="JPG",
            output_bucket=bucket,
            output_key=f"{stack.names['output_prefix']}{prefix}/{n}.jpg",
        )
        for n in range(count)
    ]
    for start in range(0, count, 100):
        batch = jobs[start : start + 100]
        _all_written(store.create_all([(job, CLAIM) for job in batch], now=submitted - timedelta(seconds=1)))
        moves = [
            (job.job_id, {"submitted_at": iso(submitted), "staging_key": f"staging/{job.job_id}"}) for job in batch
        ]
        _all_written(store.move_all(moves, SUBMIT, now=submitted))
    data = output_jpeg()
    s3 = stack.client("s3")
    with ThreadPoolExecutor(UPLOADERS) as pool:
        list(pool.map(lambda job: s3.put_object(Bucket=bucket, Key=f"staging/{job.job_id}", Body=data), jobs))
    assert stack.emulator is not None
    tasks = stack.emulator.task_store
    rendered = RenderedImage(data, OUTPUT_SIDES[0], OUTPUT_SIDES[1], "JPG")
    for job in jobs:
        record = TaskRecord(job.job_id, "upscale", "async", {}, tasks.now(), 0)
        tasks.add(record)
        tasks.complete_with_success(
            record, {"taskType": "upscale", "taskUUID": job.job_id, "imageUUID": job.job_id}, rendered
        )
    return [job.job_id for job in jobs]


def _all_written(results: list[Exception | None]) -> None:
    problems = [result for result in results if result is not None]
    if problems:
        raise RuntimeError(f"{len(problems)} jobs not written: {problems[0]}")


def sweep_run(stack: LocalStack, max_jobs: int) -> int:
    """One run of the sweep as it was: the oldest `max_jobs` SUBMITTED jobs, getResponse per 25,
    each job settled in turn. The jobs it settled."""
    dynamodb = stack.client("dynamodb")
    store = JobStore(dynamodb, stack.names["jobs_table"])
    settler = Settler(store, ResultRecorder(ObjectStore(stack.client("s3")), store), max_age_seconds=4 * 3600)
    assert stack.emulator is not None
    runware = RunwareClient(stack.emulator.url, lambda: LOCAL_RUNWARE_KEY)
    candidates = list(OpenJobs(dynamodb, stack.names["jobs_table"]).oldest(status=JobStatus.SUBMITTED))[:max_jobs]
    settled = 0
    for start in range(0, len(candidates), POLL_BATCH_SIZE):
        batch = store.get_many([job.job_id for job in candidates[start : start + POLL_BATCH_SIZE]])
        answer = runware.get_responses(list(batch))
        for job in batch.values():
            if settler.settle(job, answer.outcome(job.job_id)).recorded is not None:
                settled += 1
    return settled


def _template_concurrency() -> int:
    return int(load_template()["Parameters"]["RecoveryMaximumConcurrency"]["Default"])


def completion_events(stack: LocalStack) -> int:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.names["completion_events_url"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def _proc_cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used (Linux /proc; 0 where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu_seconds() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, every core (Linux /proc/stat)."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    hertz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hertz, sum(ticks) / hertz


def _cpu_by_process(stack: LocalStack) -> dict[str, float]:
    """CPU seconds so far: the stack's process, its moto server's process (when it has one), the
    recover function's worker processes, and the whole machine (busy and all)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    moto = stack.moto_server.cpu_seconds() if stack.moto_server is not None else None
    workers = stack.recover_processes.pids() if stack.recover_processes is not None else []
    busy, available = _machine_cpu_seconds()
    return {
        "stack_process": usage.ru_utime + usage.ru_stime,
        "moto_process": moto or 0.0,
        "recover_processes": sum(_proc_cpu_seconds(pid) for pid in workers),
        "machine_busy": busy,
        "machine_available": available,
    }


def run(
    jobs: int,
    sample: int,
    max_seconds: float,
    concurrency: int | None = None,
    processes: bool = True,
    moto_in_own_process: bool = True,
) -> dict[str, Any]:
    """`processes`: each concurrent recover invocation in a process of its own, as Lambda runs them in
    separate environments (False: in threads of this process, sharing one interpreter lock);
    `moto_in_own_process`: the moto server in a process of its own (False: threads of this one)."""
    overrides = {"RecoveryMaximumConcurrency": str(concurrency)} if concurrency else {}
    config = StackConfig(
        reconcile_interval_seconds=0,
        function_log_level="ERROR",
        parameter_overrides=overrides,
        recover_on_start=False,
        recover_processes=(concurrency or _template_concurrency()) if processes else 0,
        moto_in_own_process=moto_in_own_process,
    )
    with LocalStack(config) as stack:
        # Baseline first: one sweep run over a run's worth of jobs (no checks exist for them).
        baseline_ids = prepare(stack, "baseline", sample)
        started = time.perf_counter()
        swept = sweep_run(stack, SWEEP_JOBS_PER_RUN)
        sweep_run_seconds = time.perf_counter() - started
        if swept != len(baseline_ids):
            raise RuntimeError(f"the sweep settled {swept} of {len(baseline_ids)} jobs")
        events_before = completion_events(stack)

        prepare_started = time.perf_counter()
        ids = prepare(stack, "recovery", jobs)
        prepare_seconds = time.perf_counter() - prepare_started
        queue = CheckQueue(stack.client("sqs"), stack.resolver.resources["RecoveryQueue"]["QueueUrl"])
        now = utc_now()
        sending = time.perf_counter()
        refused = queue.send([Check(job_id, now, 1) for job_id in ids], now)
        if refused:
            raise RuntimeError(f"{len(refused)} checks refused")
        sent_seconds = time.perf_counter() - sending
        started = time.perf_counter()
        load_before = os.getloadavg()
        stack.start_recovery()
        cpu_before = _cpu_by_process(stack)
        progress: list[tuple[float, int]] = []
        while True:
            done = completion_events(stack) - events_before
            elapsed = time.perf_counter() - started
            progress.append((round(elapsed, 1), done))
            if done >= jobs or elapsed > max_seconds:
                break
            time.sleep(POLL_SECONDS)
        recovery_seconds = time.perf_counter() - started
        cpu_after = _cpu_by_process(stack)
        load_after = os.getloadavg()
        cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
        store = JobStore(stack.client("dynamodb"), stack.names["jobs_table"])
        statuses: dict[str, int] = {}
        for job in store.get_many(ids).values():
            statuses[str(job.status)] = statuses.get(str(job.status), 0) + 1
        mapping = stack.recovery
        assert mapping is not None
        runs = math.ceil(jobs / SWEEP_JOBS_PER_RUN)
        per_run = sweep_run_seconds * SWEEP_JOBS_PER_RUN / sample
        return {
            "jobs": jobs,
            "recovery_concurrency": concurrency,
            "recover_processes": config.recover_processes,
            "statuses": statuses,
            "prepare_seconds": prepare_seconds,
            "checks_sent_seconds": sent_seconds,
            "recovery_seconds": recovery_seconds,
            "recovery_jobs_per_second": statuses.get("COMPLETED", 0) / recovery_seconds,
            "invocations": mapping.invocations,
            "median_batch": sorted(mapping.batch_sizes)[len(mapping.batch_sizes) // 2] if mapping.batch_sizes else 0,
            "peak_concurrency": mapping.peak_concurrency,
            "messages_failed": mapping.messages_failed,
            "moto_in_own_process": moto_in_own_process,
            "cpu_seconds": cpu,
            "cpu_seconds_per_job": sum(cpu[name] for name in ("stack_process", "moto_process", "recover_processes"))
            / max(1, statuses.get("COMPLETED", 0)),
            "load_average": [round(load_before[0], 1), round(load_after[0], 1)],
            "goal_seconds": GOAL_SECONDS,
            "sweep_sample": sample,
            "sweep_run_seconds": sweep_run_seconds,
            "sweep_runs": runs,
            "sweep_seconds": (runs - 1) * max(SWEEP_INTERVAL_SECONDS, per_run) + per_run,
            "sweep_work_seconds": runs * per_run,
            "progress": progress[:: max(1, len(progress) // 30)],
        }
