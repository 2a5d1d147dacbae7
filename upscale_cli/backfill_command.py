"""`backfill`: enqueue the objects already in the inbox (or under a prefix of it) that have no job yet."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from upscale_cli.backfill import BackfillReport, backfill
from upscale_cli.errors import StackNotFound, UsageError
from upscale_cli.output import Output, plural
from upscale_cli.target import Target


def add_parser(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("backfill", parents=parents, help="enqueue objects already in the inbox")
    parser.add_argument("--prefix", help="key prefix to backfill, inside the inbox (default: the stack's inbox prefix)")
    parser.add_argument("--dry-run", action="store_true", help="only count: new, already with a job, ignored")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, target: Target, out: Output) -> int:
    if not target.ingest_queue_url:
        raise StackNotFound(f"{target.description} has no ingestion queue output (IngestQueueUrl)")
    prefix = args.prefix if args.prefix is not None else target.inbox_prefix
    if not prefix.startswith(target.inbox_prefix):
        raise UsageError(
            f"--prefix {prefix!r} is outside the inbox s3://{target.inbox_bucket}/{target.inbox_prefix}: "
            f"the pipeline ignores objects there; give a prefix that starts with {target.inbox_prefix!r}"
        )
    report = backfill(
        target.client("s3"),
        target.client("sqs"),
        target.client("dynamodb"),
        bucket=target.inbox_bucket,
        prefix=prefix,
        queue_url=target.ingest_queue_url,
        jobs_table=target.jobs_table,
        dry_run=args.dry_run,
    )
    if out.as_json:
        out.json({**asdict(report), "ignored": report.ignored})
    else:
        out.line(summary(report))
    return 0


def summary(report: BackfillReport) -> str:
    where = f"s3://{report.bucket}/{report.prefix}"
    found = f"{plural(report.objects, 'object')} ({plural(report.bytes, 'byte')})"
    sent = f"{report.new} new would be enqueued" if report.dry_run else f"{report.enqueued} new enqueued"
    have = f"{report.have_jobs} already {'has a job' if report.have_jobs == 1 else 'have jobs'}"
    ignored = f"{report.ignored} ignored ({plural(report.skipped_folders, 'folder placeholder')})"
    return f"{where}: {found}: {sent}, {have}, {ignored}"
