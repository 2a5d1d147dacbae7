"""Re-drive (upscale_cli/redrive.py) through SQS message move tasks, on moto with the local stack's implementation."""

from __future__ import annotations

import json

import boto3
import pytest

from local.message_move import install_message_move_tasks
from tests.conftest import REGION
from upscale_cli.redrive import latest_task, redrive


@pytest.fixture
def queues(aws):
    install_message_move_tasks()
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    source = sqs.create_queue(
        QueueName="ingest",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})},
    )["QueueUrl"]
    return sqs, source, dlq, dlq_arn


def bodies(sqs, url: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return sorted(message["Body"] for message in messages)


def test_dead_letters_go_back_to_the_queue_they_came_from(queues):
    sqs, source, dlq, dlq_arn = queues
    for index in range(3):
        sqs.send_message(QueueUrl=source, MessageBody=f"upload {index}")
    sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, VisibilityTimeout=0)
    assert bodies(sqs, source) == [], "received maxReceiveCount times: moved to the DLQ"
    task = redrive(sqs, dlq_arn=dlq_arn)
    assert task.task_handle
    status = latest_task(sqs, dlq_arn=dlq_arn)
    assert status["Status"] == "COMPLETED" and status["ApproximateNumberOfMessagesMoved"] == 3
    assert bodies(sqs, source) == ["upload 0", "upload 1", "upload 2"]
    assert bodies(sqs, dlq) == []


def test_a_destination_can_be_named(queues):
    sqs, _, dlq, dlq_arn = queues
    other = sqs.create_queue(QueueName="other")["QueueUrl"]
    other_arn = sqs.get_queue_attributes(QueueUrl=other, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.send_message(QueueUrl=dlq, MessageBody="stuck")
    redrive(sqs, dlq_arn=dlq_arn, destination_arn=other_arn)
    assert bodies(sqs, other) == ["stuck"]
