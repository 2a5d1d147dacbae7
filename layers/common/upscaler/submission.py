"""Submit path: S3 records -> validated, claimed jobs -> one async Runware request per event.

Every source object version ends as exactly one job: REJECTED here when the input is unusable,
otherwise CLAIMED and then SUBMITTED (or FAILED with Runware's code). What is sent is decided by
the source's current state, on every delivery. A crash between the claim and the submission
leaves the job CLAIMED; the retried invocation validates the source again (rejecting the job if
the source was deleted or replaced meanwhile) and submits again under the same taskUUID, which
Runware either accepts or answers with conflictTaskUUID (it holds the task already): both mean
SUBMITTED. A refusal of the account (key, balance, permission) fails no job: they stay CLAIMED,
and the invocation fails so it is retried or dead-lettered. Folder markers and foreign sources
make no job. A claimed job whose output exists already (the same content and options upscaled
before, or its own output after its record expired) is completed from it instead of sent
(upscaler.prior_outputs). The tasks to send are first reserved on the day's spend counter
(upscaler.spend_limit): only those granted are sent, the rest stay CLAIMED and are reported as over
the limit, and what Runware did not take is given back.

Each source's validation (one ranged S3 GET) is independent of the others': they run at once, at
most SUBMIT_PARALLELISM of them. The claims, and the moves to SUBMITTED after the request, are
single conditional writes made at once (upscaler.conditional_writes), each job with its own
outcome. Outcomes are reported in source order.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from upscaler.clock import iso, utc_now
from upscaler.job_record import Job, JobStatus, job_id_for
from upscaler.jobs import (
    CLAIM,
    FAIL_SUBMISSION,
    REJECT,
    REJECT_CLAIMED,
    SUBMIT,
    WAIT_FOR_ACCOUNT,
    JobStore,
    TransitionRefused,
)
from upscaler.models import UpscaleOptions, UpscaleTask
from upscaler.outputs import staging_key_for
from upscaler.parallel import StepResult, ThreadHandoff, run_each
from upscaler.prior_outputs import PriorOutput, PriorOutputs
from upscaler.recovery_checks import CheckQueue, CheckSchedule
from upscaler.runware import RunwareClient
from upscaler.runware_answers import Accepted, AlreadySubmitted, Failed, TaskError
from upscaler.settings import Settings
from upscaler.source_events import SourceObject
from upscaler.source_inspection import SourceInspector
from upscaler.source_rules import Rejection
from upscaler.spend_limit import Reservation, SpendCounter, price_of
from upscaler.storage import ObjectInfo, ObjectStore
from upscaler.tokens import webhook_url_for

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubmitOutcome:
    job_id: str
    source_key: str
    status: str  # the job's status after this invocation, DUPLICATE for a repeat delivery, or IGNORED
    code: str | None = None
    message: str | None = None


DUPLICATE = "DUPLICATE"
IGNORED = "IGNORED"  # no job: a folder marker, or a source outside this stack's inbox


class AccountRefused(Exception):
    """Runware refused the request for the account (key, balance, permission), not for a task.

    No job fails for it: the jobs stay CLAIMED with the reason recorded, and the invocation fails so
    that it is retried and in the end dead-lettered; a re-drive after the fix submits them.
    """

    def __init__(self, error: TaskError, status_code: int, job_ids: list[str]) -> None:
        super().__init__(
            f"Runware refused the request for the account (HTTP {status_code} {error.code}: {error.message}); "
            f"{len(job_ids)} job(s) wait: {', '.join(job_ids)}"
        )
        self.error = error
        self.status_code = status_code
        self.job_ids = job_ids


@dataclass
class SubmitReport:
    outcomes: list[SubmitOutcome] = field(default_factory=list)
    retry: list[tuple[SourceObject, str]] = field(default_factory=list)  # to deliver again, and why
    # Claimed, but beyond the day's spend limit: not sent; they wait (upscaler.spend_limit).
    over_limit: list[SourceObject] = field(default_factory=list)


class TasksNotAcknowledged(Exception):
    """Runware refused a request without saying anything about some of its tasks."""

    def __init__(self, task_uuids: list[str], status_code: int) -> None:
        super().__init__(f"HTTP {status_code} left {len(task_uuids)} task(s) unanswered: {', '.join(task_uuids)}")
        self.task_uuids = task_uuids


Claimed = tuple[Job, UpscaleTask]  # a CLAIMED job and the task that submits it
Prepared = tuple[SubmitOutcome | None, Claimed | None]


@dataclass(frozen=True)
class _Sent:
    """What became of each sent job (in the request's order), and the tasks Runware left unanswered."""

    results: list[tuple[str, StepResult[SubmitOutcome]]]  # job id, its transition's outcome or error
    unanswered: list[str]
    status_code: int
    refused: list[str] = field(default_factory=list)  # tasks Runware refused (Failed): not billed


class Submitter:
    def __init__(
        self,
        settings: Settings,
        objects: ObjectStore,
        jobs: JobStore,
        runware: RunwareClient,
        webhook_key: Callable[[], str],
        *,
        handoff: ThreadHandoff | None = None,
        prior_outputs: PriorOutputs | None = None,
        checks: CheckQueue | None = None,
        check_schedule: CheckSchedule | None = None,
        spend: SpendCounter | None = None,
    ) -> None:
        self.settings = settings
        # The day's spend counter: tasks are reserved on it before they are sent; None: no counting.
        self.spend = spend
        # Outputs that already stand for a claimed job: no Runware task for it (upscaler.prior_outputs).
        self.prior_outputs = prior_outputs
        self.objects = objects
        self.jobs = jobs
        self.runware = runware
        self._webhook_key = webhook_key
        # Gives worker threads the invocation's trace context (see upscaler.parallel).
        self.handoff = handoff
        # Each submitted job's recovery check (upscaler.recovery_checks); None: no checks are sent.
        self.checks = checks
        self.check_schedule = check_schedule
        # The key is read once and cached by the reader: threads wait for that one read, not make their own.
        self._webhook_key_lock = threading.Lock()

    def submit_sources(self, sources: Sequence[SourceObject], *, deadline: float | None = None) -> SubmitReport:
        """The sources of several queue messages, in one Runware request; a source whose own step
        fails (or that Runware left unanswered) is reported for redelivery instead of failing its
        neighbours. An error about the request as a whole propagates."""
        report = SubmitReport()
        pending: list[Claimed] = []
        by_job: dict[str, SourceObject] = {}
        for source, prepared in self._prepare_all(sources):
            if prepared.error is not None:  # this source's S3/DynamoDB step; its message is received again
                report.retry.append((source, _reason(prepared.error)))
                continue
            outcome, claimed = prepared.unwrap()
            if claimed is not None:
                pending.append(claimed)
                by_job[claimed[1].task_uuid] = source
            elif outcome is not None:
                report.outcomes.append(outcome)
        if pending and self.prior_outputs is not None:
            pending = self._complete_from_prior_outputs(self.prior_outputs, pending, by_job, report)
        sent = self._send_within_limit(pending, deadline, by_job, report) if pending else None
        if sent is not None:
            for job_id, result in sent.results:
                if result.error is not None:  # its transition's write failed: the job is still CLAIMED
                    report.retry.append((by_job[job_id], _reason(result.error)))
                else:
                    report.outcomes.append(result.unwrap())
            if sent.unanswered:
                unanswered = TasksNotAcknowledged(sent.unanswered, sent.status_code)
                report.retry.extend((by_job[task], str(unanswered)) for task in sent.unanswered)
        return report

    def _complete_from_prior_outputs(
        self, prior_outputs: PriorOutputs, pending: list[Claimed], by_job: dict[str, SourceObject], report: SubmitReport
    ) -> list[Claimed]:
        """Complete the jobs claimed by this invocation whose output exists already (looked up at
        once); the rest are to send. A job claimed by an earlier invocation may be at Runware already
        (it stopped between the send and its record): it is sent again under its own taskUUID, which
        Runware answers with conflictTaskUUID if it holds it, so a result paid for is never left
        behind for another output."""
        # A job read back from the table carries its status; one claimed just now does not.
        fresh = [claimed for claimed in pending if claimed[0].status is None]
        pointers = prior_outputs.pointers_for([job for job, _ in fresh])  # one read for the batch
        found = self._each([job for job, _ in fresh], partial(_find_prior, prior_outputs, pointers))
        reused: dict[str, PriorOutput] = {}
        for (job, _), result in zip(fresh, found, strict=True):
            if result.error is None and result.value is not None:  # a failed look-up sends the job
                reused[job.job_id] = result.value
        reusing = [(job, reused[job.job_id]) for job, _ in pending if job.job_id in reused]
        completed = self._each([partial(_complete_from, prior_outputs, job, prior) for job, prior in reusing], _call)
        for (job, _), result in zip(reusing, completed, strict=True):
            if result.error is not None:  # its copy or write failed: the job is still CLAIMED
                report.retry.append((by_job[job.job_id], _reason(result.error)))
            else:
                report.outcomes.append(result.unwrap())
        return [claimed for claimed in pending if claimed[0].job_id not in reused]

    def _prepare_all(self, sources: Sequence[SourceObject]) -> list[tuple[SourceObject, StepResult[Prepared]]]:
        """Every source's validation (at once) and claim (together), in source order; ignored sources
        need neither."""
        ignored = [self._ignored(source) for source in sources]
        checked = [source for source, skip in zip(sources, ignored, strict=True) if skip is None]
        prepared = iter(self._claim_all(self._each(checked, self._inspected_job)))
        return [
            (source, StepResult(value=(skip, None)) if skip is not None else next(prepared))
            for source, skip in zip(sources, ignored, strict=True)
        ]

    def _each(self, items: Sequence[Any], step: Callable[[Any], Any]) -> list[StepResult[Any]]:
        return run_each(items, step, parallelism=self.settings.submit_parallelism, handoff=self.handoff)

    def _ignored(self, source: SourceObject) -> SubmitOutcome | None:
        """Sources that are no job at all: folder markers, and objects this stack does not own."""
        if source.key.endswith("/") and source.size == 0:
            return SubmitOutcome("", source.key, IGNORED, "folderMarker", "a folder marker (empty key ending in /)")
        if not self.settings.owns_source(source.bucket, source.key):
            return SubmitOutcome("", source.key, IGNORED, "foreignSource", self._foreign_reason(source))
        return None

    def _foreign_reason(self, source: SourceObject) -> str:
        where = f"s3://{source.bucket}/{source.key}"
        if source.bucket == self.settings.output_bucket:
            return f"{where} is in this stack's output bucket, never a source"
        inbox = f"s3://{self.settings.inbox_bucket}/" if self.settings.inbox_bucket else "prefix "
        return f"{where} is outside this stack's inbox ({inbox}{self.settings.inbox_prefix})"

    def _inspected_job(self, source: SourceObject) -> tuple[Job, Rejection | None]:
        """The job a source makes, from its current state: to claim, or to reject (and why)."""
        job_id = job_id_for(source.bucket, source.key, source.version)
        job = Job(
            job_id=job_id,
            source_bucket=source.bucket,
            source_key=source.key,
            source_version_id=source.version_id,
            source_etag=source.etag,
            source_size=source.size,
            event_time=source.event_time or None,
        )
        inspected = SourceInspector(self.settings, self.objects).inspect(source, job_id)
        if isinstance(inspected, Rejection):
            return job.but(**inspected.known, error_code=inspected.code, error_message=inspected.message), inspected
        return job.but(**inspected), None

    def _claim_all(self, inspected: list[StepResult[tuple[Job, Rejection | None]]]) -> list[StepResult[Prepared]]:
        """Claim (or reject) every inspected job in conditional writes made together; a job that
        already exists is answered from the item the write returns, so a repeat delivery costs no
        extra read. A job left CLAIMED by an unfinished invocation has just been validated again,
        so it is sent again only if its source still holds."""
        ready = [result.unwrap() for result in inspected if result.error is None]
        written = iter(self.jobs.create_all([(job, REJECT if rejection else CLAIM) for job, rejection in ready]))
        claims: list[StepResult[Prepared]] = []
        for result in inspected:
            if result.error is not None:
                claims.append(StepResult(error=result.error))
                continue
            job, rejection = result.unwrap()
            try:
                claims.append(StepResult(value=self._claimed(job, rejection, next(written))))
            except Exception as error:  # this source's own failure: its message is received again
                claims.append(StepResult(error=error))
        return claims

    def _claimed(self, job: Job, rejection: Rejection | None, written: Exception | None) -> Prepared:
        """What a job's claim (or rejection) write means for its source."""
        job_id, key = job.job_id, job.source_key
        if written is not None and not isinstance(written, TransitionRefused):
            raise written
        current = written.current if isinstance(written, TransitionRefused) else None
        if rejection is not None:
            if written is None:
                return SubmitOutcome(job_id, key, JobStatus.REJECTED, rejection.code, rejection.message), None
            if current is not None and current.status is JobStatus.CLAIMED:
                return self._reject_claimed(current, rejection), None
            return SubmitOutcome(job_id, key, DUPLICATE), None
        if written is None:
            return None, (job, self._task_for(job))
        if current is None or current.status is not JobStatus.CLAIMED:
            return SubmitOutcome(job_id, key, DUPLICATE), None
        # The claim's own request is sent again, under the same taskUUID.
        return None, (current, self._task_for(current))

    def _reject_claimed(self, claimed: Job, rejection: Rejection) -> SubmitOutcome:
        """A claimed job whose source no longer holds (deleted, replaced) is refused, not sent again."""
        try:
            self.jobs.move(
                claimed.job_id,
                REJECT_CLAIMED,
                {
                    **rejection.known,
                    "error_code": rejection.code,
                    "error_message": rejection.message,
                    "rejected_after_claim": True,
                },
            )
        except TransitionRefused as refused:
            return SubmitOutcome(claimed.job_id, claimed.source_key, _status_of(refused))
        return SubmitOutcome(claimed.job_id, claimed.source_key, JobStatus.REJECTED, rejection.code, rejection.message)

    def task_for(self, job: Job, task_uuid: str) -> UpscaleTask:
        """The job's task under another taskUUID, with fresh URLs: a job sent again (result_recovery)."""
        return self._task_for(job, task_uuid)

    def _task_for(self, job: Job, task_uuid: str | None = None) -> UpscaleTask:
        options = UpscaleOptions(
            target_megapixels=int(job.target_megapixels or 0),
            enhance_details=bool(job.enhance_details),
            realism=bool(job.realism),
            output_format=str(job.output_format),
            output_quality=int(job.output_quality or 0),
        )
        source = ObjectInfo(
            bucket=job.source_bucket,
            key=job.source_key,
            version_id=job.source_version_id,
            size=int(job.source_size or 0),
            etag=job.source_etag or "",
            content_type=job.source_content_type or "",
        )
        expiry = self.settings.presigned_url_expiry_seconds
        return UpscaleTask(
            task_uuid=task_uuid or job.job_id,
            image_url=self.objects.presign_get(source, expiry),
            options=options,
            # Runware uploads to a staging key nothing else reads; the result is published once checked.
            upload_endpoint=self.objects.presign_put(str(job.output_bucket), self._staging_key(job), expiry),
            webhook_url=webhook_url_for(self.settings.webhook_url, job.job_id, self._read_webhook_key()),
            result_ttl_seconds=self.settings.runware_result_ttl_seconds,
        )

    def _read_webhook_key(self) -> str:
        with self._webhook_key_lock:
            return self._webhook_key()

    def _staging_key(self, job: Job) -> str:
        return staging_key_for(self.settings.staging_prefix, job.job_id)

    def _send(self, pending: list[Claimed], deadline: float | None) -> _Sent:
        # One request for the whole event; RunwareUnavailable propagates so the invocation is retried.
        started = time.monotonic()
        response = self.runware.send([task.to_json() for _, task in pending], deadline=deadline)
        request_ms = int((time.monotonic() - started) * 1000)
        if response.account is not None:
            self._wait_for_account([job for job, _ in pending], response.account.error, response.status_code)
        accepted: list[Job] = []
        failed: list[tuple[Job, TaskError]] = []
        unanswered = []
        for job, task in pending:
            match response.outcome(task.task_uuid):
                case Failed(error=error):
                    failed.append((job, error))
                case None:
                    # A refused request that names other tasks says nothing of this one: it may not have
                    # been accepted, so it stays CLAIMED and the retried invocation sends it again.
                    unanswered.append(task.task_uuid)
                case Accepted() | AlreadySubmitted():
                    # Accepted now, or a re-submission that Runware answers with conflictTaskUUID: it holds
                    # the task already and will run (and bill) it, so the job goes on as SUBMITTED.
                    accepted.append(job)
        self._schedule_checks(accepted)
        results = dict(zip((job.job_id for job in accepted), self._mark_submitted(accepted, request_ms), strict=True))
        # Failing ends a job, and its completion event needs the job as written: one write each.
        ended = self._each([partial(self._mark_failed, job, error) for job, error in failed], _call)
        results.update(zip((job.job_id for job, _ in failed), ended, strict=True))
        return _Sent(
            [(task.task_uuid, results[task.task_uuid]) for _, task in pending if task.task_uuid in results],
            unanswered,
            response.status_code,
            [job.job_id for job, _ in failed],
        )

    def _send_within_limit(
        self, pending: list[Claimed], deadline: float | None, by_job: dict[str, SourceObject], report: SubmitReport
    ) -> _Sent | None:
        """Reserve the tasks on the day's counter, send those granted, and give back what Runware did
        not take: the tasks it refused or left unanswered, or all of them when the request failed
        (their jobs stay CLAIMED and are reserved again when sent again). None: nothing was granted."""
        if self.spend is None:
            return self._send(pending, deadline)
        reservation = self.spend.reserve([price_of(job.target_megapixels) for job, _ in pending])
        granted = pending[: reservation.granted]
        report.over_limit.extend(by_job[task.task_uuid] for _, task in pending[reservation.granted :])
        if not granted:
            return None
        try:
            sent = self._send(granted, deadline)
        except BaseException:
            self._give_back(reservation, range(len(granted)))
            raise
        not_taken = set(sent.refused) | set(sent.unanswered)
        self._give_back(reservation, [index for index, (_, task) in enumerate(granted) if task.task_uuid in not_taken])
        return sent

    def _give_back(self, reservation: Reservation, indexes: Sequence[int]) -> None:
        if self.spend is None or not indexes:
            return
        try:
            self.spend.give_back(reservation, indexes)
        except Exception:  # the count stays higher than what was sent: never above the limit
            logger.exception("spend limit: %d reserved task(s) not given back", len(indexes))

    def _schedule_checks(self, accepted: list[Job]) -> None:
        """Each accepted job's recovery check, sent before the job is SUBMITTED: a check that cannot be
        sent fails the invocation while the jobs are still CLAIMED, and the retry (which Runware answers
        as a re-submission) sends it again. A check that finds its job still CLAIMED looks again later."""
        if self.checks is None or self.check_schedule is None or not accepted:
            return
        now = utc_now()
        self.checks.send_all([self.check_schedule.first(job.job_id, now) for job in accepted], now)

    def _wait_for_account(self, jobs: list[Job], error: TaskError, status_code: int) -> None:
        reason = f"Runware refused the account (HTTP {status_code} {error.code}): {error.message}"[:1000]

        def note_waiting(job: Job) -> None:
            # A job that already moved on (a fast webhook, a concurrent delivery) does not wait.
            with contextlib.suppress(TransitionRefused):
                self.jobs.move(job.job_id, WAIT_FOR_ACCOUNT, {"waiting_reason": reason})

        for noted in self._each(jobs, note_waiting):
            noted.unwrap()  # a write that failed for another reason is the invocation's error
        raise AccountRefused(error, status_code, [job.job_id for job in jobs])

    def _mark_submitted(self, jobs: list[Job], request_ms: int) -> list[StepResult[SubmitOutcome]]:
        """CLAIMED -> SUBMITTED for every job Runware holds, in writes made together."""
        now = utc_now()
        moves = [
            (
                job.job_id,
                {"submitted_at": iso(now), "submit_request_ms": request_ms, "staging_key": self._staging_key(job)},
            )
            for job in jobs
        ]
        written = self.jobs.move_all(moves, SUBMIT, remove=("waiting_reason",), increment="submit_attempts", now=now)
        outcomes: list[StepResult[SubmitOutcome]] = []
        for job, result in zip(jobs, written, strict=True):
            if result is None:
                outcomes.append(StepResult(value=SubmitOutcome(job.job_id, job.source_key, JobStatus.SUBMITTED)))
            elif isinstance(result, TransitionRefused):
                # The result already arrived (fast webhook) or a concurrent delivery got there first.
                outcomes.append(StepResult(value=SubmitOutcome(job.job_id, job.source_key, _status_of(result))))
            else:  # its write failed: the job is still CLAIMED
                outcomes.append(StepResult(error=result))
        return outcomes

    def _mark_failed(self, job: Job, error: TaskError) -> SubmitOutcome:
        try:
            self.jobs.move(
                job.job_id,
                FAIL_SUBMISSION,
                {
                    "error_code": error.code,
                    "error_message": error.message,
                    "error_parameter": error.parameter,
                    "completed_at": iso(utc_now()),
                },
                remove=("waiting_reason",),
                increment="submit_attempts",
            )
        except TransitionRefused as refused:
            return SubmitOutcome(job.job_id, job.source_key, _status_of(refused))
        return SubmitOutcome(job.job_id, job.source_key, JobStatus.FAILED, error.code, error.message)


def _status_of(refused: TransitionRefused) -> str:
    """What a refused write says of its job: the status it is in, or DUPLICATE when it is unknown."""
    return str(refused.current.status) if refused.current and refused.current.status else DUPLICATE


def _find_prior(prior_outputs: PriorOutputs, pointers: dict[str, PriorOutput], job: Job) -> PriorOutput | None:
    return prior_outputs.find(job, pointers)


def _complete_from(prior_outputs: PriorOutputs, job: Job, prior: PriorOutput) -> SubmitOutcome:
    try:
        prior_outputs.complete(job, prior)
    except TransitionRefused as refused:
        return SubmitOutcome(job.job_id, job.source_key, _status_of(refused))
    # No code or message: the handler logs those as an error's; the record names the job reused.
    return SubmitOutcome(job.job_id, job.source_key, JobStatus.COMPLETED)


def _call(move: Callable[[], SubmitOutcome]) -> SubmitOutcome:
    return move()


def _reason(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"
