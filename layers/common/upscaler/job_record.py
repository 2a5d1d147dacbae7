"""The job: one typed record per source object version, and its one conversion to and from DynamoDB.

A job's attributes in the table keep the names users read in records, events and the CLI
(`sourceKey`, `outputETag`, ...); in code they are the fields of `Job`. `ATTRIBUTE_OF` is the one
map between the two. Attributes the table holds that this version does not know (written by a
newer one) are kept in `Job.extra`, so reading and showing a record never drops them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer


class JobStatus(StrEnum):
    CLAIMED = "CLAIMED"  # validated and claimed; being sent to Runware
    SUBMITTED = "SUBMITTED"  # Runware holds the task; its result is awaited
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"  # never sent: the input cannot be upscaled
    TIMED_OUT = "TIMED_OUT"


# Each set of statuses, defined once.
OPEN_STATUSES = frozenset({JobStatus.CLAIMED, JobStatus.SUBMITTED})
TERMINAL_STATUSES = frozenset(JobStatus) - OPEN_STATUSES


def job_id_for(bucket: str, key: str, version: str) -> str:
    """The job id (and Runware taskUUID) of one source object version.

    Derived, not random: every delivery of the same S3 event, and every retry after a crash, names
    the same job, so the table's primary key alone enforces one job per version. The hash is
    shaped as a UUID v4 because Runware requires that format.
    """
    digest = hashlib.sha256(f"{bucket}\x00{key}\x00{version}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _named(attribute: str) -> Any:
    """A field whose table attribute is not simply its name in camelCase."""
    return field(default=None, metadata={"attribute": attribute})


@dataclass(frozen=True, kw_only=True)
class Job:
    job_id: str
    status: JobStatus | None = None  # None until the store writes it
    # The source object version, as validated.
    source_bucket: str
    source_key: str
    source_version_id: str | None = None
    source_etag: str | None = _named("sourceETag")
    source_size: int | None = None
    source_content_type: str | None = None
    event_time: str | None = None  # when S3 says the object was created
    input_format: str | None = None
    input_width: int | None = None  # as displayed (EXIF orientation applied)
    input_height: int | None = None
    input_orientation: int | None = None
    # What is asked of Runware, and where the result goes.
    target_megapixels: int | None = None
    enhance_details: bool | None = None
    realism: bool | None = None
    output_format: str | None = None
    output_quality: int | None = None
    preset: str | None = None  # the folder preset whose options applied (upscaler.presets), by its prefix
    output_bucket: str | None = None
    output_key: str | None = None
    output_content_type: str | None = None
    staging_key: str | None = None
    # The job's life.
    created_at: str | None = None
    updated_at: str | None = None
    expires_at: int | None = None  # the table's TTL attribute (epoch seconds)
    # The open-jobs index's keys: present only while the job is open (upscaler.open_jobs).
    open_shard: int | None = None
    open_since: str | None = None
    submitted_at: str | None = None
    completed_at: str | None = None
    submit_request_ms: int | None = None
    submit_attempts: int | None = None
    result_reports: int | None = None
    waiting_reason: str | None = None
    rejected_after_claim: bool | None = None
    # A result lost on its way to the bucket: sent again once, under a task UUID of its own.
    runware_task_uuid: str | None = _named("runwareTaskUUID")  # the task awaited; unset: the job id
    resubmissions: int | None = None
    resubmitted_at: str | None = None
    resubmitted_because: str | None = None
    recovered_from: str | None = None  # imageURL: the output was copied from Runware's result URL
    # The result, as verified in the bucket.
    image_uuid: str | None = _named("imageUUID")
    image_url: str | None = _named("imageURL")
    cost: Decimal | None = None
    output_size: int | None = None
    output_etag: str | None = _named("outputETag")
    output_width: int | None = None
    output_height: int | None = None
    result_via: str | None = None  # webhook, reconcile, or priorOutput (no Runware task: see prior_outputs)
    reused_output_of: str | None = None  # the job whose output this one's is a copy of (prior_outputs)
    late_result: bool | None = None  # found from the output alone, or after the job had timed out
    overridden_error_code: str | None = None  # a failure report that a verified output overrode
    overridden_error_message: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    error_parameter: str | None = None
    upload_to_submit_seconds: Decimal | int | None = None
    provider_seconds: Decimal | int | None = None
    total_seconds: Decimal | int | None = None
    malformed_reports: int | None = None
    last_malformed_report: str | None = None
    last_malformed_report_at: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # attributes this version does not know

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def task_uuid(self) -> str:
        """The Runware taskUUID whose result the job awaits: the job id, or the one it was sent again under."""
        return self.runware_task_uuid or self.job_id

    def but(self, **changes: Any) -> Job:
        """This job with some fields changed."""
        return replace(self, **changes)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Job:
        """From the record as users see it: attribute names, plain values."""
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for name, value in record.items():
            field_name = FIELD_OF.get(name)
            if field_name is None:
                extra[name] = value
            elif value is not None:
                known[field_name] = value
        if "status" in known:
            known["status"] = JobStatus(known["status"])
        return cls(**known, extra=extra)

    def to_record(self) -> dict[str, Any]:
        """The record as users see it (CLI, events): attribute names, plain values, no empty ones."""
        record = {attribute: getattr(self, name) for name, attribute in ATTRIBUTE_OF.items()}
        record = {attribute: value for attribute, value in record.items() if value is not None}
        if self.status is not None:
            record["status"] = self.status.value
        return {**record, **self.extra}

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Job:
        """From a DynamoDB item (attribute values as the low-level client returns them)."""
        return cls.from_record({name: _plain(_deserializer.deserialize(value)) for name, value in item.items()})

    def to_item(self) -> dict[str, Any]:
        """The DynamoDB item."""
        return to_attribute_values(self.to_record())


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# Field name -> table attribute name, and back: the one map between code and records.
ATTRIBUTE_OF: dict[str, str] = {
    spec.name: spec.metadata.get("attribute", _camel(spec.name)) for spec in fields(Job) if spec.name != "extra"
}
FIELD_OF: dict[str, str] = {attribute: name for name, attribute in ATTRIBUTE_OF.items()}

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def attribute_name(field_name: str) -> str:
    """The table attribute of a Job field; a name that is not a field is refused (a typo would
    otherwise write an attribute nothing reads)."""
    try:
        return ATTRIBUTE_OF[field_name]
    except KeyError:
        raise ValueError(f"a job has no field {field_name!r}") from None


def to_attribute_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values as DynamoDB attribute values; None values are left out."""
    return {name: _serializer.serialize(_storable(value)) for name, value in values.items() if value is not None}


def _storable(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items() if v is not None}
    return value


def _plain(value: Any) -> Any:
    # Whole numbers back as int so callers compare and print them naturally; cost stays Decimal.
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def record_from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as the record users see (CLI, tests): attribute names, plain values."""
    return Job.from_item(item).to_record()
