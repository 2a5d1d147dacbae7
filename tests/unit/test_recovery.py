"""Recovery checks against moto (table, bucket, queue) and a Runware mocked at the HTTP level:
the schedule and its back-off, settling a batch with one getResponse request, and a check that dies
half-way losing nothing and completing nothing twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest

from tests.conftest import JOBS_TABLE, REGION, RUNWARE_KEY, RUNWARE_URL
from tests.job_records import stored_record
from tests.unit.test_reconciliation import FakeRunware, add_job, put_output
from upscaler.jobs import JobStore
from upscaler.recovery import CheckMessage, Recoverer, check_messages
from upscaler.recovery_checks import MAX_DELAY_SECONDS, Check, CheckQueue, CheckSchedule, delay_seconds
from upscaler.results import ResultRecorder
from upscaler.runware import RunwareClient
from upscaler.settlement import Settler
from upscaler.storage import ObjectStore

FIRST_AFTER = 600
MAX_AGE = 4 * 3600
LATE_WINDOW = 3 * 3600
SCHEDULE = CheckSchedule(FIRST_AFTER, MAX_AGE, LATE_WINDOW)
DUE = timedelta(minutes=11)  # a job whose first check is due
ANCIENT = timedelta(hours=5)  # past the maximum age, within the late-output window
NOW = datetime(2026, 5, 14, 8, 0, tzinfo=UTC)


# --- the schedule ----------------------------------------------------------------------------------


def test_the_first_check_is_due_reconcile_after_seconds_after_submission():
    check = SCHEDULE.first("job-1", NOW)
    assert (check.job_id, check.due, check.attempt) == ("job-1", NOW + timedelta(seconds=FIRST_AFTER), 1)


def test_each_wait_doubles_up_to_the_sqs_delay_ceiling():
    waits = [SCHEDULE.wait_after(attempt) for attempt in range(1, 6)]
    assert waits == [600, 900, 900, 900, 900]
    short = CheckSchedule(20, 180)
    assert [short.wait_after(attempt) for attempt in range(1, 7)] == [20, 40, 80, 160, 320, 640]
    assert short.wait_after(10_000) == MAX_DELAY_SECONDS
    submitted = NOW - timedelta(hours=1)
    nxt = SCHEDULE.next(Check("job-1", NOW, 3), submitted, NOW)
    assert (nxt.due, nxt.attempt) == (NOW + timedelta(seconds=900), 4)


def test_the_last_check_before_the_maximum_age_comes_exactly_at_it_then_late_looks_start_over():
    submitted = NOW - timedelta(seconds=MAX_AGE - 100)
    last = SCHEDULE.next(Check("job-1", NOW, 5), submitted, NOW)
    expires = submitted + timedelta(seconds=MAX_AGE)
    assert last.due == expires, "the job times out to the second, not up to 15 minutes late"
    after = SCHEDULE.next(last, submitted, expires)  # the check that timed it out
    assert (after.due, after.attempt) == (expires + timedelta(seconds=FIRST_AFTER), 1)
    again = SCHEDULE.next(after, submitted, after.due)
    assert (again.due, again.attempt) == (after.due + timedelta(seconds=FIRST_AFTER), 2)


def test_a_check_due_later_than_sqs_can_delay_is_sent_with_the_longest_delay():
    assert delay_seconds(Check("j", NOW + timedelta(hours=2)), NOW) == MAX_DELAY_SECONDS
    assert delay_seconds(Check("j", NOW + timedelta(seconds=42.2)), NOW) == 43
    assert delay_seconds(Check("j", NOW - timedelta(seconds=5)), NOW) == 0


def test_a_check_survives_its_message_body_and_anything_else_is_refused():
    check = Check("job-1", NOW, 4)
    assert Check.from_body(check.to_body()) == check
    for body in ("", "[]", "{}", '{"jobId": "x"}', '{"jobId": "x", "due": "soon"}', '{"jobId": 3, "due": "x"}'):
        with pytest.raises(ValueError):
            Check.from_body(body)


# --- the recoverer --------------------------------------------------------------------------------


class SentChecks:
    """The real SQS client, noting every check sent (moto holds delayed messages back, as SQS does)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.entries: list[dict[str, Any]] = []

    def send_message_batch(self, **kwargs: Any) -> Any:
        self.entries.extend(kwargs["Entries"])
        return self._client.send_message_batch(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.fixture
def sqs(aws):
    return SentChecks(boto3.client("sqs", region_name=REGION))


@pytest.fixture
def queue_url(sqs):
    return sqs.create_queue(QueueName="recovery-checks")["QueueUrl"]


@pytest.fixture
def store(aws):
    return JobStore(aws.dynamodb, JOBS_TABLE)


@pytest.fixture
def runware():
    return FakeRunware()


def make_recoverer(aws, store, runware, sqs, queue_url, recorder: ResultRecorder | None = None) -> Recoverer:
    client = RunwareClient(
        RUNWARE_URL,
        lambda: RUNWARE_KEY,
        http=httpx.Client(transport=httpx.MockTransport(runware)),
        max_attempts=2,
        sleep=lambda seconds: None,
    )
    recorder = recorder or ResultRecorder(ObjectStore(aws.s3), store)
    settler = Settler(store, recorder, max_age_seconds=MAX_AGE)
    return Recoverer(store, settler, client, CheckQueue(sqs, queue_url), SCHEDULE, parallelism=4)


@pytest.fixture
def recoverer(aws, store, runware, sqs, queue_url):
    return make_recoverer(aws, store, runware, sqs, queue_url)


def due_checks(*job_ids: str, attempt: int = 1) -> list[CheckMessage]:
    due = datetime.now(UTC) - timedelta(seconds=1)
    return [CheckMessage(f"m-{n}", Check(job_id, due, attempt).to_body()) for n, job_id in enumerate(job_ids)]


def queued(sqs: SentChecks, queue_url: str) -> list[dict[str, Any]]:
    """The checks sent since the last look, and that the queue holds them (visible or delayed)."""
    sent = [json.loads(entry["MessageBody"]) for entry in sqs.entries]
    sqs.entries.clear()
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    held = sum(int(attributes[name]) for name in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"))
    assert held >= len(sent)
    return sent


def test_a_batch_is_settled_with_one_getresponse_request(aws, store, runware, recoverer, sqs, queue_url):
    done, failed, waiting = add_job(store, DUE), add_job(store, DUE), add_job(store, DUE)
    runware.succeed(done)
    put_output(aws, store, done)
    runware.fail(failed, "invalidImageURL", "could not download")

    report = recoverer.run(due_checks(done, failed, waiting))

    assert len(runware.requests) == 1 and sorted(runware.polled()) == sorted([done, failed, waiting])
    assert [store.get(job_id).status for job_id in (done, failed, waiting)] == ["COMPLETED", "FAILED", "SUBMITTED"]
    assert stored_record(store, done)["resultVia"] == "reconcile"
    assert report.failed_message_ids == []
    # Only the job still processing is checked again, later, as its second look.
    [again] = queued(sqs, queue_url)
    assert (again["jobId"], again["attempt"]) == (waiting, 2)
    visible = sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
    assert visible == [], "delayed by its back-off, not visible at once"


def test_a_check_not_due_yet_is_sent_again_without_asking_anyone(store, runware, recoverer, sqs, queue_url):
    job_id = add_job(store, timedelta(minutes=1))
    later = Check(job_id, datetime.now(UTC) + timedelta(hours=1), 1)

    report = recoverer.run([CheckMessage("m-1", later.to_body())])

    assert runware.requests == [] and report.not_due == 1
    assert queued(sqs, queue_url) == [json.loads(later.to_body())]


def test_a_job_already_ended_by_its_webhook_ends_its_check(aws, store, runware, recoverer, sqs, queue_url):
    job_id = add_job(store, DUE)
    runware.succeed(job_id)
    put_output(aws, store, job_id)
    recoverer.run(due_checks(job_id))
    runware.requests.clear()

    report = recoverer.run(due_checks(job_id))  # a duplicate check, or a redelivery

    assert runware.requests == [] and report.recorded == []
    assert queued(sqs, queue_url) == []


def test_past_the_maximum_age_a_job_times_out_and_is_watched_for_a_late_output(
    aws, store, runware, recoverer, sqs, queue_url
):
    job_id = add_job(store, ANCIENT)

    recoverer.run(due_checks(job_id))

    assert store.get(job_id).status == "TIMED_OUT"
    [late] = queued(sqs, queue_url)
    assert late["jobId"] == job_id
    put_output(aws, store, job_id)  # Runware uploaded after all, and its webhook was lost

    recoverer.run(due_checks(job_id, attempt=late["attempt"]))

    record = stored_record(store, job_id)
    assert (record["status"], record["lateResult"]) == ("COMPLETED", True)
    assert queued(sqs, queue_url) == []


def test_runware_down_keeps_every_job_waiting_without_a_redelivery(store, runware, recoverer, sqs, queue_url):
    job_ids = [add_job(store, DUE), add_job(store, DUE)]
    runware.status_code = 503
    runware.whole_request_error = {"code": "serviceUnavailable", "message": "try later"}

    report = recoverer.run(due_checks(*job_ids))

    assert report.runware_unavailable is True and report.failed_message_ids == []
    assert {store.get(job_id).status for job_id in job_ids} == {"SUBMITTED"}
    assert sorted(check["jobId"] for check in queued(sqs, queue_url)) == sorted(job_ids)


def test_unreadable_checks_are_dropped_and_duplicates_settled_once(aws, store, runware, recoverer):
    job_id = add_job(store, DUE)
    runware.succeed(job_id)
    put_output(aws, store, job_id)
    messages = [*due_checks(job_id, job_id), CheckMessage("junk", "not a check")]

    report = recoverer.run(messages)

    assert report.unreadable_checks == 1 and runware.polled() == [job_id]
    assert [item.status for item in report.recorded] == ["COMPLETED"]


def test_check_messages_reads_the_sqs_event():
    event = {"Records": [{"messageId": "a", "body": "x"}, {"messageId": "b", "body": "y"}]}
    assert check_messages(event) == [CheckMessage("a", "x"), CheckMessage("b", "y")]


# --- a check that dies half-way ---------------------------------------------------------------------


class Killed(Exception):
    """The function stopped here (a timeout, a crash)."""


class RecorderKilledAt(ResultRecorder):
    """The real recorder, stopped once at one point of recording a success."""

    def __init__(self, objects: ObjectStore, jobs: JobStore, at: str) -> None:
        super().__init__(objects, jobs)
        self.at = at
        self.armed = True

    def record_success(self, job, result, *, via):  # type: ignore[no-untyped-def]
        if self.armed and self.at == "before the write":
            self.armed = False
            raise Killed()
        recorded = super().record_success(job, result, via=via)
        if self.armed and self.at == "after the write":
            self.armed = False
            raise Killed()
        return recorded


@pytest.mark.parametrize("at", ["before the write", "after the write"])
def test_a_check_killed_half_way_loses_nothing_and_completes_nothing_twice(aws, store, runware, sqs, queue_url, at):
    job_id = add_job(store, DUE)
    runware.succeed(job_id)
    put_output(aws, store, job_id)
    sent: list[Any] = []
    store.on_terminal = sent.append  # what the completion events publisher is told
    recorder = RecorderKilledAt(ObjectStore(aws.s3), store, at)
    recoverer = make_recoverer(aws, store, runware, sqs, queue_url, recorder)
    messages = due_checks(job_id)

    first = recoverer.run(messages)  # dies between getResponse and the write, or after the write

    assert first.failed_message_ids == ["m-0"], "the message stays: it is delivered again"
    assert queued(sqs, queue_url) == []

    second = recoverer.run(messages)  # the redelivery

    assert second.failed_message_ids == []
    assert store.get(job_id).status == "COMPLETED"
    assert len(sent) == 1, "one completion (and one completion event), whatever the number of tries"
    assert stored_record(store, job_id)["resultReports"] == 1


def test_the_completion_events_of_a_batch_go_ten_to_a_put_events_request(aws, store, runware, sqs, queue_url):
    from tests.unit.test_completion_events import RecordingEvents
    from upscaler.completion_events import CompletionEventPublisher

    job_ids = [add_job(store, DUE) for _ in range(23)]
    for job_id in job_ids:
        runware.succeed(job_id)
        put_output(aws, store, job_id)
    events = RecordingEvents(refuse_once=set())
    store.on_terminal = CompletionEventPublisher(lambda: events, "default", sleep=lambda _: None)
    recoverer = make_recoverer(aws, store, runware, sqs, queue_url)

    report = recoverer.run(due_checks(*job_ids))

    assert report.failed_message_ids == []
    assert all(store.get(job_id).status == "COMPLETED" for job_id in job_ids)
    assert sorted(job_id for request in events.requests for job_id in request) == sorted(job_ids)
    assert [len(request) for request in events.requests] == [10, 10, 3]
