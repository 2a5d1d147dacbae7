"""local/moto_speedups.py: moto answers the same with the speedups installed."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from local.moto_speedups import install_moto_speedups
from tests.conftest import JOBS_TABLE, REGION

ACCOUNT_ID = "123456789012"  # moto's default account


@pytest.fixture
def sqs(aws):
    install_moto_speedups()
    return boto3.client("sqs", region_name=REGION)


def backend_queue(name: str):
    from moto.sqs.models import sqs_backends

    return sqs_backends[ACCOUNT_ID][REGION].queues[name]


def test_a_message_older_than_the_retention_period_is_not_received(sqs):
    expired = sqs.create_queue(QueueName="expired", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    fresh = sqs.create_queue(QueueName="fresh", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=expired, MessageBody="old")
    sqs.send_message(QueueUrl=fresh, MessageBody="new")
    backend_queue("expired")._messages[0].sent_timestamp = int((time.time() - 61) * 1000)

    assert sqs.receive_message(QueueUrl=expired, MaxNumberOfMessages=10).get("Messages", []) == []
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=fresh, MaxNumberOfMessages=10)["Messages"]] == ["new"]


def test_visibility_and_counts_are_kept(sqs):
    url = sqs.create_queue(QueueName="counted")["QueueUrl"]
    for index in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{index}")
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)

    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=30)["Messages"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    rest = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]

    assert len(first) == 2
    assert attributes["ApproximateNumberOfMessages"] == "1"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "2"
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
    assert len(rest) == 1 and rest[0]["Body"] not in {message["Body"] for message in first}


def test_each_event_reaches_its_target_with_its_own_fields(sqs):
    events = boto3.client("events", region_name=REGION)
    url = sqs.create_queue(QueueName="events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventPattern=json.dumps({"source": ["upscale.test"]}))
    events.put_targets(
        Rule="all",
        Targets=[
            {"Id": "whole", "Arn": arn},
            {
                "Id": "shaped",
                "Arn": arn,
                "InputTransformer": {"InputPathsMap": {"job": "$.detail.jobId"}, "InputTemplate": '{"job": "<job>"}'},
            },
        ],
    )
    for job in ("a", "b"):
        events.put_events(Entries=[{"Source": "upscale.test", "DetailType": "t", "Detail": json.dumps({"jobId": job})}])

    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]

    assert sorted(body["detail"]["jobId"] for body in bodies if "detail" in body) == ["a", "b"]
    assert sorted(body["job"] for body in bodies if "job" in body) == ["a", "b"]


def test_services_are_still_found_by_name():
    install_moto_speedups()
    from moto import backends

    assert {"s3", "sqs", "dynamodb", "events"} <= set(backends.list_of_moto_modules())


@pytest.fixture
def dynamodb(aws):
    install_moto_speedups()
    return aws.dynamodb


def put(dynamodb, job_id: str, status: str) -> None:
    dynamodb.put_item(TableName=JOBS_TABLE, Item={"jobId": {"S": job_id}, "status": {"S": status}})


def statuses(dynamodb, *job_ids: str) -> list[str | None]:
    found = []
    for job_id in job_ids:
        item = dynamodb.get_item(TableName=JOBS_TABLE, Key={"jobId": {"S": job_id}}).get("Item")
        found.append(item["status"]["S"] if item else None)
    return found


def test_a_cancelled_transaction_leaves_every_item_it_named_as_it_was(dynamodb):
    put(dynamodb, "a", "CLAIMED")
    put(dynamodb, "c", "SUBMITTED")
    put(dynamodb, "untouched", "COMPLETED")
    actions = [
        {
            "Update": {
                "TableName": JOBS_TABLE,
                "Key": {"jobId": {"S": "a"}},
                "UpdateExpression": "SET #s = :s",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {":s": {"S": "SUBMITTED"}},
            }
        },
        {"Put": {"TableName": JOBS_TABLE, "Item": {"jobId": {"S": "b"}, "status": {"S": "CLAIMED"}}}},
        {
            "Put": {
                "TableName": JOBS_TABLE,
                "Item": {"jobId": {"S": "c"}, "status": {"S": "CLAIMED"}},
                "ConditionExpression": "attribute_not_exists(jobId)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
    ]
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(TransactItems=actions)
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = raised.value.response["CancellationReasons"]
    assert [reason["Code"] for reason in reasons] == ["None", "None", "ConditionalCheckFailed"]
    assert reasons[2]["Item"]["status"] == {"S": "SUBMITTED"}
    assert statuses(dynamodb, "a", "b", "c", "untouched") == ["CLAIMED", None, "SUBMITTED", "COMPLETED"]

    dynamodb.transact_write_items(TransactItems=actions[:2])
    assert statuses(dynamodb, "a", "b", "c", "untouched") == ["SUBMITTED", "CLAIMED", "SUBMITTED", "COMPLETED"]


def test_a_transaction_naming_an_item_twice_is_refused_and_changes_nothing(dynamodb):
    put(dynamodb, "a", "CLAIMED")
    item = {"jobId": {"S": "a"}, "status": {"S": "SUBMITTED"}}
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[{"Put": {"TableName": JOBS_TABLE, "Item": item}}] * 2,
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert statuses(dynamodb, "a") == ["CLAIMED"]


def test_a_table_is_still_copied_whole_where_moto_copies_it_outside_transactions(dynamodb):
    from moto.dynamodb import models

    table = models.dynamodb_backends[ACCOUNT_ID][REGION].tables[JOBS_TABLE]
    assert models.copy.deepcopy(table) is not table


def test_updates_sharing_an_expression_each_apply_their_own_values(dynamodb):
    expression = "SET #s = :s, #n = if_not_exists(#n, :zero) + :one"
    for job_id, status in (("a", "SUBMITTED"), ("b", "FAILED"), ("a", "COMPLETED")):
        dynamodb.update_item(
            TableName=JOBS_TABLE,
            Key={"jobId": {"S": job_id}},
            UpdateExpression=expression,
            ExpressionAttributeNames={"#s": "status", "#n": "attempts"},
            ExpressionAttributeValues={":s": {"S": status}, ":zero": {"N": "0"}, ":one": {"N": "1"}},
        )
    items = {job_id: dynamodb.get_item(TableName=JOBS_TABLE, Key={"jobId": {"S": job_id}})["Item"] for job_id in "ab"}
    assert (items["a"]["status"], items["a"]["attempts"]) == ({"S": "COMPLETED"}, {"N": "2"})
    assert (items["b"]["status"], items["b"]["attempts"]) == ({"S": "FAILED"}, {"N": "1"})
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    assert UpdateExpressionParser.make(expression) is UpdateExpressionParser.make(expression)  # parsed once


def test_an_expression_that_does_not_parse_is_refused_every_time(dynamodb):
    for _ in range(2):
        with pytest.raises(ClientError) as raised:
            dynamodb.update_item(
                TableName=JOBS_TABLE,
                Key={"jobId": {"S": "a"}},
                UpdateExpression="SET #s = = :s",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": "SUBMITTED"}},
            )
        assert raised.value.response["Error"]["Code"] == "ValidationException"


EVERY_KIND = {
    "jobId": {"S": "every-kind"},
    "count": {"N": "12.5"},
    "raw": {"B": b"\x00\xffbytes"},
    "names": {"SS": ["a", "b"]},
    "sizes": {"NS": ["1", "2"]},
    "blobs": {"BS": [b"\x01", b"\x02"]},
    "nested": {"M": {"inner": {"L": [{"S": "x"}, {"N": "3"}, {"M": {"deep": {"B": b"\x03"}}}, {"NULL": True}]}}},
    "nothing": {"NULL": True},
    "yes": {"BOOL": True},
    "no": {"BOOL": False},
    "empty": {"S": ""},
}


def _reads(dynamodb) -> list[dict]:
    """Every answer shape that carries items, with the ResponseMetadata (request ids) left out."""
    key = {"jobId": {"S": "every-kind"}}
    answers = [
        dynamodb.get_item(TableName=JOBS_TABLE, Key=key),
        dynamodb.batch_get_item(RequestItems={JOBS_TABLE: {"Keys": [key, {"jobId": {"S": "missing"}}]}}),
        dynamodb.scan(TableName=JOBS_TABLE),
        dynamodb.update_item(
            TableName=JOBS_TABLE,
            Key=key,
            UpdateExpression="SET #c = :c",
            ExpressionAttributeNames={"#c": "count"},
            ExpressionAttributeValues={":c": {"N": "12.5"}},
            ReturnValues="ALL_NEW",
        ),
    ]
    return [{k: v for k, v in answer.items() if k != "ResponseMetadata"} for answer in answers]


def test_attribute_values_read_back_the_same_as_moto_serializes_them(dynamodb, monkeypatch):
    from moto.core.serialize import BaseJSONSerializer

    dynamodb.put_item(TableName=JOBS_TABLE, Item=EVERY_KIND)
    direct = _reads(dynamodb)
    monkeypatch.setattr(BaseJSONSerializer, "_serialize_type_structure", BaseJSONSerializer.moto_serialize_structure)
    by_moto = _reads(dynamodb)

    assert direct == by_moto
    assert direct[0]["Item"] == EVERY_KIND


def test_a_handler_class_lists_an_action_added_after_its_first_request(aws):
    install_moto_speedups()
    from moto.core import responses

    class Handler:
        def first(self) -> None: ...

    assert responses.method_names_from_class(Handler) == ["first"]
    assert responses.method_names_from_class(Handler) == ["first"]  # listed once, answered again
    Handler.second = lambda self: None  # type: ignore[attr-defined]
    assert responses.method_names_from_class(Handler) == ["first", "second"]


def test_a_delete_removes_the_message_that_had_the_handle_and_refuses_an_unknown_one(sqs):
    url = sqs.create_queue(QueueName="deletes")["QueueUrl"]
    for index in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{index}")
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=0)["Messages"]
    # Received again: the first handle is now an earlier handle of its message, and still deletes it.
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]
    assert {m["Body"] for m in first} <= {m["Body"] for m in again}

    sqs.delete_message(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"])  # again: not an error
    later = next(m for m in again if m["Body"] == first[1]["Body"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=later["ReceiptHandle"])
    with pytest.raises(ClientError) as refused:
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle-of-this-queue")

    assert refused.value.response["Error"]["Code"] == "ReceiptHandleIsInvalid"
    assert sorted(m.body for m in backend_queue("deletes")._messages) == sorted(
        m["Body"] for m in again if m["Body"] not in (first[0]["Body"], first[1]["Body"])
    )


def test_sends_keep_deduplication_and_the_counts_after_them(sqs):
    standard = sqs.create_queue(QueueName="counted-sends")["QueueUrl"]
    fifo = sqs.create_queue(
        QueueName="deduplicated.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=standard, MessageBody=body)
    sqs.send_message_batch(QueueUrl=standard, Entries=[{"Id": "d", "MessageBody": "d", "DelaySeconds": 60}])
    for _ in range(2):  # the same body twice: one message (content-based deduplication)
        sqs.send_message(QueueUrl=fifo, MessageBody="same", MessageGroupId="g")

    counts = sqs.get_queue_attributes(QueueUrl=standard, AttributeNames=["All"])["Attributes"]
    assert (counts["ApproximateNumberOfMessages"], counts["ApproximateNumberOfMessagesDelayed"]) == ("3", "1")
    fifo_count = sqs.get_queue_attributes(QueueUrl=fifo, AttributeNames=["ApproximateNumberOfMessages"])
    assert fifo_count["Attributes"]["ApproximateNumberOfMessages"] == "1"
    assert backend_queue("counted-sends").approximate_number_of_messages == 3, "counted outside a send"
