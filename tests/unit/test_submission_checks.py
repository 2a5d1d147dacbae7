"""The submit path sends each accepted job's recovery check (upscaler.recovery_checks) before the job
becomes SUBMITTED: ten to a SendMessageBatch request, due ReconcileAfterSeconds later; a check that
cannot be sent leaves the jobs CLAIMED for the retry, which sends it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.conftest import REGION
from tests.unit.queue_events import queued
from tests.unit.test_submission import jpeg, make_submitter, runware, sleeps, submit, upload  # noqa: F401
from upscaler.clock import parse_iso, utc_now
from upscaler.job_record import JobStatus
from upscaler.jobs import JobStore


class SentChecks:
    """The real SQS client, noting each SendMessageBatch request."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.requests: list[list[dict[str, Any]]] = []

    def send_message_batch(self, **kwargs: Any) -> Any:
        self.requests.append(kwargs["Entries"])
        return self._client.send_message_batch(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.fixture
def queue_url(aws) -> str:
    return boto3.client("sqs", region_name=REGION).create_queue(QueueName="checks")["QueueUrl"]


def with_checks(make_submitter, aws, queue_url: str):  # noqa: F811
    submitter = make_submitter(replace(aws.settings, recovery_queue_url=queue_url))
    sent = SentChecks(boto3.client("sqs", region_name=REGION))
    assert submitter.checks is not None
    submitter.checks._sqs = sent
    return submitter, sent


def test_each_accepted_job_gets_its_check_ten_to_a_request(aws, make_submitter, runware, queue_url):  # noqa: F811
    submitter, sent = with_checks(make_submitter, aws, queue_url)
    records = [upload(aws, f"inbox/checks/{n}.jpg", jpeg(300 + n, 200)) for n in range(12)]
    before = utc_now()

    outcomes = submit(submitter, queued(*records))

    assert [o.status for o in outcomes] == [JobStatus.SUBMITTED] * 12
    assert [len(entries) for entries in sent.requests] == [10, 2]
    checks = [json.loads(entry["MessageBody"]) for entries in sent.requests for entry in entries]
    assert sorted(check["jobId"] for check in checks) == sorted(o.job_id for o in outcomes)
    after_seconds = aws.settings.reconcile_after_seconds
    for check, entry in zip(checks, [e for entries in sent.requests for e in entries], strict=True):
        due = parse_iso(check["due"])
        assert before + timedelta(seconds=after_seconds) <= due <= utc_now() + timedelta(seconds=after_seconds)
        assert check["attempt"] == 1 and entry["DelaySeconds"] == min(900, after_seconds)


def test_a_check_that_cannot_be_sent_leaves_the_jobs_claimed_for_the_retry(
    aws,
    make_submitter,  # noqa: F811
    runware,  # noqa: F811
    queue_url,
):
    missing = queue_url.rsplit("/", 1)[0] + "/no-such-queue"
    failing = make_submitter(replace(aws.settings, recovery_queue_url=missing))
    batch = queued(upload(aws, "inbox/checks/lost.jpg", jpeg()))

    with pytest.raises(ClientError):
        submit(failing, batch)

    store = JobStore(aws.dynamodb, aws.settings.jobs_table)
    [job_id] = [task["taskUUID"] for task in runware.tasks]
    assert store.get(job_id).status is JobStatus.CLAIMED
    retried, sent = with_checks(make_submitter, aws, queue_url)
    [outcome] = submit(retried, batch)  # the redelivery: Runware answers it as a re-submission
    assert outcome.status is JobStatus.SUBMITTED
    assert [json.loads(entry["MessageBody"])["jobId"] for entries in sent.requests for entry in entries] == [job_id]
