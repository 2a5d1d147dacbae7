"""`download REF... [--to PATH]`: the output of each job, by job id or by inbox key, to a local path."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from upscale_cli.errors import NotDone, UsageError
from upscale_cli.job import find_jobs
from upscale_cli.output import Output
from upscale_cli.target import Target


def add_parser(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "download", parents=parents, help="fetch the outputs of jobs (by job id or inbox key) to a local path"
    )
    parser.add_argument("references", nargs="+", metavar="KEY|JOB_ID", help="a job id, or an inbox key")
    parser.add_argument(
        "--to",
        type=Path,
        default=Path("."),
        help="a directory (default: the current one), or a file name when one reference is given",
    )
    parser.set_defaults(run=run)


def destination(to: Path, output_key: str, single: bool) -> Path:
    """Where one output goes: into `to` if it is a directory (or several are fetched), else `to` itself."""
    if to.is_dir() or not single or str(to).endswith(("/", "\\")):
        return to / Path(output_key).name
    return to


def run(args: argparse.Namespace, target: Target, out: Output) -> int:
    single = len(args.references) == 1
    if not single and args.to.exists() and not args.to.is_dir():
        raise UsageError(f"--to {args.to} is a file: several outputs need a directory")
    chosen: list[dict[str, Any]] = []
    for reference in args.references:
        jobs = find_jobs(target, reference)
        if not jobs:
            raise NotDone(f"no job for {reference} in {target.description}")
        job = jobs[0]
        if job["status"] != "COMPLETED":
            detail = f" ({job['errorCode']})" if job.get("errorCode") else ""
            source = job.get("sourceKey", reference)
            raise NotDone(f"job {job['jobId']} of {source} is {job['status']}{detail}: no output to download")
        chosen.append(job)
    s3 = target.client("s3")
    fetched = []
    for job in chosen:
        path = destination(args.to, job["outputKey"], single)
        path.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(job["outputBucket"], job["outputKey"], str(path))
        item = {
            "jobId": job["jobId"],
            "source": job.get("sourceKey"),
            "output": f"s3://{job['outputBucket']}/{job['outputKey']}",
            "path": str(path),
            "bytes": path.stat().st_size,
        }
        fetched.append(item)
        if not out.as_json:
            out.line(f"{item['output']} -> {item['path']} ({item['bytes']} bytes)")
    if out.as_json:
        out.json(fetched)
    return 0
