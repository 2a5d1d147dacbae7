"""`status`: open jobs per status (queries on the open-jobs index, never a scan) and the newest open jobs."""

from __future__ import annotations

import argparse

from upscale_cli.jobs_query import count_by_status, newest_jobs
from upscale_cli.output import Output, cell, cost, size
from upscale_cli.target import Target
from upscaler.job_record import OPEN_STATUSES, JobStatus

NEWEST_HEADERS = ["created", "source", "status", "input", "output", "cost", "seconds", "job"]


def add_parser(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("status", parents=parents, help="open jobs by status and the newest of them")
    parser.add_argument("--limit", type=int, default=10, help="how many of the newest jobs to list (default 10)")
    parser.add_argument(
        "--status",
        choices=[status.value for status in JobStatus if status in OPEN_STATUSES],
        help="list only the newest jobs in this status",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, target: Target, out: Output) -> int:
    counts = count_by_status(target)
    statuses = [args.status] if args.status else None
    newest = newest_jobs(target, args.limit, statuses) if args.limit > 0 else []
    if out.as_json:
        out.json({"stack": target.description, "counts": counts, "total": sum(counts.values()), "newest": newest})
        return 0
    out.line(target.description)
    out.table(["status", "jobs"], [[status, str(count)] for status, count in counts.items()]
              + [["total", str(sum(counts.values()))]], title="Open jobs by status")  # fmt: skip
    rows = [
        [
            cell(job.get("createdAt")),
            cell(job.get("sourceKey")),
            job["status"] + (f" ({job['errorCode']})" if job.get("errorCode") else ""),
            size(job, "input"),
            size(job, "output"),
            cost(job),
            cell(job.get("totalSeconds")),
            job["jobId"],
        ]
        for job in newest
    ]
    out.table(NEWEST_HEADERS, rows, title=f"Newest {len(rows)} {args.status + ' ' if args.status else ''}jobs")
    return 0
