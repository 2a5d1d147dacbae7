"""Submit path: S3 records -> validated, claimed jobs -> one async Runware request per event.

Every source object version ends as exactly one job: REJECTED here when the input is unusable,
otherwise CLAIMED and then SUBMITTED (or FAILED with Runware's code). A crash between the claim
and the submission leaves the job CLAIMED; the retried invocation finds it and submits again
under the same taskUUID, which Runware either accepts or reports as a duplicate.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from upscaler.image_header import UnreadableImage
from upscaler.jobs import JobStatus, JobStore, TransitionRefused, iso, job_id_for, utc_now
from upscaler.models import InvalidOption, TaskError, UpscaleOptions, UpscaleTask
from upscaler.runware import RunwareClient, is_duplicate_task
from upscaler.settings import Settings
from upscaler.source_events import SourceObject, source_objects
from upscaler.storage import ObjectInfo, ObjectMissing, ObjectStore
from upscaler.tokens import webhook_url_for


@dataclass(frozen=True)
class Rejection:
    code: str
    message: str
    known: dict[str, Any] = field(default_factory=dict)  # what was learnt about the input before refusing it


@dataclass(frozen=True)
class SubmitOutcome:
    job_id: str
    source_key: str
    status: str  # the job's status after this invocation, or DUPLICATE for a repeat delivery
    code: str | None = None
    message: str | None = None


DUPLICATE = "DUPLICATE"


@dataclass
class SubmitReport:
    outcomes: list[SubmitOutcome] = field(default_factory=list)
    retry: list[tuple[SourceObject, str]] = field(default_factory=list)  # to deliver again, and why


class TasksNotAcknowledged(Exception):
    """Runware refused a request without saying anything about some of its tasks."""

    def __init__(self, task_uuids: list[str], status_code: int) -> None:
        super().__init__(f"HTTP {status_code} left {len(task_uuids)} task(s) unanswered: {', '.join(task_uuids)}")
        self.task_uuids = task_uuids


# S3's limit on the length of a key, in UTF-8 bytes.
MAX_KEY_BYTES = 1024


class Submitter:
    def __init__(
        self,
        settings: Settings,
        objects: ObjectStore,
        jobs: JobStore,
        runware: RunwareClient,
        webhook_key: Callable[[], str],
    ) -> None:
        self.settings = settings
        self.objects = objects
        self.jobs = jobs
        self.runware = runware
        self._webhook_key = webhook_key

    def submit_event(self, event: Mapping[str, Any], *, deadline: float | None = None) -> list[SubmitOutcome]:
        outcomes: list[SubmitOutcome] = []
        pending: list[tuple[dict[str, Any], UpscaleTask]] = []
        for source in source_objects(event):
            outcome, claimed = self._prepare(source)
            if claimed is not None:
                pending.append(claimed)
            elif outcome is not None:
                outcomes.append(outcome)
        if pending:
            outcomes.extend(self._send(pending, deadline))
        return outcomes

    def submit_sources(self, sources: Sequence[SourceObject], *, deadline: float | None = None) -> SubmitReport:
        """Like submit_event for the sources of several queue messages, in one Runware request; a
        source whose own step fails (or that Runware left unanswered) is reported for redelivery
        instead of failing its neighbours. An error about the request as a whole propagates."""
        report = SubmitReport()
        pending: list[tuple[dict[str, Any], UpscaleTask]] = []
        by_job: dict[str, SourceObject] = {}
        for source in sources:
            try:
                outcome, claimed = self._prepare(source)
            except Exception as error:  # this source's S3/DynamoDB step; its message is received again
                report.retry.append((source, f"{type(error).__name__}: {error}"))
                continue
            if claimed is not None:
                pending.append(claimed)
                by_job[claimed[1].task_uuid] = source
            elif outcome is not None:
                report.outcomes.append(outcome)
        if pending:
            try:
                report.outcomes.extend(self._send(pending, deadline))
            except TasksNotAcknowledged as unanswered:
                report.retry.extend((by_job[task], str(unanswered)) for task in unanswered.task_uuids)
        return report

    def _prepare(self, source: SourceObject) -> tuple[SubmitOutcome | None, tuple[dict[str, Any], UpscaleTask] | None]:
        job_id = job_id_for(source.bucket, source.key, source.version)
        existing = self.jobs.get(job_id)
        if existing is not None:
            if existing["status"] != JobStatus.CLAIMED:
                return SubmitOutcome(job_id, source.key, DUPLICATE), None
            # Claimed by an invocation that did not finish: submit again under the same taskUUID.
            return None, (existing, self._task_for(existing))

        job = self._job_fields(job_id, source)
        inspected = self._inspect(source, job_id)
        if isinstance(inspected, Rejection):
            job.update(inspected.known, errorCode=inspected.code, errorMessage=inspected.message)
            try:
                self.jobs.create(job, JobStatus.REJECTED)
            except TransitionRefused:
                return SubmitOutcome(job_id, source.key, DUPLICATE), None
            return SubmitOutcome(job_id, source.key, JobStatus.REJECTED, inspected.code, inspected.message), None

        job.update(inspected)
        try:
            self.jobs.create(job, JobStatus.CLAIMED)
        except TransitionRefused as refused:
            if not refused.current or refused.current.get("status") != JobStatus.CLAIMED:
                return SubmitOutcome(job_id, source.key, DUPLICATE), None
        return None, (job, self._task_for(job))

    def _job_fields(self, job_id: str, source: SourceObject) -> dict[str, Any]:
        return {
            "jobId": job_id,
            "sourceBucket": source.bucket,
            "sourceKey": source.key,
            "sourceVersionId": source.version_id,
            "sourceETag": source.etag,
            "sourceSize": source.size,
            "eventTime": source.event_time or None,
        }

    def _inspect(self, source: SourceObject, job_id: str) -> Rejection | dict[str, Any]:
        """Check the object without downloading it; the fields to store, or why it is refused."""
        try:
            info = self.objects.head(source.bucket, source.key, source.version_id)
        except ObjectMissing:
            return Rejection("sourceMissing", "the object was deleted before it could be processed")
        if not source.version_id and source.etag and info.etag != source.etag:
            return Rejection("sourceChanged", "the object was overwritten before it could be processed")
        if info.size == 0:
            return Rejection("emptyObject", "the object is empty (0 bytes)")
        limit = self.settings.max_input_bytes
        if info.size > limit:
            return Rejection("objectTooLarge", f"the object is {info.size} bytes; the limit is {limit} bytes")
        try:
            options = self.settings.defaults.with_overrides(info.metadata)
        except InvalidOption as error:
            return Rejection("invalidOverride", f"invalid metadata override x-amz-meta-{error}")
        try:
            header = self.objects.read_header(info)
        except UnreadableImage as error:
            return Rejection("notAnImage", f"{error}")
        if not header.supported:
            return Rejection(
                "unsupportedFormat",
                f"{header.format} is not supported; use JPEG, PNG or WEBP",
                {"inputFormat": header.format},
            )
        if header.pixels >= options.target_pixels:
            return Rejection(
                "alreadyAtTarget",
                f"the image is {header.width}x{header.height} ({header.pixels / 1e6:.2f} MP), already at or "
                f"above the target of {options.target_megapixels} MP",
                {
                    "inputFormat": header.format,
                    "inputWidth": header.width,
                    "inputHeight": header.height,
                    "targetMegapixels": options.target_megapixels,
                },
            )
        return {
            "sourceVersionId": info.version_id,
            "sourceETag": info.etag,
            "sourceSize": info.size,
            "sourceContentType": info.content_type or header.content_type,
            "inputFormat": header.format,
            "inputWidth": header.width,
            "inputHeight": header.height,
            "targetMegapixels": options.target_megapixels,
            "enhanceDetails": options.enhance_details,
            "realism": options.realism,
            "outputFormat": options.output_format,
            "outputQuality": options.output_quality,
            "outputBucket": self.settings.output_bucket,
            "outputKey": self.output_key(source.key, job_id, options),
            "outputContentType": options.output_content_type,
        }

    def output_key(self, source_key: str, job_id: str, options: UpscaleOptions) -> str:
        """<output prefix><key below the inbox prefix>.<job id prefix>.<ext>: unique per version and
        per source name, so a.png and a.jpg (or two uploads of one key) never share an output.

        A source key near S3's length limit would make a longer output key, which S3 refuses (so
        Runware's upload would fail): the source part is then cut short, at a character boundary.
        """
        relative = source_key.removeprefix(self.settings.inbox_prefix) or posixpath.basename(source_key)
        suffix = f".{job_id[:8]}.{options.output_extension}"
        room = max(0, MAX_KEY_BYTES - len(f"{self.settings.output_prefix}{suffix}".encode()))
        relative = relative.encode()[:room].decode(errors="ignore")
        return f"{self.settings.output_prefix}{relative}{suffix}"

    def _task_for(self, job: Mapping[str, Any]) -> UpscaleTask:
        options = UpscaleOptions(
            target_megapixels=int(job["targetMegapixels"]),
            enhance_details=bool(job["enhanceDetails"]),
            realism=bool(job["realism"]),
            output_format=str(job["outputFormat"]),
            output_quality=int(job["outputQuality"]),
        )
        source = ObjectInfo(
            bucket=job["sourceBucket"],
            key=job["sourceKey"],
            version_id=job.get("sourceVersionId"),
            size=int(job["sourceSize"]),
            etag=str(job.get("sourceETag", "")),
            content_type=str(job.get("sourceContentType", "")),
        )
        expiry = self.settings.presigned_url_expiry_seconds
        return UpscaleTask(
            task_uuid=job["jobId"],
            image_url=self.objects.presign_get(source, expiry),
            options=options,
            upload_endpoint=self.objects.presign_put(job["outputBucket"], job["outputKey"], expiry),
            webhook_url=webhook_url_for(self.settings.webhook_url, job["jobId"], self._webhook_key()),
            result_ttl_seconds=self.settings.runware_result_ttl_seconds,
        )

    def _send(self, pending: list[tuple[dict[str, Any], UpscaleTask]], deadline: float | None) -> list[SubmitOutcome]:
        # One request for the whole event; RunwareUnavailable propagates so the invocation is retried.
        started = time.monotonic()
        response = self.runware.send([task.to_json() for _, task in pending], deadline=deadline)
        request_ms = int((time.monotonic() - started) * 1000)
        outcomes = []
        unanswered = []
        for job, task in pending:
            error = response.error_for(task.task_uuid)
            if error is not None and not is_duplicate_task(error):
                outcomes.append(self._mark_failed(job, error))
            elif error is None and response.status_code >= 400 and task.task_uuid not in response.items:
                # A refused request that names other tasks says nothing of this one: it may not have
                # been accepted, so it stays CLAIMED and the retried invocation sends it again.
                unanswered.append(task.task_uuid)
            else:
                outcomes.append(self._mark_submitted(job, request_ms))
        if unanswered:
            raise TasksNotAcknowledged(unanswered, response.status_code)
        return outcomes

    def _mark_submitted(self, job: Mapping[str, Any], request_ms: int) -> SubmitOutcome:
        now = utc_now()
        try:
            self.jobs.transition(
                job["jobId"],
                {JobStatus.CLAIMED},
                JobStatus.SUBMITTED,
                {"submittedAt": iso(now), "submitRequestMs": request_ms},
                increment="submitAttempts",
                now=now,
            )
        except TransitionRefused as refused:
            # The result already arrived (fast webhook) or a concurrent delivery got there first.
            status = (refused.current or {}).get("status", DUPLICATE)
            return SubmitOutcome(job["jobId"], job["sourceKey"], str(status))
        return SubmitOutcome(job["jobId"], job["sourceKey"], JobStatus.SUBMITTED)

    def _mark_failed(self, job: Mapping[str, Any], error: TaskError) -> SubmitOutcome:
        try:
            self.jobs.transition(
                job["jobId"],
                {JobStatus.CLAIMED},
                JobStatus.FAILED,
                {
                    "errorCode": error.code,
                    "errorMessage": error.message,
                    "errorParameter": error.parameter,
                    "completedAt": iso(utc_now()),
                },
                increment="submitAttempts",
            )
        except TransitionRefused as refused:
            status = (refused.current or {}).get("status", DUPLICATE)
            return SubmitOutcome(job["jobId"], job["sourceKey"], str(status))
        return SubmitOutcome(job["jobId"], job["sourceKey"], JobStatus.FAILED, error.code, error.message)
