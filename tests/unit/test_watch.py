"""`watch` (upscale_cli/watch.py): job changes by polling the status index, or completion events from a queue."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from decimal import Decimal

import boto3

from tests.conftest import INBOX_BUCKET, REGION
from tests.job_records import move_job
from tests.unit.cli_target import add_job, moto_target, run_command
from upscale_cli import watch
from upscale_cli.main import build_parser
from upscale_cli.output import Output
from upscale_cli.watch import describe, snapshot
from upscaler.clock import iso, utc_now
from upscaler.jobs import JobStore


def run(*argv: str, as_json: bool = False, **names: str) -> tuple[int, str]:
    stream = io.StringIO()
    args = build_parser().parse_args(["watch", *argv])
    return run_command(lambda: watch.run(args, moto_target(**names), Output(as_json=as_json, stream=stream)), stream)


def test_a_snapshot_holds_the_open_jobs_opened_since_and_follows_known_ones_to_their_end(aws):
    target = moto_target()
    now = utc_now()
    recent = add_job(target, "inbox/recent.png", "COMPLETED", now - timedelta(minutes=5))
    claimed = add_job(target, "inbox/claimed.png", "CLAIMED", now - timedelta(minutes=1))
    add_job(target, "inbox/old.png", "SUBMITTED", now - timedelta(hours=2))
    since = iso(now - timedelta(minutes=10))
    assert {job_id: job["status"] for job_id, job in snapshot(target, since).items()} == {claimed: "CLAIMED"}
    followed = snapshot(target, since, {recent})  # seen open before, ended since: read by key
    assert {job_id: job["status"] for job_id, job in followed.items()} == {recent: "COMPLETED", claimed: "CLAIMED"}


def test_a_job_is_described_by_its_outcome():
    completed = {"status": "COMPLETED", "sourceKey": "inbox/a.png", "inputWidth": 640, "inputHeight": 480,
                 "outputWidth": 1155, "outputHeight": 866, "cost": Decimal("0.005"),
                 "totalSeconds": Decimal("7.25")}  # fmt: skip
    assert describe(completed) == "COMPLETED  inbox/a.png  640x480 -> 1155x866 $0.0050 7.25s"
    failed = {"status": "FAILED", "sourceKey": "inbox/b.png", "errorCode": "invalidImage", "errorMessage": "bad"}
    assert describe(failed) == "FAILED     inbox/b.png  invalidImage: bad"
    assert describe({"status": "SUBMITTED", "sourceKey": "inbox/c.png"}) == "SUBMITTED  inbox/c.png"


def test_until_idle_follows_each_job_to_its_end_with_a_summary(aws, monkeypatch):
    target = moto_target()
    a = add_job(target, "inbox/a.png", "SUBMITTED", utc_now() - timedelta(minutes=2))
    b = add_job(target, "inbox/b.png", "CLAIMED", utc_now() - timedelta(minutes=1))
    store = JobStore(target.client("dynamodb"), target.jobs_table)

    def meanwhile(seconds: float) -> None:  # between two polls, both jobs end
        if store.get(a).status == "SUBMITTED":
            move_job(store, a, "COMPLETED")
            move_job(store, b, "FAILED")

    monkeypatch.setattr("upscale_cli.watch.time.sleep", meanwhile)
    code, text = run("--until-idle", "--interval", "0.01")
    lines = text.splitlines()
    assert code == 0
    assert lines[0].startswith("watching stack test (moto) (jobs created since ")
    assert [line.split()[1:3] for line in lines[1:3]] == [["SUBMITTED", "inbox/a.png"], ["CLAIMED", "inbox/b.png"]]
    assert [line.split()[1:3] for line in lines[3:5]] == [["COMPLETED", "inbox/a.png"], ["FAILED", "inbox/b.png"]]
    assert lines[-1] == "summary: 1 COMPLETED, 1 FAILED"


def test_until_idle_with_a_job_still_in_flight_gives_up_at_the_timeout(aws):
    add_job(moto_target(), "inbox/a.png", "SUBMITTED", utc_now() - timedelta(minutes=1))
    code, text = run("--until-idle", "--interval", "0.05", "--timeout", "0.2", as_json=True)
    lines = text.splitlines()
    assert lines[-1] == "timed out after 0s: 1 job in flight, 0 uploads without a finished job"
    events = [json.loads(line) for line in lines[:-1]]
    assert code == 1
    assert [event["event"] for event in events] == ["job", "summary"]
    assert events[0]["status"] == "SUBMITTED"
    assert events[-1] == {"event": "summary", "counts": {"SUBMITTED": 1}, "jobs": 1}


def test_until_idle_waits_for_the_minimum_number_of_jobs(aws):
    code, text = run("--until-idle", "--min-jobs", "1", "--interval", "0.05", "--timeout", "0.2")
    assert code == 1
    assert text.splitlines()[-2] == "summary: no jobs"


def test_until_idle_waits_for_an_upload_that_has_no_job_yet(aws):
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/just-uploaded.png", Body=b"p")
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/folder/", Body=b"")  # a placeholder gets no job: not waited for
    code, text = run("--until-idle", "--interval", "0.05", "--timeout", "0.3")
    assert code == 1, "no job yet: it must not exit at 0/0"
    assert text.splitlines()[-1] == (
        "timed out after 0s: 0 jobs in flight, 1 upload without a finished job (inbox/just-uploaded.png)"
    )


def test_until_idle_exits_once_each_upload_has_a_finished_job(aws):
    put = aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/done.png", Body=b"p")
    add_job(moto_target(), "inbox/done.png", "COMPLETED", utc_now() + timedelta(seconds=1), version=put["VersionId"])
    code, text = run("--until-idle", "--interval", "0.05", "--timeout", "5")
    assert code == 0, text
    assert text.splitlines()[-1] == "summary: 1 COMPLETED"


def test_until_idle_with_a_named_key_waits_for_that_key_only(aws):
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/other.png", Body=b"p")
    put = aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/mine.png", Body=b"p")
    add_job(moto_target(), "inbox/mine.png", "REJECTED", utc_now() + timedelta(seconds=1), version=put["VersionId"])
    code, text = run("--until-idle", "--key", "mine.png", "--interval", "0.05", "--timeout", "5")
    assert code == 0, text


def test_an_old_finished_job_does_not_stand_for_a_newer_upload_of_its_key(aws):
    add_job(moto_target(), "inbox/again.png", "COMPLETED", utc_now() - timedelta(minutes=5), version="old")
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key="inbox/again.png", Body=b"p")
    code, text = run("--until-idle", "--interval", "0.05", "--timeout", "0.3")
    assert code == 1
    assert "(inbox/again.png)" in text.splitlines()[-1]


def completion_queue() -> tuple[object, str]:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="completion-events")["QueueUrl"]
    for index, status in enumerate(["COMPLETED", "FAILED"]):
        detail = {"jobId": str(index), "status": status, "sourceKey": f"inbox/{index}.png"}
        if status == "FAILED":
            detail.update(errorCode="invalidImage", errorMessage="not an image")
        event = {
            "detail-type": f"Upscale job {status.lower()}",
            "time": f"2024-03-01T12:00:0{index}Z",
            "detail": detail,
        }
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(event))
    return sqs, url


def test_completion_events_are_printed_once_and_deleted(aws):
    sqs, url = completion_queue()
    code, text = run("--once", "--events-queue", url)
    lines = text.splitlines()
    assert code == 0
    assert lines[0] == f"completion events from {url}"
    assert sorted(lines[1:]) == [
        "2024-03-01T12:00:00Z  COMPLETED  inbox/0.png  - -> - - -s",
        "2024-03-01T12:00:01Z  FAILED     inbox/1.png  invalidImage: not an image",
    ]
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []


def test_completion_events_as_json_up_to_a_count_from_the_stack_queue(aws):
    _, url = completion_queue()
    code, text = run("--events", "--count", "2", as_json=True, completion_events_queue_url=url)
    events = [json.loads(line) for line in text.splitlines()]
    assert code == 0
    assert sorted(event["status"] for event in events) == ["COMPLETED", "FAILED"]
    assert {event["event"] for event in events} == {"Upscale job completed", "Upscale job failed"}


def test_events_without_a_queue_is_exit_status_2(aws):
    code, text = run("--events")
    assert code == 2
    assert "--events needs --local" in text
