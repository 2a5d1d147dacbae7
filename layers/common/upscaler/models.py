"""What a job asks Runware for: typed, with the documented ranges enforced (its answers are read in
upscaler.runware_answers)."""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from typing import Any

MODEL_ID = "prunaai:p-image@upscale"
OUTPUT_FORMATS = ("JPG", "PNG", "WEBP")
OUTPUT_EXTENSIONS = {"JPG": "jpg", "PNG": "png", "WEBP": "webp"}
OUTPUT_CONTENT_TYPES = {"JPG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
TARGET_MEGAPIXELS_RANGE = (1, 8)
OUTPUT_QUALITY_RANGE = (20, 99)
MIN_RESULT_TTL_SECONDS = 60
PIXELS_PER_MEGAPIXEL = 1_000_000

# S3 user metadata keys (x-amz-meta-<name>) that override the defaults for one object.
OVERRIDE_KEYS = {
    "target-megapixels": "target_megapixels",
    "enhance-details": "enhance_details",
    "realism": "realism",
    "output-format": "output_format",
    "output-quality": "output_quality",
}


class InvalidOption(ValueError):
    """An upscale option is outside what the model accepts."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


@dataclass(frozen=True)
class UpscaleOptions:
    target_megapixels: int = 4
    enhance_details: bool = False
    realism: bool = False
    output_format: str = "JPG"
    output_quality: int = 95

    def __post_init__(self) -> None:
        low, high = TARGET_MEGAPIXELS_RANGE
        if type(self.target_megapixels) is not int or not low <= self.target_megapixels <= high:
            raise InvalidOption("target-megapixels", f"must be an integer from {low} to {high}")
        low, high = OUTPUT_QUALITY_RANGE
        if type(self.output_quality) is not int or not low <= self.output_quality <= high:
            raise InvalidOption("output-quality", f"must be an integer from {low} to {high}")
        if self.output_format not in OUTPUT_FORMATS:
            raise InvalidOption("output-format", f"must be one of {', '.join(OUTPUT_FORMATS)}")
        for name in ("enhance_details", "realism"):
            if type(getattr(self, name)) is not bool:
                raise InvalidOption(name.replace("_", "-"), "must be true or false")

    @property
    def target_pixels(self) -> int:
        return self.target_megapixels * PIXELS_PER_MEGAPIXEL

    @property
    def output_extension(self) -> str:
        return OUTPUT_EXTENSIONS[self.output_format]

    @property
    def output_content_type(self) -> str:
        return OUTPUT_CONTENT_TYPES[self.output_format]

    def with_overrides(self, metadata: Mapping[str, str]) -> UpscaleOptions:
        """Apply per-object overrides from S3 user metadata (keys without the x-amz-meta- prefix).

        A key that is nearly an option's name is refused rather than ignored: the user meant it,
        and silently charging for the default would be worse than saying so.
        """
        for meta_key in metadata:
            meant = near_miss_of_option(meta_key)
            if meant:
                raise InvalidOption(meta_key, f"not an option; did you mean x-amz-meta-{meant}?")
        changes: dict[str, Any] = {}
        for meta_key, field_name in OVERRIDE_KEYS.items():
            raw = metadata.get(meta_key)
            if raw is None:
                continue
            text = decoded_metadata_value(meta_key, raw).strip()
            if field_name in ("target_megapixels", "output_quality"):
                changes[field_name] = _parse_int(meta_key, text)
            elif field_name in ("enhance_details", "realism"):
                changes[field_name] = parse_bool(meta_key, text)
            else:
                changes[field_name] = text.upper().replace("JPEG", "JPG")
        return replace(self, **changes) if changes else self


# An RFC 2047 encoded-word: =?charset?B|Q?text?=
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=")


def decoded_metadata_value(name: str, raw: str) -> str:
    """A user metadata value as the user wrote it.

    S3 returns a value that held non-ASCII characters as RFC 2047 encoded-words (UTF-8, then
    `=?UTF-8?B?...?=` or `=?UTF-8?Q?...?=`; S3 User Guide, "Working with object metadata",
    user-defined metadata: https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html),
    so a value typed with a non-ASCII digit or space arrives encoded. A value with no encoded-word
    is returned as it is; one that does not decode is an invalid option.
    """
    words = _ENCODED_WORD.findall(raw)
    if not words:
        return raw
    for _, encoding, payload in words:
        if encoding in "Bb" and not _is_base64(payload):
            raise InvalidOption(name, f"{raw!r} is not a valid RFC 2047 encoded-word (bad base64)")
    try:
        return str(make_header(decode_header(raw)))
    except (HeaderParseError, LookupError, UnicodeDecodeError) as error:
        raise InvalidOption(name, f"{raw!r} is not a valid RFC 2047 encoded-word ({error})") from None


def _is_base64(payload: str) -> bool:
    try:
        base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _squashed(name: str) -> str:
    return "".join(character for character in name.lower() if character.isalnum())


def _edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def near_miss_of_option(meta_key: str) -> str | None:
    """The option a metadata key was probably meant to be (other separators, case, a plural or a
    typo or two), or None for an exact option name and for unrelated user metadata."""
    if meta_key in OVERRIDE_KEYS:
        return None
    squashed = _squashed(meta_key)
    for option in OVERRIDE_KEYS:
        target = _squashed(option)
        # One slip in a short name, two in a long one: "realm" is not "realism", "megapixel" is.
        allowed = 1 if len(target) < 10 else 2
        if squashed == target or _edit_distance(squashed, target) <= allowed:
            return option
        singular = squashed[:-3] + "y" if squashed.endswith("ies") else squashed.removesuffix("es")
        if squashed.rstrip("s") == target.rstrip("s") or singular == target:
            return option
    return None


def _parse_int(name: str, text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise InvalidOption(name, f"{text!r} is not an integer") from None


def parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise InvalidOption(name, f"{text!r} is not true or false")


def is_uuid4(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return parsed.version == 4 and str(parsed) == value.lower()


@dataclass(frozen=True)
class UpscaleTask:
    """One `upscale` task for Runware's async API, with output and result routed back to us."""

    task_uuid: str
    image_url: str
    options: UpscaleOptions
    upload_endpoint: str
    webhook_url: str
    result_ttl_seconds: int

    def __post_init__(self) -> None:
        if not is_uuid4(self.task_uuid):
            raise ValueError(f"taskUUID must be a lowercase UUID v4, got {self.task_uuid!r}")
        if self.result_ttl_seconds < MIN_RESULT_TTL_SECONDS:
            raise ValueError(f"ttl must be at least {MIN_RESULT_TTL_SECONDS} seconds")

    def to_json(self) -> dict[str, Any]:
        return {
            "taskType": "upscale",
            "taskUUID": self.task_uuid,
            "model": MODEL_ID,
            "inputs": {"image": self.image_url},
            "targetMegapixels": self.options.target_megapixels,
            "settings": {
                "enhanceDetails": self.options.enhance_details,
                "realism": self.options.realism,
            },
            "outputType": "URL",
            "outputFormat": self.options.output_format,
            "outputQuality": self.options.output_quality,
            "deliveryMethod": "async",
            "uploadEndpoint": self.upload_endpoint,
            "webhookURL": self.webhook_url,
            "includeCost": True,
            "ttl": self.result_ttl_seconds,
        }
