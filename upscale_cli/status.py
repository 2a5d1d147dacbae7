"""`status`: open jobs per status (queries on the open-jobs index, never a scan) and the newest open jobs."""

from __future__ import annotations

import argparse

from upscale_cli.arguments import whole_number
from upscale_cli.jobs_query import count_by_status, newest_jobs
from upscale_cli.output import Output, cell, cost, plural, size
from upscale_cli.target import Target
from upscaler.job_record import OPEN_STATUSES, JobStatus

NEWEST_HEADERS = ["created", "source", "status", "input", "output", "cost", "seconds", "job"]


def add_parser(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("status", parents=parents, help="open jobs by status and the newest of them")
    parser.add_argument(
        "--limit", type=whole_number(0), default=10, help="how many of the newest jobs to list (default 10)"
    )
    parser.add_argument(
        "--status",
        choices=[status.value for status in JobStatus if status in OPEN_STATUSES],
        help="list only the newest jobs in this status",
    )
    parser.add_argument(
        "--wide", action="store_true", help="on a terminal, print lines as long as they need (never cut ids or keys)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, target: Target, out: Output) -> int:
    counts = count_by_status(target)
    statuses = [args.status] if args.status else None
    newest = newest_jobs(target, args.limit, statuses) if args.limit > 0 else []
    dead_letters = dead_letter_depth(target)
    if out.as_json:
        out.json({"stack": target.description, "counts": counts, "total": sum(counts.values()), "newest": newest,
                  "deadLetters": dead_letters})  # fmt: skip
        return 0
    out.line(target.description)
    show_intake_pause(target, out)
    out.line(dead_letter_line(dead_letters))
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
    title = f"Newest {len(rows)} {args.status + ' ' if args.status else ''}jobs"
    out.table(NEWEST_HEADERS, rows, title=title, wide=args.wide)
    return 0


def show_intake_pause(target: Target, out: Output) -> None:
    """While intake waits: since when, why, and when it tries again (docs/intake-pauses.md)."""
    from upscaler.intake_pause import describe, read_pause

    pause = read_pause(target.client("dynamodb"), target.jobs_table)
    if pause is not None:
        out.line(describe(pause))


def dead_letter_depth(target: Target) -> int | None:
    """Messages waiting in the submit dead-letter queue (ApproximateNumberOfMessages); None without one."""
    if not target.dlq_url:
        return None
    attributes = target.client("sqs").get_queue_attributes(
        QueueUrl=target.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0))


def dead_letter_line(depth: int | None) -> str:
    if depth is None:
        return "dead-letter queue: this stack names none (no SubmitDeadLetterQueueUrl output)"
    if depth == 0:
        return "dead-letter queue: empty"
    them = "it" if depth == 1 else "them"
    return f"dead-letter queue: {plural(depth, 'message')} waiting (`s3-upscale redrive` moves {them} back)"
