"""upscaler.ingestion.submit_batch: a queue batch's sources in one submission, and which messages
are received again. The submitter here is a recording stand-in (the submission itself is tested in
test_submission through this same entry); what is under test is how messages map to sources."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from tests.unit.queue_events import message_id, queued, sqs_batch
from upscaler.ingestion import BatchResult, MessageNotSubmitted, all_failed, message_ids, submit_batch
from upscaler.source_events import SourceObject, UnrecognisedEvent
from upscaler.submission import SubmitOutcome, SubmitReport


def s3_record(key: str, version: str = "v1") -> dict[str, Any]:
    return {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "eventTime": "2026-05-14T10:00:00.000Z",
        "s3": {
            "bucket": {"name": "test-inbox"},
            "object": {"key": key, "size": 10, "eTag": "e", "versionId": version, "sequencer": "01"},
        },
    }


class RecordingSubmitter:
    """Records each call's sources; reports each source SUBMITTED unless `retry` names its key."""

    def __init__(self, retry: dict[str, str] | None = None, error: Exception | None = None) -> None:
        self.calls: list[tuple[list[SourceObject], float | None]] = []
        self.retry = retry or {}
        self.error = error

    def submit_sources(self, sources: Sequence[SourceObject], *, deadline: float | None = None) -> SubmitReport:
        self.calls.append((list(sources), deadline))
        if self.error is not None:
            raise self.error
        report = SubmitReport()
        for source in sources:
            if source.key in self.retry:
                report.retry.append((source, self.retry[source.key]))
            else:
                report.outcomes.append(SubmitOutcome(f"job-{source.key}", source.key, "SUBMITTED"))
        return report


def submit(submitter: RecordingSubmitter, batch: dict[str, Any], deadline: float | None = None) -> BatchResult:
    return submit_batch(submitter, batch, deadline=deadline)  # type: ignore[arg-type]


def keys(call: tuple[list[SourceObject], float | None]) -> list[str]:
    return [source.key for source in call[0]]


def test_every_messages_sources_go_in_one_submission_in_message_order():
    submitter = RecordingSubmitter()
    result = submit(submitter, queued(s3_record("inbox/a.jpg"), s3_record("inbox/b.jpg")), deadline=12.5)
    [call] = submitter.calls
    assert keys(call) == ["inbox/a.jpg", "inbox/b.jpg"]
    assert call[1] == 12.5
    assert [outcome.source_key for outcome in result.outcomes] == ["inbox/a.jpg", "inbox/b.jpg"]
    assert result.failed == {}


def test_a_version_named_by_two_messages_is_submitted_once():
    submitter = RecordingSubmitter()
    record = s3_record("inbox/a.jpg")
    result = submit(submitter, queued(record, record, s3_record("inbox/a.jpg", "v2")))
    [call] = submitter.calls
    assert [(source.key, source.version_id) for source in call[0]] == [("inbox/a.jpg", "v1"), ("inbox/a.jpg", "v2")]
    assert len(result.outcomes) == 2


def test_a_source_to_retry_fails_every_message_that_names_it_and_no_other():
    submitter = RecordingSubmitter(retry={"inbox/b.jpg": "ClientError: throttled"})
    b = s3_record("inbox/b.jpg")
    batch = queued(s3_record("inbox/a.jpg"), b, b)
    result = submit(submitter, batch)
    assert result.failed == {
        message_id(batch, 1): "ClientError: throttled",
        message_id(batch, 2): "ClientError: throttled",
    }
    assert [outcome.source_key for outcome in result.outcomes] == ["inbox/a.jpg"]
    result.check_record(message_id(batch, 0))
    with pytest.raises(MessageNotSubmitted, match="throttled"):
        result.check_record(message_id(batch, 2))


def test_a_message_with_several_sources_fails_if_any_of_them_is_to_retry():
    submitter = RecordingSubmitter(retry={"inbox/b.jpg": "why"})
    batch = sqs_batch(
        {"Records": [s3_record("inbox/a.jpg"), s3_record("inbox/b.jpg")]}, {"Records": [s3_record("inbox/c.jpg")]}
    )
    result = submit(submitter, batch)
    assert result.failed == {message_id(batch, 0): "why"}
    assert [outcome.source_key for outcome in result.outcomes] == ["inbox/a.jpg", "inbox/c.jpg"]


