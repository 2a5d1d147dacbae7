"""`watch`: live progress as jobs change, by polling the open-jobs index (queries, never a scan) and
reading by key the jobs that left it, or the completion events as they come, from a queue that a
rule on the completion bus feeds."""

from __future__ import annotations

import argparse
import json
import time
from datetime import timedelta
from typing import Any

from upscale_cli.arguments import seconds, whole_number
from upscale_cli.errors import NotDone, UsageError
from upscale_cli.jobs_query import source_key
from upscale_cli.output import Output, cell, cost, plural, size
from upscale_cli.target import Target
from upscale_cli.uploads import Upload, inbox_uploads, unfinished
from upscaler.clock import iso, utc_now
from upscaler.job_record import TERMINAL_STATUSES, JobStatus
from upscaler.jobs import JobStore
from upscaler.open_jobs import OpenJobs

IN_FLIGHT = (JobStatus.CLAIMED.value, JobStatus.SUBMITTED.value)
UNTIL_IDLE_TIMEOUT = 900.0


def add_parser(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("watch", parents=parents, help="live progress as jobs change")
    parser.add_argument(
        "--interval", type=seconds(positive=True), default=2.0, help="seconds between polls (default 2)"
    )
    parser.add_argument("--since", type=seconds(), default=60.0, help="watch jobs created in the last N minutes too")
    parser.add_argument(
        "--until-idle",
        action="store_true",
        help="exit once every upload of the --since window (or each --key) has a finished job and none is in flight",
    )
    parser.add_argument(
        "--key", action="append", default=[], metavar="KEY", help="with --until-idle: wait for this upload (repeatable)"
    )
    parser.add_argument(
        "--min-jobs", type=whole_number(0), default=0, help="with --until-idle: wait until this many jobs exist"
    )
    parser.add_argument(
        "--timeout",
        type=seconds(),
        default=None,
        help=f"give up after this many seconds (0: never; default {UNTIL_IDLE_TIMEOUT:.0f} with --until-idle, "
        "else never); with --until-idle, giving up is exit 1",
    )
    events = parser.add_mutually_exclusive_group()
    events.add_argument(
        "--events-queue", metavar="URL", help="print completion events from this SQS queue (fed by your rule)"
    )
    events.add_argument("--events", action="store_true", help="--local: the local stack's completion events queue")
    parser.add_argument("--count", type=whole_number(0), default=0, help="with events: exit after this many (0: never)")
    parser.add_argument("--once", action="store_true", help="with events: print those waiting now, then exit")
    parser.set_defaults(run=run)


def snapshot(target: Target, since: str, known: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """Jobs opened since `since` that are open now (the open-jobs index), and the `known` jobs (read by
    key, so a job seen open is followed to its end). A job that opened and ended between two polls
    is not seen: `--events` shows every ending."""
    dynamodb = target.client("dynamodb")
    opened = [job.job_id for job in OpenJobs(dynamodb, target.jobs_table).newest() if job.open_since >= since]
    ids = list(dict.fromkeys([*opened, *(known or ())]))
    found = JobStore(dynamodb, target.jobs_table).get_many(ids)
    return {job_id: job.to_record() for job_id, job in found.items()}


def describe(job: dict[str, Any]) -> str:
    status = job["status"]
    detail = ""
    if status == "COMPLETED":
        detail = f"{size(job, 'input')} -> {size(job, 'output')} {cost(job)} {cell(job.get('totalSeconds'))}s"
    elif job.get("errorCode"):
        detail = f"{job['errorCode']}: {job.get('errorMessage', '')}"
    return f"{status:<10} {job.get('sourceKey', '')}  {detail}".rstrip()


def run(args: argparse.Namespace, target: Target, out: Output) -> int:
    if args.events or args.events_queue:
        return run_events(args, target, out)
    since_moment = utc_now() - timedelta(minutes=args.since)
    since = iso(since_moment)
    timeout = args.timeout if args.timeout is not None else (UNTIL_IDLE_TIMEOUT if args.until_idle else 0.0)
    deadline = time.monotonic() + timeout if timeout > 0 else None
    keys = [source_key(target, key) for key in args.key]
    seen: dict[str, str] = {}
    waiting: list[Upload] = []
    missing: list[str] = []  # named keys with no job at all yet (their object may not be there yet either)
    progress = _Progress(out)
    out.line(f"watching {target.description} (jobs created since {since}; Ctrl-C to stop)")
    try:
        while True:
            jobs = snapshot(target, since, set(seen))
            for job_id, job in sorted(jobs.items(), key=lambda item: item[1].get("updatedAt", "")):
                if seen.get(job_id) != job["status"]:
                    seen[job_id] = job["status"]
                    if out.as_json:
                        out.json_line({"event": "job", "at": iso(utc_now()), **job})
                    else:
                        progress.log(f"{job.get('updatedAt', '')}  {describe(job)}")
            in_flight = sum(1 for status in seen.values() if status in IN_FLIGHT)
            done = sum(1 for status in seen.values() if status in TERMINAL_STATUSES)
            if args.until_idle:
                # Listed after the jobs were read: an upload whose job appears meanwhile still counts.
                uploads = inbox_uploads(target, since_moment, keys or None)
                waiting = unfinished(uploads, jobs)
                if waiting:
                    # A job that opened and ended between two polls was never in the open-jobs index
                    # when read (a REJECTED one never is): it is found by its key.
                    jobs.update(_own_jobs(target, waiting))
                    for job_id, job in jobs.items():
                        seen.setdefault(job_id, job["status"])
                    waiting = unfinished(uploads, jobs)
                missing = [key for key in keys if key not in {job.get("sourceKey") for job in jobs.values()}]
            progress.update(done, len(seen) + _without_job(waiting, jobs), in_flight)
            if args.until_idle and in_flight == 0 and not waiting and not missing and len(seen) >= args.min_jobs:
                progress.finish()
                _summary(out, seen)
                return 0
            if deadline is not None and time.monotonic() >= deadline:
                progress.finish()
                _summary(out, seen)
                if not args.until_idle:
                    return 0
                waiting_keys = [upload.key for upload in waiting]
                pending = waiting_keys + [key for key in missing if key not in waiting_keys]
                raise NotDone(
                    f"timed out after {timeout:.0f}s: {plural(in_flight, 'job')} in flight, "
                    f"{plural(len(pending), 'upload')} without a finished job"
                    + (f" ({_some(pending)})" if pending else "")
                )
            time.sleep(args.interval)
    except KeyboardInterrupt:
        progress.finish()
        _summary(out, seen)
        raise


def _own_jobs(target: Target, uploads: list[Upload]) -> dict[str, dict[str, Any]]:
    ids = [job_id for job_id in (upload.job_id(target.inbox_bucket) for upload in uploads) if job_id]
    found = JobStore(target.client("dynamodb"), target.jobs_table).get_many(ids) if ids else {}
    return {job_id: job.to_record() for job_id, job in found.items()}


def _without_job(waiting: list[Upload], jobs: dict[str, dict[str, Any]]) -> int:
    """Uploads still waiting that no job names yet (the others are already counted as jobs)."""
    named = {job.get("sourceKey") for job in jobs.values()}
    return sum(1 for upload in waiting if upload.key not in named)


def _some(keys: list[str], shown: int = 3) -> str:
    return ", ".join(keys[:shown]) + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def _summary(out: Output, seen: dict[str, str]) -> None:
    counts: dict[str, int] = {}
    for status in seen.values():
        counts[status] = counts.get(status, 0) + 1
    if out.as_json:
        out.json_line({"event": "summary", "counts": counts, "jobs": len(seen)})
    else:
        out.line("summary: " + (", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no jobs"))


class _Progress:
    """A rich progress bar on a terminal; otherwise one line per change."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self._bar: Any = None
        self._task: Any = None
        if out.fancy:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]jobs finished"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[in_flight]} in flight"),
                TimeElapsedColumn(),
                console=out.console,
            )
            self._task = self._bar.add_task("jobs", total=0, in_flight=0)
            self._bar.start()

    def log(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            self.out.line(text)

    def update(self, done: int, total: int, in_flight: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=max(total, 1), in_flight=in_flight)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def run_events(args: argparse.Namespace, target: Target, out: Output) -> int:
    """Each completion event as it arrives (deleted from the queue once printed; delivery is at least once)."""
    queue_url = args.events_queue or target.completion_events_queue_url
    if not queue_url:
        raise UsageError(
            "--events needs --local (the local stack routes them to a queue); otherwise give --events-queue URL"
        )
    sqs = target.client("sqs")
    deadline = time.monotonic() + args.timeout if args.timeout else None
    seen = 0
    out.line(f"completion events from {queue_url}" + ("" if args.once else " (Ctrl-C to stop)"))
    while deadline is None or time.monotonic() < deadline:
        wait = 0 if args.once else max(1, min(int(args.interval) or 1, 20))
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait).get(
            "Messages", []
        )
        if args.once and not messages:
            return 0
        for message in messages:
            event = json.loads(message["Body"])
            detail = event.get("detail", {})
            if out.as_json:
                out.json_line({"event": event.get("detail-type"), "at": event.get("time"), **detail})
            else:
                out.line(f"{event.get('time', '')}  {describe(detail)}" if "status" in detail else message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            seen += 1
            if args.count and seen >= args.count:
                return 0
    if args.count:
        raise NotDone(f"timed out after {args.timeout:.0f}s with {seen} of {args.count} completion events")
    return 0
