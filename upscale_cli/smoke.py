"""`smoke`: one generated image through the whole pipeline, checked at the end; exit 0 only if COMPLETED.

The check to run right after `sam deploy`. The sample and its result stay in the buckets (under
`<InboxPrefix>smoke/`), like any other upload.
"""

from __future__ import annotations

import argparse
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from upscale_cli.arguments import seconds, whole_number
from upscale_cli.jobs_query import get_job, jobs_for_key
from upscale_cli.output import Output, cell, cost, size
from upscale_cli.sample_image import gradient_png
from upscale_cli.target import Target
from upscaler.clock import parse_iso
from upscaler.image_header import NeedMoreBytes, UnreadableImage, read_image_header
from upscaler.job_record import TERMINAL_STATUSES, job_id_for

PIXEL_TOLERANCE = 0.05  # Runware rounds the output's sides; 5% of the target megapixels covers that
HEADER_READS = (64 * 1024, 512 * 1024)


def add_parser(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "smoke", parents=parents, help="upscale one generated image end to end and check the result"
    )
    parser.add_argument(
        "--megapixels", type=whole_number(1, 8), default=1, help="target megapixels (default 1, the cheapest)"
    )
    parser.add_argument("--format", choices=["JPG", "PNG", "WEBP"], default="JPG", help="output format (default JPG)")
    parser.add_argument("--timeout", type=seconds(), default=600.0, help="seconds to wait for the result (default 600)")
    parser.set_defaults(run=run, starts_local_stack=True)


def run(args: argparse.Namespace, target: Target, out: Output) -> int:
    s3 = target.client("s3")
    key = f"{target.inbox_prefix}smoke/{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}.png"
    body = gradient_png()
    out.line(f"smoke test against {target.description}")
    out.line(f"dropping s3://{target.inbox_bucket}/{key} (640x480 PNG, {len(body)} bytes)")
    started = time.monotonic()
    uploaded_at = datetime.now(UTC)
    put = s3.put_object(
        Bucket=target.inbox_bucket,
        Key=key,
        Body=body,
        ContentType="image/png",
        Metadata={"target-megapixels": str(args.megapixels), "output-format": args.format},
    )
    job_id = job_id_for(target.inbox_bucket, key, put["VersionId"]) if put.get("VersionId") else None
    job, seen_after = _wait(target, key, job_id, started + args.timeout, out)
    finished_after = time.monotonic() - started
    problems: list[str] = []
    output: dict[str, Any] = {}
    if job is None:
        problems.append(f"no job for {key} after {args.timeout:.0f}s")
    elif job["status"] not in TERMINAL_STATUSES:
        problems.append(f"job {job['jobId']} still {job['status']} after {args.timeout:.0f}s")
    elif job["status"] != "COMPLETED":
        problems.append(f"job ended {job['status']}: {job.get('errorCode')}: {job.get('errorMessage')}")
    else:
        output, found = _check_output(target, job, args.megapixels, args.format)
        problems.extend(found)
    timings = _timings(job, uploaded_at, seen_after, finished_after)
    report = {
        "key": key,
        "jobId": job["jobId"] if job else job_id,
        "status": job["status"] if job else None,
        "passed": not problems,
        "problems": problems,
        "output": output,
        "timings": timings,
        "job": job,
    }
    if out.as_json:
        out.json(report)
    else:
        if job:
            out.line(f"job {job['jobId']}: {job['status']}  {size(job, 'input')} -> {size(job, 'output')}  {cost(job)}")
        out.table(["step", "seconds"], [[name, cell(value)] for name, value in timings.items()], title="Timings")
        if output:
            where = f"s3://{output['bucket']}/{output['key']}"
            shape = f"{output['format']} {output['width']}x{output['height']}"
            out.line(f"output: {where} {shape}, {output['bytes']} bytes, {output['contentType']}")
        for problem in problems:
            out.line(f"FAILED: {problem}")
        if not problems:
            out.line("smoke test passed")
    return 0 if not problems else 1


def _wait(
    target: Target, key: str, job_id: str | None, deadline: float, out: Output
) -> tuple[dict[str, Any] | None, float | None]:
    started = time.monotonic()
    job: dict[str, Any] | None = None
    seen_after: float | None = None
    last_status = None
    while time.monotonic() < deadline:
        if job_id:
            job = get_job(target, job_id)
        else:
            matches = jobs_for_key(target, key)
            job = matches[0] if matches else None
        if job is not None:
            if seen_after is None:
                seen_after = time.monotonic() - started
            if job["status"] != last_status:
                last_status = job["status"]
                out.line(f"  {time.monotonic() - started:6.1f}s  {job['status']}")
            if job["status"] in TERMINAL_STATUSES:
                return job, seen_after
        time.sleep(1.0)
    return job, seen_after


def _check_output(target: Target, job: dict[str, Any], megapixels: int, fmt: str) -> tuple[dict[str, Any], list[str]]:
    s3 = target.client("s3")
    bucket, key = job["outputBucket"], job["outputKey"]
    problems: list[str] = []
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except Exception as error:
        return {}, [f"output s3://{bucket}/{key} cannot be read: {error}"]
    header = None
    for length in HEADER_READS:
        data = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{length - 1}")["Body"].read()
        try:
            header = read_image_header(data, complete=len(data) < length)
            break
        except NeedMoreBytes:
            continue
        except UnreadableImage as error:
            return {}, [f"output is not an image: {error}"]
    if header is None:
        return {}, ["output header not found in its first 512 KiB"]
    output = {
        "bucket": bucket,
        "key": key,
        "format": header.format,
        "width": header.width,
        "height": header.height,
        "bytes": int(head["ContentLength"]),
        "contentType": head.get("ContentType", ""),
    }
    expected_format = {"JPG": "JPEG"}.get(fmt, fmt)
    if header.format != expected_format:
        problems.append(f"output is {header.format}, {expected_format} was asked for")
    if output["contentType"] != header.content_type:
        problems.append(f"output Content-Type is {output['contentType']!r}, expected {header.content_type}")
    target_pixels = megapixels * 1_000_000
    if abs(header.pixels - target_pixels) > PIXEL_TOLERANCE * target_pixels:
        problems.append(f"output {header.width}x{header.height} is not within 5% of {megapixels} MP")
    if (job.get("outputWidth"), job.get("outputHeight")) != (header.width, header.height):
        problems.append(f"job records {size(job, 'output')}, the file is {header.width}x{header.height}")
    if job.get("outputSize") is not None and int(job["outputSize"]) != output["bytes"]:
        problems.append(f"job records {job['outputSize']} bytes, the file has {output['bytes']}")
    if output["bytes"] <= 0:
        problems.append("output is empty")
    return output, problems


def _timings(
    job: dict[str, Any] | None, uploaded_at: datetime, seen_after: float | None, finished_after: float
) -> dict[str, float | None]:
    def between(start: str | None, end: str | None) -> float | None:
        return round((parse_iso(end) - parse_iso(start)).total_seconds(), 3) if start and end else None

    job = job or {}
    return {
        "upload to job record (this clock)": round(seen_after, 3) if seen_after is not None else None,
        "job created to submitted": between(job.get("createdAt"), job.get("submittedAt")),
        "submitted to result (Runware)": between(job.get("submittedAt"), job.get("completedAt")),
        "upload to result (job record)": float(job["totalSeconds"]) if job.get("totalSeconds") is not None else None,
        "whole smoke test (this clock)": round(finished_after, 3),
    }
