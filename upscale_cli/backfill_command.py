"""`backfill`: enqueue the objects already in the inbox (or under a prefix of it) that have no job yet."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from upscale_cli.backfill import BackfillReport, backfill
from upscale_cli.backfill_estimate import BackfillEstimate, submit_settings
from upscale_cli.errors import StackNotFound, UsageError
from upscale_cli.output import Output, plural
from upscale_cli.target import Target


def add_parser(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("backfill", parents=parents, help="enqueue objects already in the inbox")
    parser.add_argument("--prefix", help="key prefix to backfill, inside the inbox (default: the stack's inbox prefix)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="send nothing: count new, already with a job, ignored, and estimate the Runware cost of the new",
    )
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
        settings=submit_settings(target) if args.dry_run else None,
    )
    if out.as_json:
        out.json(as_json(report))
    else:
        out.line(summary(report))
        if report.estimate is not None:
            for line in estimate_lines(report.new, report.estimate):
                out.line("  " + line)
    return 0


def as_json(report: BackfillReport) -> dict[str, Any]:
    fields = {name: value for name, value in asdict(report).items() if name != "estimate"}
    if report.estimate is not None:
        fields["estimate"] = report.estimate.as_json()
    return {**fields, "ignored": report.ignored}


def summary(report: BackfillReport) -> str:
    where = f"s3://{report.bucket}/{report.prefix}"
    found = f"{plural(report.objects, 'object')} ({plural(report.bytes, 'byte')})"
    sent = f"{report.new} new would be enqueued" if report.dry_run else f"{report.enqueued} new enqueued"
    have = f"{report.have_jobs} already {'has a job' if report.have_jobs == 1 else 'have jobs'}"
    if report.have_jobs_by_status:
        have += f" ({_counts(report.have_jobs_by_status)})"
    ignored = f"{report.ignored} ignored ({plural(report.skipped_folders, 'folder placeholder')})"
    return f"{where}: {found}: {sent}, {have}, {ignored}"


def estimate_lines(new: int, estimate: BackfillEstimate) -> list[str]:
    """What the new objects would become, and what Runware would charge for them, by tier."""
    refused = sum(estimate.would_refuse.values())
    outcome = f"of the {new} new: {estimate.would_send} would be sent to Runware, {refused} refused"
    if estimate.would_refuse:
        outcome += f" ({_counts(estimate.would_refuse)})"
    unreadable = sum(estimate.unreadable_now.values())
    if unreadable:
        outcome += f", {unreadable} unreadable now ({_counts(estimate.unreadable_now)}; submit would retry them)"
    lines = [outcome]
    if estimate.presets:
        lines.append(f"options by folder preset: {_counts(estimate.presets)}")
    tiers = " + ".join(
        f"{tier.images} at {tier.tier} x ${tier.usd_per_image}" for tier in estimate.tiers if tier.images
    )
    lines.append(f"estimated Runware cost: ${estimate.usd:.3f}" + (f" = {tiers}" if tiers else ""))
    return lines


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))
