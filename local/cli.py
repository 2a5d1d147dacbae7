"""Command line for what only the embedded local stack has.

up       run the stack in the foreground and print how to use it with the AWS CLI
         (--fault outage|401|402 starts it with that Runware fault in force; --presets FILE
         with those folder presets, a bad document refused at start)
demo     start the stack, upscale the sample images, download results to ./out/, print a table
fault    set (outage, 401, 402) or clear a Runware fault on the running stack

Exit statuses: 0 done, 1 the demo's results are not as expected, 2 usage (and a custom resource of
the template that refuses the parameters, such as bad presets), 3 no local stack is
running (fault), 5 its emulator does not answer (fault), 7 a local stack is already running or its
port is taken (up), 130 interrupted.

Operating a running stack (status, jobs, watch, completion events, smoke, redrive, backfill,
set-key) is `s3-upscale --local ...`, the same command as for a deployed stack.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import socket
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from local.fault_presets import FAULT_PRESETS
from upscaler.job_record import TERMINAL_STATUSES

EXIT_NOT_DONE = 1
EXIT_USAGE = 2
EXIT_NO_STACK = 3
EXIT_UNREACHABLE = 5
EXIT_ALREADY_RUNNING = 7
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run the local stack in the foreground")
    up.add_argument("--aws-port", type=int, default=4566, help="port of the local AWS endpoint (default 4566)")
    up.add_argument(
        "--fault",
        choices=sorted(FAULT_PRESETS),
        help="start with this Runware fault in force: outage (HTTP 503), 401 (invalidApiKey), "
        "402 (insufficientCredits)",
    )
    _add_fault_options(up)

    demo = commands.add_parser("demo", help="upscale the sample images end to end")
    demo.add_argument("--out", type=Path, default=Path("out"), help="where to download results (default ./out)")
    demo.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for every job")
    _add_fault_options(demo)

    fault = commands.add_parser("fault", help="set or clear a Runware fault on the running local stack")
    fault.add_argument("name", choices=[*sorted(FAULT_PRESETS), "clear"], help="the fault, or clear")

    args = parser.parse_args(argv)
    runners = {"up": run_up, "demo": run_demo, "fault": run_fault}
    try:
        return runners[args.command](args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _add_fault_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter for the local stack, e.g. ExistingBucketName=my-photos (repeatable)",
    )
    parser.add_argument(
        "--presets",
        type=Path,
        metavar="FILE",
        help="folder presets: a JSON file, the UploadPresets parameter (docs/presets.md); a bad one stops the start",
    )
    group = parser.add_argument_group("Runware emulator faults")
    group.add_argument("--latency", type=float, default=0.0, help="seconds of processing per task")
    group.add_argument("--drop-webhooks", type=float, default=0.0, help="share of webhooks never sent (0..1)")
    group.add_argument("--fail-tasks", type=float, default=0.0, help="share of tasks that fail (0..1)")


def _stack_config(args: argparse.Namespace, default_parameters: dict[str, str] | None = None, **overrides: Any) -> Any:
    from local.fault_presets import with_preset
    from local.runware_emulator import FaultConfig
    from local.stack import StackConfig

    faults = FaultConfig(
        latency_seconds=args.latency, drop_webhook_rate=args.drop_webhooks, task_failure_rate=args.fail_tasks
    )
    if getattr(args, "fault", None):
        faults = with_preset(faults, args.fault)
    parameters = dict(item.split("=", 1) for item in args.parameter)
    if args.presets is not None:
        parameters["UploadPresets"] = args.presets.read_text(encoding="utf-8")
    parameters = {**(default_parameters or {}), **parameters}
    return StackConfig(faults=faults, parameter_overrides=parameters, **overrides)


# ---- up ----------------------------------------------------------------------------------------

LOCAL_REGION = "us-east-1"


def shell_setup(state: dict[str, Any], dlq_arn: str) -> list[str]:
    """The lines that point a shell's AWS CLI at the local stack and name its resources: every name the
    documentation's AWS CLI examples use, from the stack's state (`local.state_file.stack_state`)."""
    settings = {
        "AWS_ENDPOINT_URL": state["aws_endpoint"],
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": LOCAL_REGION,
    }
    names = {
        "INBOX_BUCKET": state["inbox_bucket"],
        "INBOX_PREFIX": state["inbox_prefix"],
        "OUTPUT_BUCKET": state["output_bucket"],
        "JOBS_TABLE": state["jobs_table"],
        "INGEST_QUEUE_URL": state["ingest_queue_url"],
        "DLQ_URL": state["dlq_url"],
        "DLQ_ARN": dlq_arn,
        "RUNWARE_SECRET_ARN": state["environment"]["RUNWARE_API_KEY_SECRET"],
    }
    return [
        _export(settings),
        # AWS CLI v1 sends SQS requests in us-east-1 to queue.amazonaws.com despite AWS_ENDPOINT_URL.
        'aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }',
        _export(names),
    ]


def _export(values: dict[str, str]) -> str:
    return "export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in values.items())


def already_running() -> str | None:
    """Why a second `up` must not start: the running (or starting) stack, named by its state file;
    None if none runs, and then the state file is this process's claim."""
    from local.state_file import claim, state_file_path

    state = claim()
    if state is None:
        return None
    if state.get("starting"):
        where = "still starting"
    else:
        where = f"AWS {state.get('aws_endpoint')}, Runware emulator {state.get('runware_url')}"
    return (
        f"a local stack is already running (pid {state.get('pid')}, {where}; state file {state_file_path()}): "
        "use it, or stop it (Ctrl-C in its shell) first"
    )


