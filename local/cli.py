"""Command line for the embedded local stack.

up       run the stack in the foreground and print how to use it with the AWS CLI
demo     start the stack, upscale the sample images, download results to ./out/, print a table
status   the jobs of a running stack (started with `up`), newest first
redrive  move a running stack's dead-letter queue back to its ingestion queue (a message move task)
backfill enqueue the objects already under a prefix of the running stack's inbox
events   print the running stack's completion events as they come
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

# At the repository root whatever the working directory, so `s3-upscale --local` finds it.
STATE_FILE = Path(__file__).resolve().parent.parent / ".local-stack" / "state.json"
TERMINAL = ("COMPLETED", "FAILED", "REJECTED", "TIMED_OUT")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the local stack in the foreground")
    up.add_argument("--aws-port", type=int, default=4566, help="port of the local AWS endpoint (default 4566)")
    _add_fault_options(up)

    demo = commands.add_parser("demo", help="upscale the sample images end to end")
    demo.add_argument("--out", type=Path, default=Path("out"), help="where to download results (default ./out)")
    demo.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for every job")
    _add_fault_options(demo)

    status = commands.add_parser("status", help="jobs of the stack started with `up`, newest first")
    status.add_argument("--status", choices=[*TERMINAL, "SUBMITTED", "CLAIMED"], help="only jobs in this status")
    status.add_argument("--limit", type=int, default=50)

    commands.add_parser("redrive", help="move the dead-letter queue back to the ingestion queue")

    backfill = commands.add_parser("backfill", help="enqueue objects already in the inbox")
    backfill.add_argument("--prefix", help="key prefix to backfill (default: the stack's InboxPrefix)")
    backfill.add_argument("--dry-run", action="store_true", help="only count the objects")

    events = commands.add_parser("events", help="print completion events as they come (Ctrl-C to stop)")
    events.add_argument("--once", action="store_true", help="print what is waiting, then exit")

    args = parser.parse_args(argv)
    runners = {
        "up": run_up,
        "demo": run_demo,
        "status": run_status,
        "redrive": run_redrive,
        "backfill": run_backfill,
        "events": run_events,
    }
    return runners[args.command](args)


def _add_fault_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter for the local stack, e.g. ExistingBucketName=my-photos (repeatable)",
    )
    group = parser.add_argument_group("Runware emulator faults")
    group.add_argument("--latency", type=float, default=0.0, help="seconds of processing per task")
    group.add_argument("--drop-webhooks", type=float, default=0.0, help="share of webhooks never sent (0..1)")
    group.add_argument("--fail-tasks", type=float, default=0.0, help="share of tasks that fail (0..1)")


def _stack_config(args: argparse.Namespace, **overrides: Any) -> Any:
    from local.runware_emulator import FaultConfig
    from local.stack import StackConfig

    faults = FaultConfig(
        latency_seconds=args.latency, drop_webhook_rate=args.drop_webhooks, task_failure_rate=args.fail_tasks
    )
    parameters = dict(item.split("=", 1) for item in args.parameter)
    return StackConfig(faults=faults, parameter_overrides=parameters, **overrides)


# ---- up ----------------------------------------------------------------------------------------


def run_up(args: argparse.Namespace) -> int:
    from local.stack import LocalStack

    stack = LocalStack(_stack_config(args, aws_port=args.aws_port, function_log_level="INFO")).start()
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "pid": os.getpid(),
        "aws_endpoint": stack.aws_endpoint,
        "runware_url": stack.emulator.url if stack.emulator else "",
        "environment": stack.environment,
        **stack.names,
    }
    STATE_FILE.write_text(json.dumps(state, indent=2))
    # A plain `kill` must remove the state file too, not only Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    names = stack.names
    inbox = f"s3://{names['inbox_bucket']}/{names['inbox_prefix']}"
    exports = {
        "AWS_ENDPOINT_URL": stack.aws_endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    print("Local stack is up (Ctrl-C to stop). Everything listens on 127.0.0.1 only.")
    print(f"  AWS (moto):       {stack.aws_endpoint}")
    print(f"  Runware emulator: {stack.emulator.url if stack.emulator else ''}")
    print(f"  Webhook gateway:  {names['webhook_url']}")
    print("\nIn another shell:")
    print("  export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in exports.items()))
    print(f"  aws s3 cp photo.jpg {inbox}photo.jpg")
    print(f"  aws s3 cp photo.png {inbox}photo.png --metadata target-megapixels=2,output-format=PNG")
    print(f"  aws s3 ls s3://{names['output_bucket']}/ --recursive")
    print(f"  aws dynamodb scan --table-name {names['jobs_table']}")
    print("  .venv/bin/python -m local status")
    print("  .venv/bin/python -m local events      # completion events as they come")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        stack.stop()
        STATE_FILE.unlink(missing_ok=True)
    return 0


# ---- demo --------------------------------------------------------------------------------------


def run_demo(args: argparse.Namespace) -> int:
    from local.demo_page import DemoEntry, write_demo_page
    from local.samples import samples
    from local.stack import LocalStack

    print("Starting the local stack (moto AWS, Runware emulator, webhook gateway) on 127.0.0.1 ...")
    print("Note: the Runware emulator resizes with classical resampling; it is not the AI model.\n")
    started = time.monotonic()
    with LocalStack(_stack_config(args)) as stack:
        s3 = stack.client("s3")
        inbox_bucket, prefix = stack.names["inbox_bucket"], stack.names["inbox_prefix"]
        drops = samples()
        for sample in drops:
            s3.put_object(Bucket=inbox_bucket, Key=prefix + sample.name, Body=sample.body, Metadata=sample.metadata)
        print(f"Dropped {len(drops)} objects into s3://{inbox_bucket}/{prefix}")
        jobs: list[dict[str, Any]] = []
        for jobs in stack.wait_for_jobs(len(drops), timeout=args.timeout):
            done = sum(1 for job in jobs if job["status"] in TERMINAL)
            _progress(done, len(drops), time.monotonic() - started)
        print()
        by_key = {job["sourceKey"]: job for job in jobs}
        args.out.mkdir(parents=True, exist_ok=True)
        rows, problems, entries = [], [], []
        for sample in drops:
            job = by_key.get(prefix + sample.name)
            if job is None or job["status"] not in TERMINAL:
                problems.append(f"{sample.name}: no terminal job")
                continue
            if job["status"] != sample.expected_status:
                problems.append(f"{sample.name}: {job['status']}, expected {sample.expected_status}")
            target = None
            if job["status"] == "COMPLETED":
                target = Path(args.out) / Path(job["outputKey"]).name
                s3.download_file(job["outputBucket"], job["outputKey"], str(target))
                problems.extend(_check_output(sample.name, job, target))
            rows.append(_row(sample.name, job))
            entries.append(DemoEntry(sample.name, sample.note, sample.body, job, target))
        _print_table(rows)
        page = write_demo_page(Path(args.out), entries)
        print(f"\nOutputs in {args.out.resolve()}; before and after: {page.resolve()}")
        print(f"Finished in {time.monotonic() - started:.1f}s.")
    if problems:
        print("\nProblems:\n  " + "\n  ".join(problems))
        return 1
    print("Every sample reached the expected terminal state.")
    return 0


def _check_output(name: str, job: dict[str, Any], path: Path) -> list[str]:
    from PIL import Image

    with Image.open(path) as image:
        width, height, fmt = image.width, image.height, image.format
    target = int(job["targetMegapixels"]) * 1_000_000
    problems = []
    if abs(width * height - target) > 0.02 * target:
        problems.append(f"{name}: output {width}x{height} is not within 2% of {job['targetMegapixels']} MP")
    expected_format = {"JPG": "JPEG"}.get(job["outputFormat"], job["outputFormat"])
    if fmt != expected_format:
        problems.append(f"{name}: output is {fmt}, expected {expected_format}")
    return problems


def _progress(done: int, total: int, elapsed: float) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    bar = "#" * filled + "-" * (width - filled)
    end = "" if sys.stdout.isatty() else "\n"
    print(f"\r[{bar}] {done}/{total} jobs finished  {elapsed:5.1f}s", end=end, flush=True)


def _size(job: dict[str, Any], prefix: str) -> str:
    width, height = job.get(f"{prefix}Width"), job.get(f"{prefix}Height")
    return f"{int(width)}x{int(height)}" if width and height else "-"


def _row(name: str, job: dict[str, Any]) -> list[str]:
    cost = job.get("cost")
    seconds = job.get("totalSeconds")
    detail = job.get("errorCode", "")
    return [
        name,
        _size(job, "input"),
        _size(job, "output"),
        str(job.get("outputFormat", "-")) if job["status"] == "COMPLETED" else "-",
        job["status"] + (f" ({detail})" if detail else ""),
        f"${Decimal(str(cost)):.4f}" if cost is not None else "-",
        f"{float(seconds):.1f}" if seconds is not None else "-",
    ]


def _print_table(rows: list[list[str]]) -> None:
    header = ["source", "input", "output", "format", "status", "cost", "seconds"]
    widths = [
        max(len(header[i]), *(len(row[i]) for row in rows)) if rows else len(header[i]) for i in range(len(header))
    ]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))


# ---- status and redrive (against a stack started with `up`) -------------------------------------


def _running_stack_state() -> dict[str, Any]:
    if not STATE_FILE.exists():
        raise SystemExit("No running local stack: start one with `python -m local up` (state file missing).")
    state: dict[str, Any] = json.loads(STATE_FILE.read_text())
    os.environ.update(state["environment"])
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": state["aws_endpoint"],
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    return state


def run_status(args: argparse.Namespace) -> int:
    state = _running_stack_state()
    from local.lambda_runtime import ensure_layer_on_path

    ensure_layer_on_path()
    import boto3

    from upscaler.jobs import JobStatus, JobStore

    store = JobStore(boto3.client("dynamodb"), state["jobs_table"])
    statuses = [JobStatus(args.status)] if args.status else list(JobStatus)
    jobs: list[dict[str, Any]] = []
    for status in statuses:
        jobs.extend(store.find_by_status(status, newest_first=True, limit=args.limit))
    jobs.sort(key=lambda job: job["createdAt"], reverse=True)
    _print_table([_row(job["sourceKey"], job) for job in jobs[: args.limit]])
    return 0


def run_redrive(args: argparse.Namespace) -> int:
    state = _running_stack_state()
    import boto3

    from upscale_cli.redrive import latest_task, redrive

    sqs = boto3.client("sqs")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=state["dlq_url"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    task = redrive(sqs, dlq_arn=dlq_arn)
    status = latest_task(sqs, dlq_arn=dlq_arn) or {}
    moved = status.get("ApproximateNumberOfMessagesMoved", 0)
    print(f"message move task {task.task_handle}: {status.get('Status', 'unknown')}, {moved} message(s) moved")
    return 0


def run_backfill(args: argparse.Namespace) -> int:
    state = _running_stack_state()
    import boto3
    from botocore.config import Config

    from upscale_cli.backfill import backfill

    prefix = state["inbox_prefix"] if args.prefix is None else args.prefix
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
    report = backfill(
        s3,
        boto3.client("sqs"),
        bucket=state["inbox_bucket"],
        prefix=prefix,
        queue_url=state["ingest_queue_url"],
        dry_run=args.dry_run,
    )
    action = "would enqueue" if report.dry_run else "enqueued"
    print(
        f"s3://{report.bucket}/{report.prefix}: {report.objects} object(s), {report.bytes} bytes; "
        f"{action} {report.objects if report.dry_run else report.enqueued}"
        + (f"; {report.skipped_folders} folder marker(s) skipped" if report.skipped_folders else "")
    )
    return 0


def run_events(args: argparse.Namespace) -> int:
    state = _running_stack_state()
    import boto3

    sqs = boto3.client("sqs")
    try:
        while True:
            messages = sqs.receive_message(
                QueueUrl=state["completion_events_url"], MaxNumberOfMessages=10, WaitTimeSeconds=0 if args.once else 5
            ).get("Messages", [])
            for message in messages:
                event = json.loads(message["Body"])
                detail = event.get("detail", {})
                print(
                    json.dumps(
                        {"detail-type": event.get("detail-type"), "time": event.get("time"), **detail}, default=str
                    ),
                    flush=True,
                )
                sqs.delete_message(QueueUrl=state["completion_events_url"], ReceiptHandle=message["ReceiptHandle"])
            if args.once and not messages:
                return 0
    except KeyboardInterrupt:
        return 0
