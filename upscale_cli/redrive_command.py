"""`redrive`: move the dead-letter queue's messages back to the ingestion queue (an SQS message move task)."""

from __future__ import annotations

import argparse

from upscale_cli.arguments import seconds
from upscale_cli.errors import StackNotFound
from upscale_cli.output import Output, plural
from upscale_cli.redrive import redrive, wait_for_task
from upscale_cli.target import Target


def add_parser(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "redrive", parents=parents, help="move the dead-letter queue back to the ingestion queue"
    )
    parser.add_argument("--wait", action="store_true", help="wait until SQS has moved every message")
    parser.add_argument("--timeout", type=seconds(), default=900.0, help="with --wait: seconds to wait (default 900)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, target: Target, out: Output) -> int:
    if not (target.dlq_url and target.ingest_queue_url):
        raise StackNotFound(
            f"{target.description} has no ingestion and dead-letter queue outputs "
            "(IngestQueueUrl, SubmitDeadLetterQueueUrl)"
        )
    sqs = target.client("sqs")
    waiting = int(
        sqs.get_queue_attributes(QueueUrl=target.dlq_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
    )
    report: dict[str, object] = {"deadLetters": waiting}
    if waiting == 0:
        report["status"] = "NOTHING_TO_MOVE"
    else:
        dlq_arn = target.dlq_arn or target.queue_arn(target.dlq_url)
        # The destination is named: a message sent to the DLQ by hand has no source queue to return to.
        destination = target.ingest_queue_arn or target.queue_arn(target.ingest_queue_url)
        task = redrive(sqs, dlq_arn=dlq_arn, destination_arn=destination)
        report.update(taskHandle=task.task_handle, status="RUNNING")
        if args.wait:
            final = wait_for_task(sqs, dlq_arn=dlq_arn, timeout=args.timeout, poll=1.0) or {}
            report.update(status=final.get("Status"), moved=final.get("ApproximateNumberOfMessagesMoved"))
    if out.as_json:
        out.json(report)
    else:
        moved = f", moved {report['moved']}" if "moved" in report else ""
        out.line(f"{plural(waiting, 'message')} in the dead-letter queue: {report['status']}{moved}")
    return 0 if report["status"] in ("NOTHING_TO_MOVE", "RUNNING", "COMPLETED") else 1
