"""Source objects from S3 notifications, direct or re-driven through the DLQ, with keys decoded as S3 encodes them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from upscaler.source_events import SourceObject, UnrecognisedEvent, as_queue_batch, queue_messages, source_objects

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def s3_record(key: str, version: str | None = "v1", name: str = "ObjectCreated:Put", **obj: Any) -> dict[str, Any]:
    record = copy.deepcopy(load("s3-put-plain.json")["Records"][0])
    record["eventName"] = name
    record["s3"]["object"].update(key=key, **obj)
    if version is None:
        del record["s3"]["object"]["versionId"]
    else:
        record["s3"]["object"]["versionId"] = version
    return record


def test_plain_event():
    [source] = source_objects(load("s3-put-plain.json"))
    assert source == SourceObject(
        bucket="test-inbox",
        key="inbox/photos/cat.jpg",
        version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
        etag="8c4b2d7e1f0a3b5c6d7e8f9012345678",
        size=48213,
        sequencer="0065F1A2B3C4D5E6F7",
        event_time="2026-05-14T09:21:07.512Z",
    )
    assert source.version == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"


def test_odd_key_event_is_decoded_to_the_real_key():
    event = load("s3-put-odd-key.json")
    assert event["Records"][0]["s3"]["object"]["key"] == "inbox/My+Photos/%C3%A9t%C3%A9%2Bplus+%E2%98%83.png"
    [source] = source_objects(event)
    assert source.key == "inbox/My Photos/été+plus ☃.png"


@pytest.mark.parametrize(
    ("encoded", "key"),
    [
        ("inbox/a+b.jpg", "inbox/a b.jpg"),
        ("inbox/a%2Bb.jpg", "inbox/a+b.jpg"),
        ("inbox/100%25.jpg", "inbox/100%.jpg"),
        ("inbox/%E6%97%A5%E6%9C%AC/%E5%86%99%E7%9C%9F.png", "inbox/日本/写真.png"),
        ("inbox/a/b/c/d/e/f/g/deep.webp", "inbox/a/b/c/d/e/f/g/deep.webp"),
        ("inbox/q%3Fx%3D1%26y.jpg", "inbox/q?x=1&y.jpg"),
        ("inbox/%2B%2B+%2B.jpg", "inbox/++ +.jpg"),
    ],
)
def test_keys_are_decoded_with_plus_as_space(encoded, key):
    [source] = source_objects({"Records": [s3_record(encoded)]})
    assert source.key == key


def test_two_records_in_order():
    sources = source_objects(load("s3-put-two-records.json"))
    assert [s.key for s in sources] == ["inbox/batch/one.jpg", "inbox/batch/two.png"]
    assert sources[0].version_id != sources[1].version_id


def test_repeated_record_of_the_same_version_yields_one_object():
    record = s3_record("inbox/a.jpg", "v1")
    assert len(source_objects({"Records": [record, copy.deepcopy(record)]})) == 1


def test_two_versions_of_one_key_are_two_objects():
    sources = source_objects({"Records": [s3_record("inbox/a.jpg", "v1"), s3_record("inbox/a.jpg", "v2")]})
    assert [s.version for s in sources] == ["v1", "v2"]


def test_unversioned_objects_are_told_apart_by_etag_and_sequencer():
    first = s3_record("inbox/a.jpg", None, eTag="e1", sequencer="0001")
    second = s3_record("inbox/a.jpg", None, eTag="e1", sequencer="0002")
    sources = source_objects({"Records": [first, second]})
    assert [s.version_id for s in sources] == [None, None]
    assert [s.version for s in sources] == ["e1:0001", "e1:0002"]


def test_quoted_etag_is_unquoted():
    [source] = source_objects({"Records": [s3_record("inbox/a.jpg", eTag='"abc"')]})
    assert source.etag == "abc"


def test_redrive_from_the_dead_letter_queue():
    event = load("s3-put-redrive-sqs.json")
    body = json.loads(event["Records"][0]["body"])
    assert body["requestContext"]["condition"] == "RetriesExhausted"
    [source] = source_objects(event)
    assert source.key == "inbox/photos/dog.jpg"
    assert source == source_objects(body["requestPayload"])[0]


def test_s3_notification_delivered_through_sqs():
    notification = {"Records": [s3_record("inbox/x+y.png")]}
    event = {"Records": [{"eventSource": "aws:sqs", "body": json.dumps(notification)}]}
    assert [s.key for s in source_objects(event)] == ["inbox/x y.png"]


def test_test_events_hold_no_objects():
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "test-inbox"}
    assert source_objects(test_event) == []
    assert source_objects({"Records": [{"eventSource": "aws:sqs", "body": json.dumps(test_event)}]}) == []


def test_only_object_created_records_count():
    event = {
        "Records": [
            s3_record("inbox/gone.jpg", name="ObjectRemoved:Delete"),
            s3_record("inbox/new.jpg", name="ObjectCreated:CompleteMultipartUpload"),
            s3_record("inbox/copy.jpg", name="ObjectCreated:Copy"),
        ]
    }
    assert [s.key for s in source_objects(event)] == ["inbox/new.jpg", "inbox/copy.jpg"]


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        ({}, "no Records"),
        ({"Records": "x"}, "no Records"),
        ({"Records": [{"eventSource": "aws:sns"}]}, "aws:sns"),
        ({"Records": [{"eventSource": "aws:sqs", "body": "not json"}]}, "not JSON"),
        ({"Records": [{"eventSource": "aws:sqs"}]}, "not JSON"),
    ],
)
def test_unrecognised_events_are_refused(event, fragment):
    with pytest.raises(UnrecognisedEvent, match=fragment):
        source_objects(event)


def test_sample_events_are_real_s3_put_notifications():
    for name in ("s3-put-plain.json", "s3-put-odd-key.json", "s3-put-two-records.json"):
        for record in load(name)["Records"]:
            assert record["eventVersion"] == "2.1"
            assert record["eventSource"] == "aws:s3"
            assert record["eventName"] == "ObjectCreated:Put"
            assert record["awsRegion"] == "eu-west-1"
            assert record["s3"]["bucket"] == {
                "name": "test-inbox",
                "ownerIdentity": record["s3"]["bucket"]["ownerIdentity"],
                "arn": "arn:aws:s3:::test-inbox",
            }
            assert set(record["s3"]["object"]) == {"key", "size", "eTag", "versionId", "sequencer"}
    sqs = load("s3-put-redrive-sqs.json")["Records"][0]
    assert sqs["eventSource"] == "aws:sqs"
    body = json.loads(sqs["body"])
    assert body["version"] == "1.0"
    assert body["requestContext"]["approximateInvokeCount"] == 3
    assert body["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert body["requestPayload"]["Records"][0]["eventName"] == "ObjectCreated:Put"


# --- the ingestion queue: EventBridge events, test events, per-message reading --------------------


def eventbridge(key: str, version: str | None = "v9") -> dict[str, Any]:
    event = load("eventbridge-object-created.json")
    event["detail"]["object"]["key"] = key
    if version is None:
        del event["detail"]["object"]["version-id"]
    else:
        event["detail"]["object"]["version-id"] = version
    return event


def queued(*bodies: Any) -> dict[str, Any]:
    return {
        "Records": [
            {"eventSource": "aws:sqs", "messageId": f"m{index}", "body": b if isinstance(b, str) else json.dumps(b)}
            for index, b in enumerate(bodies)
        ]
    }


def test_eventbridge_object_created_event():
    [source] = source_objects(load("eventbridge-object-created.json"))
    assert source == SourceObject(
        bucket="DOC-EXAMPLE-BUCKET1",
        key="example-key",
        version_id="IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
        etag="b1946ac92492d2347c6235b4d2611184",
        size=5,
        sequencer="617f08299329d189",
        event_time="2021-11-12T00:00:00Z",
    )


def test_eventbridge_keys_are_decoded_like_notification_keys():
    [source] = source_objects(eventbridge("inbox/My+Photos/%C3%A9t%C3%A9%2Bplus.jpg"))
    assert source.key == "inbox/My Photos/été+plus.jpg"


def test_eventbridge_event_without_version_falls_back_to_etag_and_sequencer():
    [source] = source_objects(eventbridge("inbox/a.jpg", version=None))
    assert source.version_id is None
    assert source.version == "b1946ac92492d2347c6235b4d2611184:617f08299329d189"


def test_other_eventbridge_s3_events_name_no_object():
    event = eventbridge("inbox/a.jpg")
    event["detail-type"] = "Object Deleted"
    assert source_objects(event) == []


def test_queue_messages_read_each_body_on_its_own():
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "test-inbox"}
    batch = queued(load("s3-put-plain.json"), "not json", eventbridge("inbox/b.jpg"), test_event, [1, 2])
    messages, unreadable = queue_messages(batch)
    assert [(m.message_id, [s.key for s in m.sources]) for m in messages] == [
        ("m0", ["inbox/photos/cat.jpg"]),
        ("m2", ["inbox/b.jpg"]),
        ("m3", []),
    ]
    assert unreadable == ["m1", "m4"]


def test_the_same_version_in_an_s3_and_an_eventbridge_shape_is_one_source():
    notification = {"Records": [s3_record("inbox/a.jpg", "v9")]}
    event = eventbridge("inbox/a.jpg", "v9")
    event["detail"]["bucket"]["name"] = notification["Records"][0]["s3"]["bucket"]["name"]
    sources = source_objects(queued(notification, event))
    assert len(sources) == 1


def test_the_sam_local_invoke_sample_batch():
    messages, unreadable = queue_messages(load("sqs-ingest-batch.json"))
    assert unreadable == []
    assert [[s.key for s in m.sources] for m in messages] == [["inbox/photos/cat.jpg"], ["inbox/photos/bird.jpg"]]


def test_a_plain_s3_notification_becomes_a_batch_of_one_message_per_record():
    event = load("s3-put-two-records.json")
    batch = as_queue_batch(event)
    messages, unreadable = queue_messages(batch)
    assert unreadable == []
    assert [message.message_id for message in messages] == ["direct-0", "direct-1"]
    assert [source.key for message in messages for source in message.sources] == [
        source.key for source in source_objects(event)
    ]


def test_an_eventbridge_event_or_a_test_event_becomes_one_message():
    for event in (load("eventbridge-object-created.json"), {"Event": "s3:TestEvent", "Bucket": "b"}):
        [record] = as_queue_batch(event)["Records"]
        assert record["eventSource"] == "aws:sqs" and json.loads(record["body"]) == event


def test_an_sqs_batch_is_passed_through_unchanged():
    batch = load("sqs-ingest-batch.json")
    assert as_queue_batch(batch) is batch


@pytest.mark.parametrize("event", [{}, {"Records": []}, {"Records": [{"eventSource": "aws:sns"}]}, {"x": 1}])
def test_any_other_event_is_refused_naming_the_batch_expected_and_its_sample(event):
    with pytest.raises(UnrecognisedEvent, match=r"SQS batch \(events/sqs-ingest-batch.json\)"):
        as_queue_batch(event)
