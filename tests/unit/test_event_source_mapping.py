"""local.event_source_mapping: Lambda's SQS event source mapping played against a moto queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from local.event_source_mapping import EventSourceMapping, MappingSettings, MappingState, register_mapping, sqs_event
from tests.conftest import REGION


@pytest.fixture
def sqs(aws):
    return boto3.client("sqs", region_name=REGION)


@pytest.fixture
def ingest(sqs) -> tuple[str, str]:
    url = sqs.create_queue(QueueName="ingest", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


class Function:
    """Records each event; answers with `answer(event)`."""

    def __init__(self, answer: Callable[[dict[str, Any]], Any]) -> None:
        self.answer = answer
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> Any:
        with self.lock:
            self.events.append(event)
        return self.answer(event)

    def bodies(self) -> list[list[str]]:
        with self.lock:
            return [[record["body"] for record in event["Records"]] for event in self.events]


def fails(*bodies: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def answer(event: dict[str, Any]) -> dict[str, Any]:
        failed = [record["messageId"] for record in event["Records"] if record["body"] in bodies]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}

    return answer


def mapping(
    sqs, ingest: tuple[str, str], function: Function, *, report: bool = True, batch_size: int = 10
) -> EventSourceMapping:
    url, arn = ingest
    settings = MappingSettings(url, arn, batch_size, 0.3, 1, report, REGION)
    return EventSourceMapping(settings, lambda: sqs, function, redelivery_seconds=1)


def running(esm: EventSourceMapping, until: Callable[[], bool], timeout: float = 10) -> None:
    esm.start()
    try:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert until(), "the mapping did not get there in time"
    finally:
        esm.stop()


def left(sqs, url: str) -> list[str]:
    time.sleep(1.1)  # past the redelivery delay of what failed
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return sorted(message["Body"] for message in messages)


def send(sqs, url: str, *bodies: str) -> None:
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)])


def test_the_event_has_lambdas_sqs_shape():
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "h1",
        "Body": '{"Records": []}',
        "Attributes": {"ApproximateReceiveCount": "2"},
        "MessageAttributes": {"origin": {"DataType": "String", "StringValue": "backfill"}},
        "MD5OfBody": "abc",
    }
    [record] = sqs_event([message], queue_arn="arn:aws:sqs:eu-west-1:1:ingest", region="eu-west-1")["Records"]
    assert record == {
        "messageId": "m1",
        "receiptHandle": "h1",
        "body": '{"Records": []}',
        "attributes": {"ApproximateReceiveCount": "2"},
        "messageAttributes": {
            "origin": {
                "stringValue": "backfill",
                "binaryValue": None,
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
        },
        "md5OfBody": "abc",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:1:ingest",
        "awsRegion": "eu-west-1",
    }


def test_messages_arriving_together_are_one_batch_and_are_deleted_once_handled(sqs, ingest):
    function = Function(fails())
    send(sqs, ingest[0], "a", "b", "c")
    esm = mapping(sqs, ingest, function)
    running(esm, lambda: esm.invocations >= 1 and esm.in_flight == 0)
    assert [sorted(bodies) for bodies in function.bodies()] == [["a", "b", "c"]]
    assert (esm.batch_sizes, esm.messages_failed, esm.peak_concurrency) == ([3], 0, 1)
    assert left(sqs, ingest[0]) == []


def test_a_batch_is_never_larger_than_the_batch_size(sqs, ingest):
    function = Function(fails())
    send(sqs, ingest[0], *"abcde")
    esm = mapping(sqs, ingest, function, batch_size=2)
    running(esm, lambda: sum(esm.batch_sizes) >= 5 and esm.in_flight == 0)
    assert max(esm.batch_sizes) <= 2
    assert sorted(body for bodies in function.bodies() for body in bodies) == list("abcde")


def test_only_the_messages_the_function_names_are_received_again(sqs, ingest):
    function = Function(fails("b"))
    send(sqs, ingest[0], "a", "b")
    esm = mapping(sqs, ingest, function)
    running(esm, lambda: esm.invocations >= 2)  # the first batch, then "b" again
    assert [sorted(bodies) for bodies in function.bodies()[:2]] == [["a", "b"], ["b"]]
    assert esm.messages_failed >= 2


def test_a_function_error_keeps_the_whole_batch(sqs, ingest):
    def broken(event: dict[str, Any]) -> Any:
        raise RuntimeError("handler crashed")

    send(sqs, ingest[0], "a", "b")
    esm = mapping(sqs, ingest, Function(broken))
    running(esm, lambda: esm.invocations >= 1 and esm.in_flight == 0)
    assert esm.messages_failed == 2
    assert left(sqs, ingest[0]) == ["a", "b"]


def test_a_response_naming_an_unknown_message_keeps_the_whole_batch(sqs, ingest):
    send(sqs, ingest[0], "a", "b")
    esm = mapping(sqs, ingest, Function(lambda event: {"batchItemFailures": [{"itemIdentifier": "nobody"}]}))
    running(esm, lambda: esm.invocations >= 1 and esm.in_flight == 0)
    assert left(sqs, ingest[0]) == ["a", "b"]


class FailingCalls:
    """An SQS client whose chosen operations raise on their chosen calls (1 is the first)."""

    def __init__(self, sqs: Any, **failing: set[int]) -> None:
        self._sqs = sqs
        self._failing = failing
        self.calls: dict[str, int] = {}

    def __getattr__(self, operation: str) -> Any:
        call = getattr(self._sqs, operation)
        if operation not in self._failing:
            return call

        def maybe_failing(**kwargs: Any) -> Any:
            self.calls[operation] = self.calls.get(operation, 0) + 1
            if self.calls[operation] in self._failing[operation]:
                raise ConnectionError(f"{operation} lost its connection")
            return call(**kwargs)

        return maybe_failing


def test_a_receive_that_fails_while_a_batch_fills_still_delivers_what_was_received(sqs, ingest):
    function = Function(fails())
    send(sqs, ingest[0], "a")
    flaky = FailingCalls(sqs, receive_message={2})  # the window's second receive
    esm = EventSourceMapping(
        MappingSettings(ingest[0], ingest[1], 10, 0.3, 1, True, REGION), lambda: flaky, function, redelivery_seconds=1
    )
    running(esm, lambda: esm.invocations >= 1 and esm.in_flight == 0, timeout=3)
    assert function.bodies() == [["a"]]
    assert left(sqs, ingest[0]) == []


def test_a_delete_that_fails_is_tried_again(sqs, ingest):
    function = Function(fails())
    send(sqs, ingest[0], "a", "b")
    flaky = FailingCalls(sqs, delete_message_batch={1, 2})
    esm = EventSourceMapping(
        MappingSettings(ingest[0], ingest[1], 10, 0.3, 1, True, REGION), lambda: flaky, function, redelivery_seconds=1
    )
    running(esm, lambda: esm.invocations >= 1 and esm.in_flight == 0)
    assert flaky.calls["delete_message_batch"] == 3
    assert left(sqs, ingest[0]) == []


def test_a_failed_message_made_visible_again_after_a_lost_request_returns_quickly(sqs, ingest):
    function = Function(fails("a"))
    send(sqs, ingest[0], "a")
    flaky = FailingCalls(sqs, change_message_visibility_batch={1})
    esm = EventSourceMapping(
        MappingSettings(ingest[0], ingest[1], 10, 0.3, 1, True, REGION), lambda: flaky, function, redelivery_seconds=1
    )
    running(esm, lambda: esm.invocations >= 2)  # received again long before the queue's 60 s
    assert function.bodies()[:2] == [["a"], ["a"]]


def test_without_report_batch_item_failures_a_returned_list_is_ignored(sqs, ingest):
    send(sqs, ingest[0], "a", "b")
    esm = mapping(sqs, ingest, Function(fails("b")), report=False)
    running(esm, lambda: esm.invocations >= 1 and esm.in_flight == 0)
    assert esm.messages_failed == 0
    assert left(sqs, ingest[0]) == []


def test_the_mapping_registered_in_lambda_delivers_only_while_enabled(sqs, ingest):
    """The pollers follow the State that UpdateEventSourceMapping sets in moto's Lambda, as Lambda's
    own mapping does: a disabled mapping receives nothing, and takes up again once enabled."""
    url, arn = ingest
    settings = MappingSettings(url, arn, 10, 0, 1, True, REGION)
    lambda_client = boto3.client("lambda", region_name=REGION)
    uuid = register_mapping(lambda_client, boto3.client("iam", region_name=REGION), "local-SubmitFunction", settings)
    [listed] = lambda_client.list_event_source_mappings(FunctionName="local-SubmitFunction", EventSourceArn=arn)[
        "EventSourceMappings"
    ]
    assert (listed["UUID"], listed["State"]) == (uuid, "Enabled"), "found as the function finds it"
    lambda_client.update_event_source_mapping(UUID=uuid, Enabled=False)

    function = Function(fails())
    esm = EventSourceMapping(
        settings, lambda: sqs, function, delivering=MappingState(lambda: lambda_client, uuid, max_age_seconds=0)
    )
    send(sqs, url, "waits")  # moto's own invoker is off the queue: nothing runs the function but the pollers
    esm.start()
    try:
        time.sleep(1.5)
        assert function.events == [], "nothing received while the mapping is disabled"
        lambda_client.update_event_source_mapping(UUID=uuid, Enabled=True)
        deadline = time.monotonic() + 10
        while not function.events and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        esm.stop()
    assert function.bodies() == [["waits"]]
