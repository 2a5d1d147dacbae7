"""local.message_move: SQS message move tasks on moto, called through boto3 as in AWS."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from local.message_move import install_message_move_tasks
from tests.conftest import REGION


@pytest.fixture
def sqs(aws):
    install_message_move_tasks()
    return boto3.client("sqs", region_name=REGION)


def queue(sqs, name: str, dlq_arn: str | None = None) -> tuple[str, str]:
    # Tasks are kept per process, by source ARN: a name of its own keeps each test's tasks apart.
    name = f"{name}-{uuid.uuid4().hex[:8]}"
    attributes = (
        {"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})} if dlq_arn else {}
    )
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def drain(sqs, url: str) -> list[dict]:
    messages: list[dict] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=30
    ).get("Messages", []):
        messages.extend(batch)
    return messages


def test_installing_twice_is_harmless(sqs):
    install_message_move_tasks()
    _, dlq_arn = queue(sqs, "dlq")
    queue(sqs, "ingest", dlq_arn)
    assert sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]  # still one handler, no recursion


def test_every_message_moves_back_to_the_queue_that_dead_lettered_it_with_its_attributes(sqs):
    dlq, dlq_arn = queue(sqs, "dlq")
    source, source_arn = queue(sqs, "ingest", dlq_arn)
    for index in range(13):  # more than one receive's worth
        sqs.send_message(
            QueueUrl=dlq,
            MessageBody=f"upload {index}",
            MessageAttributes={"origin": {"DataType": "String", "StringValue": f"o{index}"}},
        )
    handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    moved = drain(sqs, source)
    assert sorted(m["Body"] for m in moved) == sorted(f"upload {index}" for index in range(13))
    assert {m["MessageAttributes"]["origin"]["StringValue"] for m in moved} == {f"o{index}" for index in range(13)}
    assert drain(sqs, dlq) == []
    [task] = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
    assert handle and "TaskHandle" not in task
    assert (task["Status"], task["SourceArn"], task["DestinationArn"]) == ("COMPLETED", dlq_arn, source_arn)
    assert task["ApproximateNumberOfMessagesMoved"] == task["ApproximateNumberOfMessagesToMove"] == 13


def test_a_named_destination_wins_and_tasks_are_listed_newest_first(sqs):
    dlq, dlq_arn = queue(sqs, "dlq")
    queue(sqs, "ingest", dlq_arn)
    other, other_arn = queue(sqs, "other")
    sqs.send_message(QueueUrl=dlq, MessageBody="stuck")
    sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=other_arn)
    sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=other_arn)  # nothing left to move
    assert [m["Body"] for m in drain(sqs, other)] == ["stuck"]
    latest = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
    assert [task["ApproximateNumberOfMessagesMoved"] for task in latest] == [0]  # MaxResults defaults to 1
    both = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10)["Results"]
    assert [task["ApproximateNumberOfMessagesMoved"] for task in both] == [0, 1]


def test_without_a_destination_a_queue_that_is_no_ones_dead_letter_queue_is_refused(sqs):
    _, lonely_arn = queue(sqs, "lonely")
    with pytest.raises(ValueError, match="dead-letter queue of 0 queues; name a destination"):
        sqs.start_message_move_task(SourceArn=lonely_arn)