def port_taken(port: int) -> bool:
    if port == 0:
        return False
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def run_up(args: argparse.Namespace) -> int:
    from local.custom_resources import CustomResourceFailed
    from local.stack import LocalStack
    from local.state_file import stack_state, state_file_path, write_state

    running = already_running()
    if running is not None:
        print(f"python -m local up: {running}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    if port_taken(args.aws_port):
        state_file_path().unlink(missing_ok=True)  # this process's claim
        print(
            f"python -m local up: port {args.aws_port} on 127.0.0.1 is in use by another program: stop it, "
            "or pass --aws-port PORT",
            file=sys.stderr,
        )
        return EXIT_ALREADY_RUNNING

    try:
        stack = LocalStack(_stack_config(args, aws_port=args.aws_port, function_log_level="INFO")).start()
    except CustomResourceFailed as refused:
        state_file_path().unlink(missing_ok=True)  # this process's claim
        print(f"python -m local up: the stack would not deploy: {refused}", file=sys.stderr)
        return EXIT_USAGE
    except BaseException:
        state_file_path().unlink(missing_ok=True)  # this process's claim
        raise
    state_file = write_state(stack)
    # A plain `kill` must remove the state file too, not only Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    names = stack.names
    sqs = stack.client("sqs")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=names["dlq_url"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    print("Local stack is up (Ctrl-C to stop). Everything listens on 127.0.0.1 only.")
    print(f"  AWS (moto):       {stack.aws_endpoint}")
    print(f"  Runware emulator: {stack.emulator.url if stack.emulator else ''}")
    print(f"  Webhook gateway:  {names['webhook_url']}")
    if getattr(args, "fault", None):
        print(f"  Runware fault:    {args.fault} (clear it with: python -m local fault clear)")
    print("\nIn another shell, paste these lines (the AWS CLI examples in README.md and docs/ use these names):")
    for line in shell_setup(stack_state(stack), dlq_arn):
        print("  " + line)
    print("then, for example:")
    print('  aws s3 cp photo.jpg "s3://$INBOX_BUCKET/${INBOX_PREFIX}photo.jpg"')
    print('  aws s3 ls "s3://$OUTPUT_BUCKET/" --recursive')
    print("  .venv/bin/s3-upscale --local status")
    print("  .venv/bin/s3-upscale --local watch --events      # completion events as they come")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        stack.stop()
        state_file.unlink(missing_ok=True)
    return 0


# ---- fault ---------------------------------------------------------------------------------------


def run_fault(args: argparse.Namespace) -> int:
    from local.fault_presets import active_preset, set_fault
    from local.state_file import running_stack_state, state_file_path

    state = running_stack_state()
    if state is None or not state.get("runware_url"):
        print(
            f"python -m local fault: no local stack is running (no live one in {state_file_path()}): "
            "start one with `make up`",
            file=sys.stderr,
        )
        return EXIT_NO_STACK
    import httpx

    try:
        faults = set_fault(state["runware_url"], args.name)
    except httpx.HTTPError as error:
        print(f"python -m local fault: the Runware emulator at {state['runware_url']} did not answer: {error}",
              file=sys.stderr)  # fmt: skip
        return EXIT_UNREACHABLE
    now = active_preset(faults)
    print(f"Runware emulator at {state['runware_url']}: " + (f"fault {now} in force" if now else "no fault in force"))
    return 0


# ---- demo --------------------------------------------------------------------------------------


def run_demo(args: argparse.Namespace) -> int:
    from local.custom_resources import CustomResourceFailed
    from local.samples import DEMO_PRESETS

    print("Starting the local stack (moto AWS, Runware emulator, webhook gateway) on 127.0.0.1 ...")
    print("Note: the Runware emulator resizes with classical resampling; it is not the AI model.\n")
    try:
        return _demo(args, _stack_config(args, {"UploadPresets": json.dumps(DEMO_PRESETS)}))
    except CustomResourceFailed as refused:
        print(f"python -m local demo: the stack would not deploy: {refused}", file=sys.stderr)
        return EXIT_USAGE


def _demo(args: argparse.Namespace, config: Any) -> int:
    from local.demo_page import DemoEntry, write_demo_page
    from local.samples import samples
    from local.stack import LocalStack

    started = time.monotonic()
    with LocalStack(config) as stack:
        s3 = stack.client("s3")
        inbox_bucket, prefix = stack.names["inbox_bucket"], stack.names["inbox_prefix"]
        drops = samples()
        for sample in drops:
            s3.put_object(Bucket=inbox_bucket, Key=prefix + sample.name, Body=sample.body, Metadata=sample.metadata)
        print(f"Dropped {len(drops)} objects into s3://{inbox_bucket}/{prefix}")
        jobs: list[dict[str, Any]] = []
        for jobs in stack.wait_for_jobs(len(drops), timeout=args.timeout):
            done = sum(1 for job in jobs if job["status"] in TERMINAL_STATUSES)
            _progress(done, len(drops), time.monotonic() - started)
        print()
        by_key = {job["sourceKey"]: job for job in jobs}
        args.out.mkdir(parents=True, exist_ok=True)
        rows, problems, entries = [], [], []
        for sample in drops:
            job = by_key.get(prefix + sample.name)
            if job is None or job["status"] not in TERMINAL_STATUSES:
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
            entries.append(DemoEntry(sample.name, sample.note, sample.body, job, target, sample.detail_focus))
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
