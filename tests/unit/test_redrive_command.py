"""`redrive` (upscale_cli/redrive_command.py): the dead-letter queue back to the ingestion queue."""

from __future__ import annotations

import io
import json

import boto3
import pytest

from local.message_move import install_message_move_tasks
from tests.conftest import REGION
from tests.unit.cli_target import moto_target, run_command
from upscale_cli import redrive_command
from upscale_cli.main import build_parser
from upscale_cli.output import Output


@pytest.fixture
def queues(aws):
    install_message_move_tasks()
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    ingest = sqs.create_queue(QueueName="ingest")["QueueUrl"]
    return sqs, ingest, dlq


def run(*argv: str, as_json: bool = False, **names: str) -> tuple[int, str]:
    stream = io.StringIO()
    args = build_parser().parse_args(["redrive", *argv])
    output = Output(as_json=as_json, stream=stream)
    return run_command(lambda: redrive_command.run(args, moto_target(**names), output), stream)


def test_an_empty_dead_letter_queue_has_nothing_to_move(queues):
    _, ingest, dlq = queues
    code, text = run(as_json=True, dlq_url=dlq, ingest_queue_url=ingest)
    assert (code, json.loads(text)) == (0, {"deadLetters": 0, "status": "NOTHING_TO_MOVE"})


def test_dead_letters_are_moved_to_the_ingestion_queue_and_waited_for(queues):
    sqs, ingest, dlq = queues
    for index in range(3):
        sqs.send_message(QueueUrl=dlq, MessageBody=f"message {index}")
    code, text = run("--wait", "--timeout", "30", dlq_url=dlq, ingest_queue_url=ingest)
    assert code == 0
    assert text == "3 messages in the dead-letter queue: COMPLETED, moved 3\n"
    moved = sqs.receive_message(QueueUrl=ingest, MaxNumberOfMessages=10).get("Messages", [])
    assert sorted(message["Body"] for message in moved) == ["message 0", "message 1", "message 2"]


def test_without_waiting_the_task_is_reported_running(queues):
    sqs, ingest, dlq = queues
    sqs.send_message(QueueUrl=dlq, MessageBody="one")
    code, text = run(as_json=True, dlq_url=dlq, ingest_queue_url=ingest)
    report = json.loads(text)
    assert code == 0
    assert (report["deadLetters"], report["status"]) == (1, "RUNNING")
    assert report["taskHandle"]


def test_a_stack_without_both_queues_is_exit_status_2(queues):
    _, ingest, _ = queues
    code, text = run(ingest_queue_url=ingest)
    assert (code, text) == (
        3,
        "stack test (moto) has no ingestion and dead-letter queue outputs (IngestQueueUrl, SubmitDeadLetterQueueUrl)\n",
    )
