"""`backfill`: enqueue the objects already in the inbox (or under a prefix of it), as if just uploaded."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from upscale_cli.backfill import backfill
from upscale_cli.output import Output
from upscale_cli.target import Target


def add_parser(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("backfill", parents=parents, help="enqueue objects already in the inbox")
    parser.add_argument("--prefix", help="key prefix to backfill (default: the stack's inbox prefix)")
    parser.add_argument("--dry-run", action="store_true", help="only count the objects")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, target: Target, out: Output) -> int:
    if not target.ingest_queue_url:
        out.line(f"{target.description} has no ingestion queue output")
        return 2
    prefix = args.prefix if args.prefix is not None else target.inbox_prefix
    report = backfill(
        target.client("s3"),
        target.client("sqs"),
        bucket=target.inbox_bucket,
        prefix=prefix,
        queue_url=target.ingest_queue_url,
        dry_run=args.dry_run,
    )
    if out.as_json:
        out.json(asdict(report))
    else:
        verb = "would enqueue" if args.dry_run else "enqueued"
        count = report.objects if args.dry_run else report.enqueued
        out.line(
            f"s3://{report.bucket}/{report.prefix}: {report.objects} objects ({report.bytes} bytes), "
            f"{verb} {count}; {report.skipped_folders} folder placeholders skipped"
        )
    return 0
