"""A source looked at as submit looks at it, without downloading it: the job fields it makes, or why
it is refused.

One ranged GET of the object's current version (storage.ObjectStore.read_current) gives its size,
version, metadata and header bytes; the options come from the stack's defaults, the folder's preset
and the object's metadata (Settings.options_for); the rules of source_rules decide. The submit path
claims or rejects the job from this; a backfill's estimate counts and prices with the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from upscaler.image_header import ImageHeader, MetadataTooLarge, UnreadableImage
from upscaler.models import InvalidOption, UpscaleOptions
from upscaler.outputs import output_key_for
from upscaler.settings import Settings
from upscaler.source_events import SourceObject
from upscaler.source_rules import Rejection, content_problem, input_fields, replaced_by, unreadable_source
from upscaler.storage import ObjectDeleted, ObjectInfo, ObjectMissing, ObjectStore, SourceUnreadable


@dataclass(frozen=True)
class SourceInspector:
    settings: Settings
    objects: ObjectStore

    def inspect(self, source: SourceObject, job_id: str) -> Rejection | dict[str, Any]:
        """Check the object's current state without downloading it; the fields to store, or why it is refused."""
        try:
            current = self.objects.read_current(source.bucket, source.key, event_version_id=source.version_id)
        except ObjectDeleted:
            return Rejection(
                "sourceDeleted",
                "the object was deleted (its current version is a delete marker) before it could be processed",
            )
        except ObjectMissing:
            return Rejection("sourceMissing", "the object no longer exists, so there is nothing to upscale")
        except SourceUnreadable as refused:  # no retry can read it: refused now, never dead-lettered
            return unreadable_source(refused)
        info = current.info
        replaced = replaced_by(source, info)
        if replaced:
            return Rejection("sourceReplaced", replaced)
        if info.size == 0:
            return Rejection("emptyObject", "the object is empty (0 bytes)")
        limit = self.settings.max_input_bytes
        if info.size > limit:
            return Rejection("objectTooLarge", f"the object is {info.size} bytes; the limit is {limit} bytes")
        try:
            options, preset = self.settings.options_for(source.key, info.metadata)
        except InvalidOption as error:
            return Rejection("invalidOverride", f"invalid metadata override x-amz-meta-{error}")
        try:
            header = self.objects.read_header(info, current.header_bytes)
        except MetadataTooLarge as error:
            return Rejection("metadataTooLarge", f"{error}")
        except UnreadableImage as error:
            return Rejection("notAnImage", f"{error}")
        problem = content_problem(header, options)
        if problem is not None:  # the record says which preset asked for what the image cannot give
            return replace(problem, known={**problem.known, "preset": preset}) if preset else problem
        return self._accepted(source, job_id, info, header, options, preset)

    def _accepted(
        self,
        source: SourceObject,
        job_id: str,
        info: ObjectInfo,
        header: ImageHeader,
        options: UpscaleOptions,
        preset: str | None,
    ) -> dict[str, Any]:
        """The Job fields of a source accepted for upscaling."""
        return {
            "source_version_id": info.version_id,
            "source_etag": info.etag,
            "source_size": info.size,
            "source_content_type": info.content_type or header.content_type,
            **input_fields(header),
            "target_megapixels": options.target_megapixels,
            "enhance_details": options.enhance_details,
            "realism": options.realism,
            "output_format": options.output_format,
            "output_quality": options.output_quality,
            "preset": preset,
            "output_bucket": self.settings.output_bucket,
            "output_key": output_key_for(
                source.key,
                job_id,
                options.output_extension,
                inbox_prefix=self.settings.inbox_prefix,
                output_prefix=self.settings.output_prefix,
            ),
            "output_content_type": options.output_content_type,
        }
