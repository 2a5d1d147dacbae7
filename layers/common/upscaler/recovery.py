"""Recovery: each submitted job's own check (upscaler.recovery_checks), consumed in batches by the
recovery function.

One batch: the checks not due yet are sent again with the rest of their wait; the jobs of the
others are read by key (BatchGetItem); Runware is asked about all the submitted ones in one
getResponse request; each job is settled by the shared rules (upscaler.settlement), in parallel,
none started past the invocation's deadline; a job still open is checked again later (back-off),
a timed-out one until its output can no longer arrive.

Nothing is lost and nothing is done twice when an invocation dies half-way: every status write is
a conditional transition (a job already ended is left as it is, and its completion event is not
sent again), and a check's message is deleted (by the event source mapping, after the function
returns) only once its job is settled or its next check is in the queue. A message whose job could
not be dealt with is named in `batchItemFailures` and delivered again. Several checks of one job
in a batch (a re-send that raced a redelivery) are settled once and continue as one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from upscaler.clock import utc_now
from upscaler.completion_events import sent_together
from upscaler.job_record import Job, JobStatus
from upscaler.jobs import JobStore
from upscaler.parallel import StepResult, ThreadHandoff, run_each
from upscaler.recovery_checks import Check, CheckQueue, CheckSchedule
from upscaler.results import Recorded
from upscaler.runware import RunwareClient, RunwareUnavailable
from upscaler.runware_answers import PollAnswer
from upscaler.settlement import UNREADABLE_ITEM_ERRORS, Settled, Settler, submitted_at

# A check received this early is treated as due (SQS delays are whole seconds).
DUE_TOLERANCE = timedelta(seconds=2)


@dataclass(frozen=True)
class CheckMessage:
    message_id: str
    body: str


def check_messages(event: Mapping[str, Any]) -> list[CheckMessage]:
    """The messages of an SQS event as the event source mapping delivers them."""
    return [CheckMessage(str(record["messageId"]), str(record.get("body", ""))) for record in event.get("Records", [])]


@dataclass
class RecoveryReport:
    checks: int = 0
    unreadable_checks: int = 0
    not_due: int = 0
    polled: int = 0
    recorded: list[Recorded] = field(default_factory=list)
    still_processing: int = 0
    output_not_ready: int = 0
    late_output_checks: int = 0
    rescheduled: int = 0
    out_of_time: int = 0
    unreadable: int = 0
    runware_unavailable: bool = False
    failed_message_ids: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        ended: dict[str, int] = {}
        for item in self.recorded:
            if item.changed:
                name = f"now{item.status.title().replace('_', '')}"
                ended[name] = ended.get(name, 0) + 1
        return {
            "checks": self.checks,
            "unreadableChecks": self.unreadable_checks,
            "notDue": self.not_due,
            "polled": self.polled,
            "stillProcessing": self.still_processing,
            "outputNotReady": self.output_not_ready,
            "lateOutputChecks": self.late_output_checks,
            "rescheduled": self.rescheduled,
            "outOfTime": self.out_of_time,
            "unreadable": self.unreadable,
            "failedMessages": len(self.failed_message_ids),
            **ended,
        }


@dataclass
class _Pending:
    """One job's checks in this batch (usually one message)."""

    check: Check
    message_ids: list[str]
    job: Job | None = None


class _OutOfTime(Exception):
    """The invocation's deadline came before this job's turn."""


