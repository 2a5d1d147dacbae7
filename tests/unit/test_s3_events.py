"""local.s3_events: moto's S3 notifications completed with the fields real S3 sends."""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

import boto3
import pytest

from local.s3_events import add_missing_event_fields
from tests.conftest import INBOX_BUCKET, REGION
from upscaler.source_events import source_objects


@pytest.fixture
def sqs(aws):
    add_missing_event_fields()
    add_missing_event_fields()  # a second install changes nothing
    return boto3.client("sqs", region_name=REGION)


def queue(sqs, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def bodies(sqs, url: str) -> list[dict]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


def test_notifications_carry_the_version_id_and_a_growing_sequencer(aws, sqs):
    url, arn = queue(sqs, "notifications")
    aws.s3.put_bucket_notification_configuration(
        Bucket=INBOX_BUCKET,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    puts = [aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/a b.jpg", Body=body) for body in (b"one", b"two")]
    records = [record for body in bodies(sqs, url) if "Records" in body for record in body["Records"]]
    objects = sorted((record["s3"]["object"] for record in records), key=lambda obj: obj["sequencer"])
    assert [obj["versionId"] for obj in objects] == [put["VersionId"] for put in puts]
    assert objects[0]["sequencer"] < objects[1]["sequencer"]
    assert all(len(obj["sequencer"]) == 16 for obj in objects)
    # Two uploads of one key are two sources to the submit path.
    sources = source_objects({"Records": records})
    assert len(sources) == 2 and {source.key for source in sources} == {"inbox/a b.jpg"}


def test_eventbridge_events_have_the_documented_shape(aws, sqs):
    url, arn = queue(sqs, "bridge")
    events = boto3.client("events", region_name=REGION)
    events.put_rule(
        Name="created",
        EventPattern=json.dumps({"source": ["aws.s3"], "detail-type": ["Object Created"]}),
    )
    events.put_targets(Rule="created", Targets=[{"Id": "queue", "Arn": arn}])
    aws.s3.put_bucket_notification_configuration(
        Bucket=INBOX_BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    put = aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/My Photos/été+1.jpg", Body=b"12345")
    [event] = bodies(sqs, url)
    assert (event["source"], event["detail-type"]) == ("aws.s3", "Object Created")
    obj = event["detail"]["object"]
    assert obj["key"] == "inbox/My+Photos/%C3%A9t%C3%A9%2B1.jpg"
    assert unquote_plus(obj["key"]) == "inbox/My Photos/été+1.jpg"
    assert (obj["size"], obj["etag"], obj["version-id"]) == (5, put["ETag"].strip('"'), put["VersionId"])
    assert event["detail"]["reason"] == "PutObject"
    [source] = source_objects(event)
    assert (source.key, source.version_id) == ("inbox/My Photos/été+1.jpg", put["VersionId"])