def test_an_unreadable_message_fails_alone_and_a_message_naming_no_object_succeeds():
    submitter = RecordingSubmitter()
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent"}
    batch = sqs_batch("not json", {"Records": [s3_record("inbox/a.jpg")]}, test_event, json.dumps([1, 2]))
    result = submit(submitter, batch)
    reason = "the message names no S3 object this function reads"
    assert result.failed == {message_id(batch, 0): reason, message_id(batch, 3): reason}
    assert keys(submitter.calls[0]) == ["inbox/a.jpg"]
    result.check_record(message_id(batch, 2))


def test_a_batch_of_no_objects_still_asks_the_submitter_with_none():
    submitter = RecordingSubmitter()
    result = submit(submitter, sqs_batch({"Service": "Amazon S3", "Event": "s3:TestEvent"}))
    assert [keys(call) for call in submitter.calls] == [[]]
    assert (result.outcomes, result.failed) == ([], {})


def test_an_error_about_the_whole_request_propagates_and_all_failed_names_every_message():
    batch = queued(s3_record("inbox/a.jpg"), s3_record("inbox/b.jpg"))
    with pytest.raises(ConnectionError):
        submit(RecordingSubmitter(error=ConnectionError("Runware down")), batch)
    failed = all_failed(batch, "ConnectionError: Runware down")
    assert failed.outcomes == []
    assert failed.failed == dict.fromkeys(message_ids(batch), "ConnectionError: Runware down")
    for record in batch["Records"]:
        with pytest.raises(MessageNotSubmitted):
            failed.check_record(record["messageId"])


def test_an_event_that_is_not_a_batch_is_refused_and_has_no_message_ids():
    with pytest.raises(UnrecognisedEvent):
        submit(RecordingSubmitter(), {"detail-type": "Object Created"})
    assert message_ids({"detail-type": "Object Created"}) == []
    assert all_failed({}, "why").failed == {}


def test_a_record_from_another_source_is_an_unreadable_message():
    submitter = RecordingSubmitter()
    batch = {"Records": [{"eventSource": "aws:s3", "messageId": "m0"}, *queued(s3_record("inbox/a.jpg"))["Records"]]}
    result = submit(submitter, batch)
    assert list(result.failed) == ["m0"]
    assert keys(submitter.calls[0]) == ["inbox/a.jpg"]


def check_all(result: BatchResult, ids: list[str]) -> list[str]:
    failed: list[str] = []
    for each in ids:
        try:
            result.check_record(each)
        except MessageNotSubmitted:
            failed.append(each)
    return failed


def test_check_record_raises_exactly_for_the_failed_messages():
    batch = queued(*(s3_record(f"inbox/{n}.jpg") for n in range(4)))
    result = submit(RecordingSubmitter(retry={"inbox/1.jpg": "a", "inbox/3.jpg": "b"}), batch)
    assert check_all(result, message_ids(batch)) == [message_id(batch, 1), message_id(batch, 3)]


# --- copies: what a handed-back or dead-lettered message carries ---------------------------------


def test_a_copy_keeps_the_body_and_the_attributes_and_is_held_back(aws):
    import base64

    import boto3

    from upscaler.ingestion import QueueCopies

    sqs = boto3.client("sqs", region_name="eu-west-1")
    url = aws.settings.ingest_queue_url
    batch = queued(s3_record("inbox/a.jpg"))
    batch["Records"][0]["messageAttributes"] = {
        "origin": {"stringValue": "backfill", "binaryValue": None, "dataType": "String"},
        "blob": {"stringValue": None, "binaryValue": base64.b64encode(b"\x00\x01").decode(), "dataType": "Binary"},
    }
    assert QueueCopies(sqs).send(url, batch["Records"], delay_seconds=0) == []
    [copy] = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], AttributeNames=["All"])["Messages"]
    assert copy["Body"] == batch["Records"][0]["body"]
    assert copy["MessageAttributes"]["origin"] == {"StringValue": "backfill", "DataType": "String"}
    assert copy["MessageAttributes"]["blob"] == {"BinaryValue": b"\x00\x01", "DataType": "Binary"}
    assert copy["Attributes"]["ApproximateReceiveCount"] == "1", "a new message: its first receive"
    assert copy["MessageId"] != batch["Records"][0]["messageId"]


def test_a_copy_sqs_refuses_is_reported_so_its_original_is_not_done_with():
    from upscaler.ingestion import QueueCopies

    class Refusing:
        def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            return {"Successful": [{"Id": "0"}], "Failed": [{"Id": "1", "Code": "InternalError", "SenderFault": False}]}

    batch = queued(s3_record("inbox/a.jpg"), s3_record("inbox/b.jpg"))
    assert QueueCopies(Refusing()).send("https://queue", batch["Records"]) == [message_id(batch, 1)]
