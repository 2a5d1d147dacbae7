"""Recovery checks: one SQS message per submitted job, delivered when that job should be looked at.

A check is sent when the job becomes SUBMITTED (one SendMessageBatch per 10 jobs, as the submit
path writes), due ReconcileAfterSeconds later; if no webhook has ended the job by then, the
recovery function asks Runware and the bucket. A job still processing is checked again later,
each wait twice the last (from ReconcileAfterSeconds up to SQS's 15-minute ceiling), and once more
exactly at JobMaxAgeSeconds, when it times out; a job that timed out is checked for a late output
(the waits begun again) until its presigned PUT has expired.

SQS delays a message by at most 900 seconds (`DelaySeconds`, "Amazon SQS message quotas"), so a
check carries the instant it is due: one received early is sent again with the rest of its wait.
A check is never made visible again to wait (that would spend a receive and count toward a
redrive policy): it is re-sent, and the received message deleted once the new one is in the queue.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from upscaler.clock import iso, parse_iso, utc_now

# SQS's largest per-message delay ("Amazon SQS message quotas": DelaySeconds, 0 to 900 seconds).
MAX_DELAY_SECONDS = 900
# Entries of one SendMessageBatch request (SQS's limit).
SEND_BATCH_SIZE = 10


@dataclass(frozen=True)
class Check:
    """Look at job `job_id` at `due` (the `attempt`th look)."""

    job_id: str
    due: datetime
    attempt: int = 1

    def to_body(self) -> str:
        return json.dumps({"jobId": self.job_id, "due": iso(self.due), "attempt": self.attempt})

    @classmethod
    def from_body(cls, body: str) -> Check:
        """Raises ValueError for a body that is not a check."""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as error:
            raise ValueError(f"not a check: {error}") from None
        if not isinstance(data, dict):
            raise ValueError("not a check: not a JSON object")
        job_id, due, attempt = data.get("jobId"), data.get("due"), data.get("attempt", 1)
        if not isinstance(job_id, str) or not job_id or not isinstance(due, str):
            raise ValueError("not a check: jobId and due must be strings")
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
            raise ValueError("not a check: attempt must be a whole number of at least 1")
        try:
            moment = parse_iso(due)
        except ValueError:
            raise ValueError(f"not a check: due {due[:40]!r} is not an instant") from None
        if moment.tzinfo is None:
            raise ValueError("not a check: due has no time zone")
        return cls(job_id, moment, attempt)


@dataclass(frozen=True)
class CheckSchedule:
    """When a job is looked at: first `first_after_seconds` after submission, then each wait twice the
    last (at most MAX_DELAY_SECONDS), until `max_age_seconds`; a timed-out job until its presigned PUT
    (`late_output_window_seconds` after submission) can no longer deliver an output."""

    first_after_seconds: int
    max_age_seconds: int
    late_output_window_seconds: int = 0

    def first(self, job_id: str, submitted: datetime) -> Check:
        return Check(job_id, submitted + timedelta(seconds=self.first_after_seconds), 1)

    def wait_after(self, attempt: int) -> float:
        """Seconds between look `attempt` and the next one."""
        exponent = min(attempt, 32)  # far past the ceiling already; keeps the power small
        return float(min(MAX_DELAY_SECONDS, self.first_after_seconds * 2 ** (exponent - 1)))

    def next(self, check: Check, submitted: datetime, now: datetime | None = None) -> Check:
        """The look after `check`, counted from now: never later than the job's maximum age (the
        job times out then, to the second), and after that (a timed-out job watched for a late
        output) with the back-off begun again from the first wait."""
        moment = now or utc_now()
        expires = submitted + timedelta(seconds=self.max_age_seconds)
        if moment >= expires and check.due <= expires:
            # The check that timed the job out: late-output looks start over from the first wait.
            return Check(check.job_id, moment + timedelta(seconds=self.wait_after(1)), 1)
        due = moment + timedelta(seconds=self.wait_after(check.attempt))
        if moment < expires:
            due = min(due, expires)
        return Check(check.job_id, due, check.attempt + 1)

    def too_old(self, submitted: datetime, now: datetime | None = None) -> bool:
        return ((now or utc_now()) - submitted).total_seconds() >= self.max_age_seconds

    def late_output_possible(self, submitted: datetime, now: datetime | None = None) -> bool:
        """Whether Runware can still upload this job's output (its presigned PUT has not expired)."""
        window = self.max_age_seconds + self.late_output_window_seconds
        return ((now or utc_now()) - submitted).total_seconds() < window


def delay_seconds(check: Check, now: datetime | None = None) -> int:
    """The SendMessage delay for a check: until it is due, at most SQS's ceiling (a check due later
    is received early and sent again)."""
    remaining = (check.due - (now or utc_now())).total_seconds()
    return max(0, min(MAX_DELAY_SECONDS, math.ceil(remaining)))


class ChecksNotSent(Exception):
    """Some checks could not be put in the queue (SendMessageBatch's per-entry failures)."""

    def __init__(self, job_ids: list[str], reasons: list[str]) -> None:
        super().__init__(f"{len(job_ids)} check(s) not sent: {'; '.join(reasons[:3])}")
        self.job_ids = job_ids


class CheckQueue:
    """Sends checks to the recovery queue, ten to a request."""

    def __init__(self, sqs_client: Any, queue_url: str) -> None:
        self._sqs = sqs_client
        self.queue_url = queue_url

    def send(self, checks: Sequence[Check], now: datetime | None = None) -> list[str]:
        """Send every check; the job ids of those SQS refused (the rest are in the queue)."""
        moment = now or utc_now()
        refused: list[str] = []
        for start in range(0, len(checks), SEND_BATCH_SIZE):
            batch = checks[start : start + SEND_BATCH_SIZE]
            entries = [
                {"Id": str(index), "MessageBody": check.to_body(), "DelaySeconds": delay_seconds(check, moment)}
                for index, check in enumerate(batch)
            ]
            response = self._sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            refused.extend(batch[int(failure["Id"])].job_id for failure in response.get("Failed", []))
        return refused

    def send_all(self, checks: Sequence[Check], now: datetime | None = None) -> None:
        """Send every check, once more for those refused the first time; raises ChecksNotSent otherwise."""
        refused = self.send(checks, now)
        if refused:
            again = [check for check in checks if check.job_id in set(refused)]
            still = self.send(again, now)
            if still:
                raise ChecksNotSent(still, [f"job {job_id}" for job_id in still])
