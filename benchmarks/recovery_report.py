"""The recovery section of the benchmark report (benchmarks/recovery.py's figures)."""

from __future__ import annotations

from typing import Any

from benchmarks.markdown import table


def recovery_goals(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    completed = data["statuses"].get("COMPLETED", 0)
    met = completed == data["jobs"] and data["recovery_seconds"] <= data["goal_seconds"]
    sweep = _duration(data["sweep_seconds"])
    return [
        (
            f"{data['jobs']} lost webhooks: every job COMPLETED through recovery alone within "
            f"{data['goal_seconds'] // 60} minutes",
            f"{completed} COMPLETED in {data['recovery_seconds']:.0f} s (the sweep: {sweep}, extrapolated from "
            f"one run of {data['sweep_sample']} jobs)",
            "met" if met else "not met",
        )
    ]


def recovery_section(data: dict[str, Any]) -> list[str]:
    lines = [
        "## 8. Recovery of lost webhooks: per-job checks beside the sweep",
        "",
        f"{data['jobs']} submitted jobs whose webhooks never came, prepared directly in a local stack (records "
        "written by the job store's transitions, a small JPEG at each staging key, a finished task per job in "
        "the Runware emulator, and one recovery check per job sent as submit sends them, 10 per "
        "SendMessageBatch, due at once: the backlog a webhook outage leaves). From the moment the recovery "
        "checks queue's event source mapping started, the real recover handler consumed them through it "
        "(batches of 25 as the template says, RecoveryMaximumConcurrency "
        f"{data.get('recovery_concurrency') or 'at its default'}; {data['peak_concurrency']} invocations at once "
        "at the peak), "
        "with the safety-net schedule off. The sweep is a faithful copy of the previous reconcile loop "
        "(oldest 200 SUBMITTED per run, getResponse per 25, each job settled in turn, one run per 5 minutes), "
        f"measured on {data['sweep_sample']} further jobs in the same stack and extrapolated: "
        f"{data['sweep_runs']} runs, each at most one per schedule tick.",
        "",
    ]
    rows = [
        [
            "per-job checks",
            str(data["statuses"].get("COMPLETED", 0)),
            f"{data['recovery_seconds']:.0f}",
            f"{data['recovery_jobs_per_second']:.1f}",
            f"{data['invocations']} invocations, median batch {data['median_batch']}, "
            f"{data['messages_failed']} messages received again",
        ],
        [
            "the sweep (baseline)",
            f"{data['sweep_sample']} measured",
            f"{data['sweep_seconds']:.0f}",
            f"{data['jobs'] / data['sweep_seconds']:.2f}",
            f"one run of {data['sweep_sample']} jobs: {data['sweep_run_seconds']:.1f} s of work; "
            f"{data['sweep_work_seconds']:.0f} s of work in all, spread over the schedule",
        ],
    ]
    lines += table(["design", "jobs COMPLETED", "seconds", "jobs per second", "notes"], rows)
    lines += [
        "",
        f"Preparing the jobs took {data['prepare_seconds']:.0f} s and sending their checks "
        f"{data['checks_sent_seconds']:.0f} s (submit sends each with its job, spread over the submissions); "
        "neither is counted. Completion is counted from the completion events each job sends when it ends. "
        + _process_model(data)
        + "On this machine (shared with other work) the sweep's own work ran at "
        f"{data['sweep_sample'] / data['sweep_run_seconds']:.1f} jobs per second one job after another.",
        "",
    ]
    cpu = data.get("cpu_seconds")
    if cpu:
        lines += [
            "CPU used while the checks were consumed (user and system seconds, from the processes' own "
            "accounting): " + _cpu_line(data, cpu),
            "",
        ]
    return lines


def _process_model(data: dict[str, Any]) -> str:
    moto = (
        "the moto server ran in a process of its own (local/moto_process.py); the Runware emulator and the "
        "event source mapping's pollers in the stack's process. "
        if data.get("moto_in_own_process")
        else "moto, the Runware emulator and the event source mapping's pollers shared the stack's process. "
    )
    if data.get("recover_processes"):
        return (
            f"Each of the {data['recover_processes']} recover invocations that may run at once ran in a process "
            "of its own (as Lambda runs concurrent invocations in separate environments), loading the handler "
            "once (its start is inside the measured time); " + moto
        )
    return "The recover invocations ran in threads of the stack's process (one interpreter lock); " + moto


def _cpu_line(data: dict[str, Any], cpu: dict[str, float]) -> str:
    completed = max(1, data["statuses"].get("COMPLETED", 0))
    own = bool(data.get("moto_in_own_process"))
    parts = [("the moto server's process", cpu.get("moto_process", 0.0))] if own else []
    parts += [
        ("the recover processes", cpu.get("recover_processes", 0.0)),
        ("the stack's process" + ("" if own else " (moto included)"), cpu["stack_process"]),
    ]
    shown = ", ".join(
        f"{name} {seconds:.0f} s ({seconds / completed * 1000:.1f} ms per job)" for name, seconds in parts
    )
    line = f"{shown}; {data['cpu_seconds_per_job'] * 1000:.0f} ms of CPU per job in all."
    if cpu.get("machine_available"):
        ours = sum(seconds for _, seconds in parts)
        line += (
            f" The machine's {cpu['machine_available'] / data['recovery_seconds']:.0f} cores were busy "
            f"{cpu['machine_busy'] / cpu['machine_available']:.0%} of the time, "
            f"{max(0.0, cpu['machine_busy'] - ours) / cpu['machine_available']:.0%} with work outside this "
            "benchmark"
        )
        if data.get("load_average"):
            before, after = data["load_average"]
            line += f" (load average {before} at the start, {after} at the end)"
        line += "."
    return line


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"
