"""What makes a source unusable: the rules behind a REJECTED job's reason.

The submit path reads the object's current state (storage.ObjectStore.read_current); these say why
that state, the image it holds, or S3's refusal to read it, means it cannot be upscaled with the
options asked for, and what the user can do about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from upscaler.image_header import ImageHeader
from upscaler.models import UpscaleOptions
from upscaler.output_geometry import geometry_problem
from upscaler.source_events import SourceObject
from upscaler.storage import (
    CustomerKeyEncrypted,
    KmsKeyRefused,
    ObjectArchived,
    ObjectInfo,
    ReadDenied,
    SourceUnreadable,
)

# Where a source in each archive says how to get it back (S3 User Guide, "Restoring an archived
# object"; API reference, RestoreObject). Intelligent-Tiering's archive tiers take no Days.
_STORAGE_CLASS_NAMES = {
    "GLACIER": "S3 Glacier Flexible Retrieval",
    "DEEP_ARCHIVE": "S3 Glacier Deep Archive",
    "INTELLIGENT_TIERING": "S3 Intelligent-Tiering",
}
_ACCESS_TIER_NAMES = {"ARCHIVE_ACCESS": "Archive Access", "DEEP_ARCHIVE_ACCESS": "Deep Archive Access"}
# SourceKmsKeyArns: the template parameter that grants the submit function kms:Decrypt on source keys.
KMS_GRANT_PARAMETER = "SourceKmsKeyArns"


@dataclass(frozen=True)
class Rejection:
    code: str
    message: str
    known: dict[str, Any] = field(default_factory=dict)  # Job fields learnt about the input before refusing it


def replaced_by(source: SourceObject, current: ObjectInfo) -> str | None:
    """Why the event's version is no longer the object's current one, or None if it still is.

    Versioned buckets compare version ids; without a version id on either side, the ETag.
    """
    if source.version_id and current.version_id:
        if current.version_id == source.version_id:
            return None
        return (
            f"this version ({source.version_id}) is no longer the object's current version "
            f"({current.version_id}): the key was overwritten or this version deleted; only the "
            "current version is upscaled, as its own job"
        )
    if source.etag and current.etag and current.etag != source.etag:
        return (
            "the object was overwritten before it could be processed (its ETag changed); only the "
            "current version is upscaled, as its own job"
        )
    return None


def input_fields(header: ImageHeader) -> dict[str, Any]:
    # Displayed sides: EXIF orientations 5-8 show the stored image turned a quarter.
    return {
        "input_format": header.format,
        "input_width": header.display_width,
        "input_height": header.display_height,
        "input_orientation": header.orientation,
    }


def content_problem(header: ImageHeader, options: UpscaleOptions) -> Rejection | None:
    """Why a readable image cannot be upscaled with these options, or None."""
    if not header.supported:
        return Rejection(
            "unsupportedFormat",
            f"{header.format} is not supported; use JPEG, PNG or WEBP",
            {"input_format": header.format},
        )
    known = {**input_fields(header), "target_megapixels": options.target_megapixels}
    if header.animated:
        return Rejection(
            "animatedImage",
            f"the {header.format} is animated, and Runware's upscaler documents no animation support: "
            "upload a single frame as a still image",
            known,
        )
    width, height = header.display_width, header.display_height
    if header.pixels >= options.target_pixels:
        return Rejection(
            "alreadyAtTarget",
            f"the image is {width}x{height} ({header.pixels / 1e6:.2f} MP), already at or "
            f"above the target of {options.target_megapixels} MP",
            known,
        )
    problem = geometry_problem(width, height, options)
    if problem:
        return Rejection(problem.code, problem.message, {**known, "output_format": options.output_format})
    return None


def unreadable_source(refused: SourceUnreadable) -> Rejection:
    """Why S3 will not let the source be read, and what the user does about it."""
    where = f"s3://{refused.bucket}/{refused.key}"
    said = f"(S3: {refused.aws_code}{': ' + refused.aws_message if refused.aws_message else ''})"
    if isinstance(refused, ObjectArchived):
        return Rejection("sourceArchived", f"{_archived_advice(refused, where)} {said}")
    if isinstance(refused, KmsKeyRefused):
        return _kms_rejection(refused, said)
    if isinstance(refused, CustomerKeyEncrypted):
        return Rejection(
            "sourceCustomerKey",
            "the object is encrypted with a customer-provided key (SSE-C), which is not supported: S3 "
            "needs the key on every read, and Runware reads the source through a presigned URL that "
            f"cannot carry it. Upload it again without SSE-C (SSE-S3 or SSE-KMS) {said}",
        )
    assert isinstance(refused, ReadDenied)
    return Rejection(
        "sourceAccessDenied",
        f"the submit function may not read {where}: its role needs s3:GetObject on it (the template "
        "grants it under the inbox prefix), and no bucket policy, access point policy, VPC endpoint "
        "policy or service control policy may deny it. Fix the permission, then upload the object "
        f"again {said}",
    )


def _archived_advice(refused: ObjectArchived, where: str) -> str:
    storage_class = refused.storage_class or "an archive storage class"
    name = _STORAGE_CLASS_NAMES.get(refused.storage_class, storage_class)
    tier = _ACCESS_TIER_NAMES.get(refused.access_tier, refused.access_tier)
    bucket, key = refused.bucket, refused.key
    if refused.storage_class == "INTELLIGENT_TIERING" or refused.access_tier:
        restore = f"aws s3api restore-object --bucket {bucket} --key '{key}' --restore-request '{{}}'"
        then = "once it is back in the Frequent Access tier"
    else:
        restore = (
            f"aws s3api restore-object --bucket {bucket} --key '{key}' "
            '--restore-request \'{"Days":1,"GlacierJobParameters":{"Tier":"Standard"}}\''
        )
        then = 'once the restore has finished (head-object shows ongoing-request="false")'
    return (
        f"the object is archived in {name} ({storage_class}{', ' + tier + ' tier' if tier else ''}) and "
        f"cannot be read until it is restored: run {restore}, then, {then}, copy it onto itself "
        f"(aws s3 cp {where} {where} --storage-class STANDARD), which uploads a new version that is "
        "upscaled as its own job"
    )


def _kms_rejection(refused: KmsKeyRefused, said: str) -> Rejection:
    named = f"the KMS key {refused.kms_key_id}" if refused.kms_key_id else "its KMS key"
    code = refused.aws_code
    if code in ("KMS.DisabledException", "KMS.KMSInvalidStateException", "KMS.NotFoundException"):
        return Rejection(
            "sourceKmsKeyUnusable",
            f"the object is encrypted with {named} (SSE-KMS), which is disabled, pending deletion or "
            f"gone, so nothing can decrypt it: enable the key (or cancel its deletion), then upload "
            f"the object again {said}",
        )
    return Rejection(
        "sourceKmsKeyNotGranted",
        f"the object is encrypted with {named} (SSE-KMS), which the submit function may not use "
        f"(kms:Decrypt): add the key's ARN to the stack's {KMS_GRANT_PARAMETER} parameter and "
        "update the stack (a key in another account must also allow the submit function's role in "
        f"its key policy), then upload the object again {said}",
    )
