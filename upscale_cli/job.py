"""`job KEY|JOB_ID`: one job with every attribute, grouped the way the README describes the record."""

from __future__ import annotations

import argparse
from typing import Any

from upscale_cli.errors import NotDone
from upscale_cli.jobs_query import JOB_ID, get_job, jobs_for_key, source_key
from upscale_cli.output import Output, cell
from upscale_cli.target import Target

GROUPS = {
    "source": ["sourceBucket", "sourceKey", "sourceVersionId", "sourceETag", "sourceSize", "sourceContentType",
               "inputFormat", "inputWidth", "inputHeight", "eventTime"],
    "request": ["targetMegapixels", "enhanceDetails", "realism", "outputFormat", "outputQuality", "outputBucket",
                "outputKey"],
    "outcome": ["status", "imageUUID", "imageURL", "cost", "outputSize", "outputContentType", "outputETag",
                "outputWidth", "outputHeight", "errorCode", "errorMessage", "errorParameter", "resultVia",
                "lateResult"],
    "timing": ["createdAt", "submittedAt", "completedAt", "updatedAt", "uploadToSubmitSeconds", "providerSeconds",
               "totalSeconds", "submitAttempts", "resultReports", "expiresAt"],
}  # fmt: skip


def add_parser(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("job", parents=parents, help="one job, every field (by job id or by inbox key)")
    parser.add_argument("reference", metavar="KEY|JOB_ID", help="a job id, or an inbox key (with or without prefix)")
    parser.add_argument("--all", action="store_true", help="every job of the key, not only the newest")
    parser.set_defaults(run=run)


def find_jobs(target: Target, reference: str) -> list[dict[str, Any]]:
    if JOB_ID.match(reference.lower()):
        job = get_job(target, reference.lower())
        if job:
            return [job]
    return jobs_for_key(target, source_key(target, reference))


def run(args: argparse.Namespace, target: Target, out: Output) -> int:
    jobs = find_jobs(target, args.reference)
    if not jobs:
        if out.as_json:
            out.json({"error": f"no job for {args.reference}"})
        raise NotDone(f"no job for {args.reference} in {target.description}")
    shown = jobs if args.all else jobs[:1]
    if out.as_json:
        out.json(shown if args.all else shown[0])
        return 0
    for job in shown:
        out.table(["field", "value"], rows_of(job), title=f"job {job['jobId']}")
    if len(jobs) > len(shown):
        out.line(f"({len(jobs) - len(shown)} older jobs of this key: add --all)")
    return 0


def rows_of(job: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = [["jobId", job["jobId"]]]
    listed = {"jobId"}
    for group, names in GROUPS.items():
        for name in names:
            if name in job:
                rows.append([f"{group}.{name}", cell(job[name])])
                listed.add(name)
    rows.extend([f"other.{name}", cell(job[name])] for name in sorted(job) if name not in listed)
    return rows