class Recoverer:
    def __init__(
        self,
        jobs: JobStore,
        settler: Settler,
        runware: RunwareClient,
        checks: CheckQueue,
        schedule: CheckSchedule,
        *,
        parallelism: int = 10,
        handoff: ThreadHandoff | None = None,
    ) -> None:
        self.jobs = jobs
        self.settler = settler
        self.runware = runware
        self.checks = checks
        self.schedule = schedule
        self.parallelism = parallelism
        self.handoff = handoff

    def run(self, messages: Sequence[CheckMessage], *, deadline: float | None = None) -> RecoveryReport:
        report = RecoveryReport(checks=len(messages))
        now = utc_now()
        due, later = self._sorted(messages, now, report)
        again: list[tuple[Check, list[str]]] = [(pending.check, pending.message_ids) for pending in later]
        report.not_due = len(later)
        if due:
            # The completion events of the jobs this batch ends go out 10 to a PutEvents request.
            with sent_together():
                again += self._work(due, now, deadline, report)
        refused = set(self.checks.send([check for check, _ in again])) if again else set()
        report.rescheduled += sum(1 for check, _ in again if check.job_id not in refused)
        for check, message_ids in again:
            if check.job_id in refused:
                report.failed_message_ids.extend(message_ids)
        return report

    def _sorted(
        self, messages: Sequence[CheckMessage], now: datetime, report: RecoveryReport
    ) -> tuple[list[_Pending], list[_Pending]]:
        """The checks due now and those to wait more, one per job (duplicates merged)."""
        by_job: dict[str, _Pending] = {}
        for message in messages:
            try:
                check = Check.from_body(message.body)
            except ValueError:
                # Not a check this function wrote: it can never be read, so it is not kept (the
                # safety-net pass still finds every open job).
                report.unreadable_checks += 1
                continue
            known = by_job.get(check.job_id)
            if known is None:
                by_job[check.job_id] = _Pending(check, [message.message_id])
            else:
                known.message_ids.append(message.message_id)
                earliest, attempts = min(check.due, known.check.due), max(check.attempt, known.check.attempt)
                known.check = Check(check.job_id, earliest, attempts)
        due = [pending for pending in by_job.values() if pending.check.due <= now + DUE_TOLERANCE]
        later = [pending for pending in by_job.values() if pending.check.due > now + DUE_TOLERANCE]
        return due, later

    def _work(
        self, due: list[_Pending], now: datetime, deadline: float | None, report: RecoveryReport
    ) -> list[tuple[Check, list[str]]]:
        """Settle the due jobs; the checks to send again (with their messages)."""
        try:
            found = self.jobs.get_many([pending.check.job_id for pending in due])
        except Exception:  # the table could not be read: every due check is delivered again
            report.failed_message_ids.extend(m for pending in due for m in pending.message_ids)
            return []
        again: list[tuple[Check, list[str]]] = []
        polled: list[_Pending] = []
        late: list[_Pending] = []
        for pending in due:
            job = pending.job = found.get(pending.check.job_id)
            if job is None:
                continue  # no such job (expired, or never written): nothing to recover
            if job.status is JobStatus.SUBMITTED:
                polled.append(pending)
            elif job.status is JobStatus.CLAIMED and not self.schedule.too_old(submitted_at(job), now):
                # Still being submitted (its move to SUBMITTED failed and is being retried): look later.
                again.append((self.schedule.next(pending.check, submitted_at(job), now), pending.message_ids))
            elif job.status is JobStatus.TIMED_OUT and self.schedule.late_output_possible(submitted_at(job), now):
                late.append(pending)
            # Otherwise ended: a webhook (or an earlier check) settled it.
        if polled:
            again += self._settle_polled(polled, now, deadline, report)
        if late:
            again += self._look_for_late_outputs(late, now, deadline, report)
        return again

    def _settle_polled(
        self, polled: list[_Pending], now: datetime, deadline: float | None, report: RecoveryReport
    ) -> list[tuple[Check, list[str]]]:
        report.polled += len(polled)
        # A job sent again awaits its second task (job.task_uuid), not the first.
        answer = self._poll([_task_of(pending) for pending in polled], deadline, report)

        def settle(pending: _Pending) -> Settled:
            _check_time(deadline)
            job = pending.job
            assert job is not None
            if answer is None:
                # Runware did not answer: only a job past its maximum age is settled (timed out, or
                # completed from its output); the others wait for the next check.
                return self.settler.settle(job, None, now) if self.settler.too_old(job, now) else Settled(None)
            try:
                return self.settler.settle(job, answer.outcome(job.task_uuid), now)
            except UNREADABLE_ITEM_ERRORS as problem:
                report.unreadable += 1
                self.settler.count_unreadable(job, problem)
                return Settled(None)

        results = run_each(polled, settle, parallelism=self.parallelism, handoff=self.handoff)
        return self._follow_up(polled, results, now, report)

    def _poll(self, job_ids: list[str], deadline: float | None, report: RecoveryReport) -> PollAnswer | None:
        try:
            answer = self.runware.get_responses(job_ids, deadline=deadline)
        except RunwareUnavailable:
            report.runware_unavailable = True
            return None
        if answer.account is not None:
            # Runware refused the request itself (key, balance, permission): that says nothing about
            # the tasks, and recording it as each job's failure would end jobs that may complete.
            report.runware_unavailable = True
            return None
        report.unreadable += answer.malformed
        return answer

    def _look_for_late_outputs(
        self, late: list[_Pending], now: datetime, deadline: float | None, report: RecoveryReport
    ) -> list[tuple[Check, list[str]]]:
        report.late_output_checks += len(late)

        def look(pending: _Pending) -> Settled:
            _check_time(deadline)
            assert pending.job is not None
            return Settled(self.settler.late_output(pending.job))

        results = run_each(late, look, parallelism=self.parallelism, handoff=self.handoff)
        return self._follow_up(late, results, now, report)

    def _follow_up(
        self,
        items: list[_Pending],
        results: list[StepResult[Settled]],
        now: datetime,
        report: RecoveryReport,
    ) -> list[tuple[Check, list[str]]]:
        """What each job's result means for its check: done, another look later, or delivered again."""
        again: list[tuple[Check, list[str]]] = []
        for pending, result in zip(items, results, strict=True):
            if isinstance(result.error, _OutOfTime):
                report.out_of_time += 1
                again.append((pending.check, pending.message_ids))  # its turn did not come: as it was
                continue
            if result.error is not None:
                # A fault (DynamoDB, S3): nothing is lost, the message comes back after its visibility timeout.
                report.failed_message_ids.extend(pending.message_ids)
                continue
            settled = result.unwrap()
            if settled.recorded is not None:
                report.recorded.append(settled.recorded)
            report.output_not_ready += int(settled.output_not_ready)
            job = settled.recorded.job if settled.recorded is not None else pending.job
            assert job is not None
            submitted = submitted_at(job)
            if job.is_open:
                report.still_processing += 1
                again.append((self.schedule.next(pending.check, submitted, now), pending.message_ids))
            elif job.status is JobStatus.TIMED_OUT and self.schedule.late_output_possible(submitted, now):
                # Timed out (now, or before): Runware may yet upload while its presigned PUT lives.
                again.append((self.schedule.next(pending.check, submitted, now), pending.message_ids))
            # Otherwise the job has ended for good (or its output can no longer arrive): the check ends.
        return again


def _check_time(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise _OutOfTime()


def _task_of(pending: _Pending) -> str:
    """The task a check's job awaits: its own, or the one it was sent again under."""
    return pending.job.task_uuid if pending.job is not None else pending.check.job_id
