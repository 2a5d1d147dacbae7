"""The output object's life: Runware uploads to a staging key, the pipeline checks the bytes and
publishes them to the final key.

The presigned PUT handed to Runware names only the staging key, which nothing else reads. Once the
staged bytes are verified, they are copied to the final key (Content-Type and extension from the
bytes, job id and source in the object's metadata) and the staged copy is removed, so a later PUT
to the staging URL changes nothing a user sees.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from urllib.parse import quote

from upscaler.image_header import HeaderBytes, ImageHeader, UnreadableImage
from upscaler.job_record import Job
from upscaler.models import OUTPUT_EXTENSIONS, PIXELS_PER_MEGAPIXEL
from upscaler.storage import ObjectInfo, ObjectMissing, ObjectStore

DEFAULT_STAGING_PREFIX = "staging/"
OUTPUT_FORMAT_OF = {"JPEG": "JPG", "PNG": "PNG", "WEBP": "WEBP"}
# How far the output's pixel count may stray from the target before the bytes are not taken as
# this job's result: generous, since how Runware rounds the target is not documented.
TARGET_PIXELS_TOLERANCE = 0.25
# How far the output's aspect ratio may stray from the input's, either way round (whether the model
# applies EXIF orientation is not documented).
ASPECT_TOLERANCE = 0.05


# S3's limit on the length of a key, in UTF-8 bytes.
MAX_KEY_BYTES = 1024


def staging_key_for(staging_prefix: str, job_id: str) -> str:
    return f"{staging_prefix}{job_id}"


def output_key_for(source_key: str, job_id: str, extension: str, *, inbox_prefix: str, output_prefix: str) -> str:
    """<output prefix><key below the inbox prefix>.<job id prefix>.<ext>: unique per version and
    per source name, so a.png and a.jpg (or two uploads of one key) never share an output.

    A source key near S3's length limit would make a longer output key, which S3 refuses (so
    Runware's upload would fail): the source part is then cut short, at a character boundary.
    """
    relative = source_key.removeprefix(inbox_prefix) or posixpath.basename(source_key)
    suffix = f".{job_id[:8]}.{extension}"
    room = max(0, MAX_KEY_BYTES - len(f"{output_prefix}{suffix}".encode()))
    relative = relative.encode()[:room].decode(errors="ignore")
    return f"{output_prefix}{relative}{suffix}"


class OutputNotReady(Exception):
    """Runware reported success but the output object is not in the bucket yet: ask again later."""


class OutputInvalid(Exception):
    """The uploaded bytes are not an image of the size this job asked for."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class VerifiedOutput:
    """An output whose bytes were checked, wherever it sits (staged or already published)."""

    info: ObjectInfo
    header: ImageHeader
    published: bool  # already at its final key

    @property
    def output_format(self) -> str:
        return OUTPUT_FORMAT_OF[self.header.format]


@dataclass(frozen=True)
class PublishedOutput:
    key: str
    etag: str
    size: int
    content_type: str
    output_format: str
    width: int
    height: int


