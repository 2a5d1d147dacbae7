"""No second bill for the same content: a claimed job whose output exists already completes from
it, with no Runware task.

Two outputs can stand for a claimed job:
- that of an earlier COMPLETED job of the same source key, made from the same content and with the
  same options. A copy of an object onto itself that changes its metadata but no option, a
  re-encryption, a storage class change (`ObjectCreated:Copy`, a new version id) or a re-upload of
  the same bytes is such a job. Each completed job leaves a pointer item keyed by a hash of (bucket,
  key, ETag, size, options), in a table of its own, so one GetItem finds it: no index, no scan.
- the job's own output, when its record has gone (the table's TTL, or removed by hand) and the
  upload is delivered again (a backfill, a re-drive). The pointer names it while the pointer lives;
  after that, for an upload older than a record lives (`JOB_RETENTION_DAYS`), one HEAD of the job's
  deterministic output key (`outputs.output_key_for`) finds it, and its metadata must name this
  job and these options (`outputs.output_metadata`).

Content is the ETag and the size. Amazon S3 documents that an ETag is the MD5 of the data only for
objects made by PUT, POST or CopyObject and stored in plain text or with SSE-S3; objects from a
multipart upload and objects encrypted with SSE-KMS or SSE-C have other ETags
(https://docs.aws.amazon.com/AmazonS3/latest/API/API_Object.html, "ETag"). An in-place copy of such
an object gets a different ETag, so it is not recognized and is billed again: equal ETags mean the
same content, different ones do not prove a change. Never the other way round, so a match is safe.

The output found is copied (a server-side CopyObject, no bytes through the function) to the new
job's own output key, with metadata naming the new job: every job keeps its own output, which an
output lifecycle rule or a user may remove independently of the others, and which a later delivery
of the same version finds at its deterministic key. The job then moves CLAIMED -> COMPLETED by the
store's COMPLETE row (a verified output completes a job) with `resultVia` = priorOutput and
`reusedOutputOf` naming the job whose output it is; the completion event goes out as for any
completion.

Only jobs claimed by the delivery at hand are looked up: a job left CLAIMED by an earlier one may be
at Runware already, and is sent again under its own taskUUID (upscaler.submission).

Each step is a network round trip independent of the other sources': the submit path runs them at
once (upscaler.parallel). A look-up that fails (DynamoDB or S3 error) finds nothing: the source is
sent to Runware as it would have been without this module, never held back.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError

from upscaler.clock import iso, parse_iso, utc_now
from upscaler.image_header import UnreadableImage
from upscaler.job_record import Job, JobStatus, to_attribute_values
from upscaler.jobs import COMPLETE, JobStore
from upscaler.outputs import OPTIONS_METADATA, OUTPUT_FORMAT_OF, final_key_for, options_signature, output_metadata
from upscaler.storage import ObjectInfo, ObjectMissing, ObjectStore

logger = logging.getLogger(__name__)

REUSED_VIA = "priorOutput"  # the job's resultVia when its output was reused

BATCH_GET_KEYS = 100  # BatchGetItem reads at most 100 items a request
UNPROCESSED_ATTEMPTS = 4
UNPROCESSED_BACKOFF_SECONDS = 0.05
# How far the clocks that stamp uploads and job records may disagree.
CLOCK_SKEW_SECONDS = 3600

_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class PriorOutput:
    """A verified output that stands for a job, and the job that made it."""

    job_id: str
    bucket: str
    key: str
    etag: str
    size: int
    content_type: str
    output_format: str
    width: int | None
    height: int | None


def reuse_key_for(job: Job) -> str | None:
    """The pointer item's key for a job's source content and options; None when the job does not
    name them all (no pointer is kept or looked up for it)."""
    options = options_signature(job)
    if not options or not job.source_etag or job.source_size is None:
        return None
    parts = (job.source_bucket, job.source_key, job.source_etag, str(int(job.source_size)), options)
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


class OutputPointers:
    """One item per (source key, content, options) naming the last completed job made from them.

    Written when a job completes (the job store's `on_terminal`), with the job's own retention, by
    UpdateItem (it creates or replaces): the newest completion of the same content wins.
    """

    def __init__(self, dynamodb_client: Any, table_name: str, retention_days: int = 90) -> None:
        self._db = dynamodb_client
        self.table_name = table_name
        self.retention_days = retention_days

    def remember(self, job: Job) -> None:
        """Note a completed job's output; never raises: the completion it follows has happened, and
        a missing pointer costs at worst one more Runware task later."""
        if job.status is not JobStatus.COMPLETED or not job.output_key or not job.output_etag:
            return
        reuse_key = reuse_key_for(job)
        if reuse_key is None:
            return
        now = utc_now()
        values = {
            "jobId": job.job_id,
            "sourceBucket": job.source_bucket,
            "sourceKey": job.source_key,
            "sourceVersionId": job.source_version_id,
            "outputBucket": job.output_bucket,
            "outputKey": job.output_key,
            "outputETag": job.output_etag,
            "outputSize": job.output_size,
            "outputContentType": job.output_content_type,
            "outputFormat": job.output_format,
            "outputWidth": job.output_width,
            "outputHeight": job.output_height,
            "completedAt": job.completed_at or iso(now),
            "expiresAt": int(now.timestamp()) + self.retention_days * 86400,
        }
        present = {name: value for name, value in values.items() if value is not None}
        names = {f"#a{index}": name for index, name in enumerate(present)}
        try:
            self._db.update_item(
                TableName=self.table_name,
                Key={"reuseKey": {"S": reuse_key}},
                UpdateExpression="SET " + ", ".join(f"#a{index} = :v{index}" for index in range(len(present))),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_attribute_values(
                    {f":v{index}": value for index, value in enumerate(present.values())}
                ),
            )
        except (BotoCoreError, ClientError) as error:
            logger.warning(
                "output pointer not written", extra={"jobId": job.job_id, "reason": f"{type(error).__name__}: {error}"}
            )

    def find(self, job: Job) -> PriorOutput | None:
        """The output the pointer for this job's content and options names, as recorded (unverified)."""
        reuse_key = reuse_key_for(job)
        return self.find_all([job]).get(reuse_key) if reuse_key else None

    def find_all(self, jobs: Sequence[Job]) -> dict[str, PriorOutput]:
        """The outputs the pointers for these jobs name, by reuse key, read together: one
        BatchGetItem per 100 keys, keys DynamoDB leaves unprocessed asked again (BatchGetItem,
        https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html)."""
        keys = list(dict.fromkeys(key for key in map(reuse_key_for, jobs) if key))
        found: dict[str, PriorOutput] = {}
        for start in range(0, len(keys), BATCH_GET_KEYS):
            # Eventually consistent (half a read unit): a pointer written a moment ago may be missed,
            # which costs one Runware task, never a wrong output.
            wanted: dict[str, Any] = {
                self.table_name: {"Keys": [{"reuseKey": {"S": key}} for key in keys[start : start + BATCH_GET_KEYS]]}
            }
            for attempt in range(UNPROCESSED_ATTEMPTS):
                response = self._db.batch_get_item(RequestItems=wanted)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    record = {name: _deserializer.deserialize(value) for name, value in item.items()}
                    prior = _pointer(record)
                    if prior is not None:
                        found[str(record["reuseKey"])] = prior
                wanted = response.get("UnprocessedKeys") or {}
                if not wanted:
                    break
                time.sleep(UNPROCESSED_BACKOFF_SECONDS * 2**attempt)
            # Keys still unprocessed find nothing: those jobs are sent, as after a failed look-up.
        return found


def _pointer(record: dict[str, Any]) -> PriorOutput | None:
    try:
        return PriorOutput(
            job_id=str(record["jobId"]),
            bucket=str(record["outputBucket"]),
            key=str(record["outputKey"]),
            etag=str(record["outputETag"]),
            size=int(record["outputSize"]),
            content_type=str(record.get("outputContentType", "")),
            output_format=str(record.get("outputFormat", "")),
            width=_whole(record.get("outputWidth")),
            height=_whole(record.get("outputHeight")),
        )
    except (KeyError, TypeError, ValueError):
        return None  # an item that does not name a whole output is no pointer


def _whole(value: Any) -> int | None:
    return None if value is None else int(value)


class PriorOutputs:
    """Finds the output that stands for a claimed job, and completes the job from it."""

    def __init__(self, objects: ObjectStore, jobs: JobStore, pointers: OutputPointers | None = None) -> None:
        self.objects = objects
        self.jobs = jobs
        self.pointers = pointers

    def pointers_for(self, jobs: Sequence[Job]) -> dict[str, PriorOutput]:
        """The pointers recorded for these jobs' content and options, read together, by reuse key
        (unverified); none when the read fails: the jobs are sent."""
        if self.pointers is None or not jobs:
            return {}
        try:
            return self.pointers.find_all(jobs)
        except (BotoCoreError, ClientError) as error:
            logger.warning(
                "prior output look-up failed; the jobs are sent",
                extra={"jobs": len(jobs), "reason": f"{type(error).__name__}: {error}"},
            )
            return {}

    def find(self, job: Job, pointers: Mapping[str, PriorOutput] | None = None) -> PriorOutput | None:
        """The verified output that stands for this claimed job, or None: send it to Runware.
        `pointers` are those `pointers_for` read for a batch; without them this job's is read."""
        try:
            return self._pointed_output(job, pointers) or self._own_output(job)
        except (BotoCoreError, ClientError) as error:
            logger.warning(
                "prior output look-up failed; the job is sent",
                extra={"jobId": job.job_id, "reason": f"{type(error).__name__}: {error}"},
            )
            return None

    def complete(self, job: Job, prior: PriorOutput) -> Job:
        """Copy the prior output to the job's own output key (unless it is there already) and move the
        job to COMPLETED; raises TransitionRefused when the job has moved on meanwhile."""
        key = final_key_for(str(job.output_key), prior.output_format)
        etag = prior.etag
        if (prior.bucket, prior.key) != (job.output_bucket, key):
            source = ObjectInfo(prior.bucket, prior.key, None, prior.size, prior.etag, prior.content_type)
            etag = self.objects.copy(source, key, prior.content_type, output_metadata(job))
        now = utc_now()
        changes = {
            "output_key": key,
            "output_size": prior.size,
            "output_content_type": prior.content_type,
            "output_etag": etag,
            "output_format": prior.output_format,
            "output_width": prior.width,
            "output_height": prior.height,
            "completed_at": iso(now),
            "result_via": REUSED_VIA,
            "reused_output_of": prior.job_id,
            # Nothing was paid for this record; a job's own output found again was paid for by its
            # first record, whose cost is not known here.
            "cost": Decimal(0) if prior.job_id != job.job_id else None,
        }
        return self.jobs.move(job.job_id, COMPLETE, changes, remove=("waiting_reason",), now=now)

    def _pointed_output(self, job: Job, pointers: Mapping[str, PriorOutput] | None) -> PriorOutput | None:
        """The output the pointer names: an earlier job's, or this job's own (its record was removed)."""
        if pointers is None:
            prior = self.pointers.find(job) if self.pointers is not None else None
        else:
            reuse_key = reuse_key_for(job)
            prior = pointers.get(reuse_key) if reuse_key else None
        if prior is None or prior.bucket != job.output_bucket:
            return None
        if prior.output_format not in OUTPUT_FORMAT_OF.values():
            return None
        try:
            found = self.objects.head(prior.bucket, prior.key)
        except ObjectMissing:
            return None  # removed since (a lifecycle rule, a user)
        # The same object as recorded, not one written over it since.
        return prior if (found.etag, found.size) == (prior.etag, prior.size) else None

    def _own_output(self, job: Job) -> PriorOutput | None:
        """The job's output at its deterministic key, looked for only when its record may have expired."""
        if not job.output_bucket or not job.output_key or not self._record_may_have_expired(job):
            return None
        try:
            found = self.objects.head(job.output_bucket, job.output_key)
        except ObjectMissing:
            return None
        metadata = found.metadata
        if metadata.get("job-id") != job.job_id or metadata.get(OPTIONS_METADATA) != options_signature(job):
            return None
        return self._verified(job.job_id, found)

    def _record_may_have_expired(self, job: Job) -> bool:
        """Whether the upload is older than a job record lives: a record is written after its upload
        and expires `retention_days` after it was written, so a younger upload's job never expired
        and a fresh upload costs no S3 request here. An upload of unknown age is not checked."""
        try:
            age = (utc_now() - parse_iso(str(job.event_time))).total_seconds()
        except (ValueError, TypeError):  # no time, or one without a zone
            return False
        return age >= self.jobs.retention_days * 86400 - CLOCK_SKEW_SECONDS

    def _verified(self, job_id: str, found: ObjectInfo) -> PriorOutput | None:
        """The output as its bytes say (format, sides), or None when they are not an image we make."""
        try:
            header = self.objects.read_header(found)
        except UnreadableImage:
            return None
        output_format = OUTPUT_FORMAT_OF.get(header.format)
        if output_format is None:
            return None
        return PriorOutput(
            job_id=job_id,
            bucket=found.bucket,
            key=found.key,
            etag=found.etag,
            size=found.size,
            content_type=header.content_type,
            output_format=output_format,
            width=header.width,
            height=header.height,
        )
