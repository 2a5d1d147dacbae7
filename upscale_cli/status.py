"""`status`: open jobs per status (queries on the open-jobs index, never a scan), the newest open jobs,
and today's images and spend against the daily limit (the day's counter items, read by key)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from upscale_cli.arguments import whole_number
from upscale_cli.jobs_query import count_by_status, newest_jobs
from upscale_cli.output import Output, cell, cost, plural, size
from upscale_cli.target import Target
from upscaler.job_record import OPEN_STATUSES, JobStatus

if TYPE_CHECKING:
    from upscaler.spend_limit import Spend

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
    spend = spend_today(target)
    if out.as_json:
        out.json({"stack": target.description, "counts": counts, "total": sum(counts.values()), "newest": newest,
                  "deadLetters": dead_letters, "spendToday": spend_json(spend)})  # fmt: skip
        return 0
    out.line(target.description)
    show_intake_pause(target, out)
    out.line(dead_letter_line(dead_letters))
    out.line(spend_line(spend))
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


def spend_today(target: Target) -> Spend:
    """Today's (UTC) images and spend as the day's counter holds them (docs/spend-limit.md)."""
    from upscaler.clock import utc_now
    from upscaler.spend_limit import day_of, read_spend

    return read_spend(target.client("dynamodb"), target.jobs_table, day_of(utc_now()))


def spend_line(spend: Spend) -> str:
    from upscaler.spend_limit import describe_spend

    return describe_spend(spend, spend.limit)


def spend_json(spend: Spend) -> dict[str, Any]:
    from upscaler.spend_limit import dollars

    limit = spend.limit
    return {
        "images": spend.images,
        "usd": float(dollars(spend.microdollars)),
        # As the last image sent today saw it; 0 is no limit of that kind, None: nothing sent today.
        "limitImages": limit.images if limit else None,
        "limitUsd": float(dollars(limit.microdollars)) if limit else None,
        "limitReached": spend.reached(limit) if limit and limit.active else False,
    }


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
