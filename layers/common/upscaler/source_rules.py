"""What makes a source unusable once its header is read: the rules behind a REJECTED job's reason.

The submit path reads the object's current state (storage.ObjectStore.read_current); these say why
that state, or the image it holds, cannot be upscaled with the options asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from upscaler.image_header import ImageHeader
from upscaler.models import UpscaleOptions
from upscaler.output_geometry import geometry_problem
from upscaler.source_events import SourceObject
from upscaler.storage import ObjectInfo


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
