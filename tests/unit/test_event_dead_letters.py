"""An event a rule cannot deliver to its SQS target goes to the target's dead-letter queue, as in
EventBridge, with the attributes EventBridge documents (moto alone raises out of the sender)."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from local.event_dead_letters import install_target_dead_letter_queues

REGION = "us-east-1"


@pytest.fixture
def moto(environment):
    install_target_dead_letter_queues()  # what the local stack installs before its moto server starts
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION), boto3.client("events", region_name=REGION)


def queue(sqs, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def upload_rule(events, target: dict) -> str:
    arn = events.put_rule(Name="uploads", EventPattern=json.dumps({"source": ["test.uploads"]}))["RuleArn"]
    events.put_targets(Rule="uploads", Targets=[target])
    return arn


def send_upload(events) -> None:
    entry = {"Source": "test.uploads", "DetailType": "Object Created", "Detail": json.dumps({"key": "a.jpg"})}
    assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0


def test_an_event_for_a_missing_queue_goes_to_the_dead_letter_queue_with_why(moto):
    sqs, events = moto
    dlq_url, dlq_arn = queue(sqs, "dead-letters")
    _, gone_arn = queue(sqs, "ingest")
    sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName="ingest")["QueueUrl"])
    rule_arn = upload_rule(events, {"Id": "ingest", "Arn": gone_arn, "DeadLetterConfig": {"Arn": dlq_arn}})

    send_upload(events)

    [letter] = sqs.receive_message(QueueUrl=dlq_url, MessageAttributeNames=["All"])["Messages"]
    attributes = {name: value["StringValue"] for name, value in letter["MessageAttributes"].items()}
    assert attributes["RULE_ARN"] == rule_arn and attributes["TARGET_ARN"] == gone_arn
    assert attributes["ERROR_CODE"] == "NO_RESOURCE" and attributes["ERROR_MESSAGE"]
    body = json.loads(letter["Body"])
    assert (body["source"], body["detail-type"], body["detail"]) == ("test.uploads", "Object Created", {"key": "a.jpg"})


def test_a_delivered_event_is_not_dead_lettered(moto):
    sqs, events = moto
    dlq_url, dlq_arn = queue(sqs, "dead-letters")
    ingest_url, ingest_arn = queue(sqs, "ingest")
    upload_rule(events, {"Id": "ingest", "Arn": ingest_arn, "DeadLetterConfig": {"Arn": dlq_arn}})

    send_upload(events)

    assert len(sqs.receive_message(QueueUrl=ingest_url).get("Messages", [])) == 1
    assert sqs.receive_message(QueueUrl=dlq_url).get("Messages", []) == []