class OutputPublisher:
    def __init__(self, objects: ObjectStore, staging_prefix: str = DEFAULT_STAGING_PREFIX) -> None:
        self.objects = objects
        self.staging_prefix = staging_prefix

    def staging_key(self, job: Job) -> str:
        return job.staging_key or staging_key_for(self.staging_prefix, job.job_id)

    def find(self, job: Job) -> VerifiedOutput | None:
        """The job's output if it exists, staged or already published; None when neither is there.

        Raises OutputInvalid when bytes are there but are not this job's result.
        """
        bucket = str(job.output_bucket)
        for key, published in ((self.staging_key(job), False), (str(job.output_key), True)):
            # One ranged GET gives the object's size (Content-Range), ETag, type and metadata with its
            # first bytes, which hold the header of any image the pipeline accepts: no HEAD is needed
            # (GetObject response headers, https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).
            try:
                current = self.objects.read_current(bucket, key)
            except ObjectMissing:
                continue
            return VerifiedOutput(current.info, self._check(job, current.info, current.header_bytes), published)
        return None

    def publish(self, job: Job, output: VerifiedOutput) -> PublishedOutput:
        """Copy verified staged bytes to the final key, named and typed after what they really are."""
        header = output.header
        if output.published:
            final_key, etag = output.info.key, output.info.etag
            if output.info.content_type != header.content_type:
                etag = self.objects.copy(output.info, final_key, header.content_type, output.info.metadata)
        else:
            final_key = final_key_for(str(job.output_key), output.output_format)
            etag = self.objects.copy(output.info, final_key, header.content_type, output_metadata(job))
        return PublishedOutput(
            key=final_key,
            etag=etag,
            size=output.info.size,
            content_type=header.content_type,
            output_format=output.output_format,
            width=header.width,
            height=header.height,
        )

    def discard_staged(self, job: Job) -> None:
        """Remove the staged copy once the job is final; a lifecycle rule is the backstop."""
        self.objects.delete(str(job.output_bucket), self.staging_key(job))

    def _check(self, job: Job, info: ObjectInfo, held: HeaderBytes | None = None) -> ImageHeader:
        try:
            header = self.objects.read_header(info, held)
        except UnreadableImage as error:
            raise OutputInvalid("outputUnreadable", f"the uploaded output is not a readable image: {error}") from None
        if not header.supported:
            raise OutputInvalid("outputUnreadable", f"the uploaded output is {header.format}, not JPEG, PNG or WEBP")
        problem = _geometry_problem(job, header)
        if problem:
            raise OutputInvalid("outputMismatch", problem)
        return header


def final_key_for(planned_key: str, output_format: str) -> str:
    """The planned output key with the extension of the format the bytes really are."""
    stem, extension = posixpath.splitext(planned_key)
    wanted = f".{OUTPUT_EXTENSIONS[output_format]}"
    return planned_key if extension == wanted else f"{stem}{wanted}"


def output_metadata(job: Job) -> dict[str, str]:
    # S3 user metadata must be ASCII: a non-ASCII source key is stored percent-encoded.
    metadata = {
        "job-id": job.job_id,
        "source-bucket": job.source_bucket,
        "source-key": quote(job.source_key, safe="/"),
    }
    if job.source_version_id:
        metadata["source-version-id"] = job.source_version_id
    options = options_signature(job)
    if options:
        metadata[OPTIONS_METADATA] = options
    return metadata


# The output's metadata entry naming the options it was made with, so an output found without its
# job record (expired) is reused only for the same options (upscaler.prior_outputs).
OPTIONS_METADATA = "upscale-options"


def options_signature(job: Job) -> str | None:
    """The options a job asked for, as one stable text; None when the job does not name them all."""
    if None in (job.target_megapixels, job.enhance_details, job.realism, job.output_format, job.output_quality):
        return None
    return ";".join(
        (
            f"targetMegapixels={int(job.target_megapixels or 0)}",
            f"enhanceDetails={str(bool(job.enhance_details)).lower()}",
            f"realism={str(bool(job.realism)).lower()}",
            f"outputFormat={job.output_format}",
            f"outputQuality={int(job.output_quality or 0)}",
        )
    )


def _geometry_problem(job: Job, header: ImageHeader) -> str | None:
    target = job.target_megapixels
    if target:
        wanted = int(target) * PIXELS_PER_MEGAPIXEL
        if abs(header.pixels - wanted) > wanted * TARGET_PIXELS_TOLERANCE:
            return (
                f"the uploaded output is {header.width}x{header.height} ({header.pixels / 1e6:.2f} MP), "
                f"not the {target} MP asked for"
            )
    width, height = job.input_width, job.input_height
    if width and height and header.width and header.height:
        asked = int(width) / int(height)
        got = header.width / header.height
        if min(abs(got / asked - 1), abs(got * asked - 1)) > ASPECT_TOLERANCE:
            return f"the uploaded output is {header.width}x{header.height}, not the shape of the {width}x{height} input"
    return None
