"""Image format and dimensions from the first bytes of a file, without decoding it.

Only the header is needed, so callers can fetch a small byte range instead of the object.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP")

# Formats recognised only to reject them with a precise message.
_OTHER_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
)
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}

CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@dataclass(frozen=True)
class ImageHeader:
    format: str  # JPEG | PNG | WEBP, or another recognised name (GIF, HEIC, ...) with no dimensions
    width: int = 0
    height: int = 0

    @property
    def supported(self) -> bool:
        return self.format in SUPPORTED_FORMATS

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(self.format, "application/octet-stream")


class NeedMoreBytes(Exception):
    """The header continues past the bytes given (JPEG metadata can push the frame header far in)."""


class UnreadableImage(ValueError):
    """The bytes do not start like any image this pipeline knows, or the header is broken."""


def read_image_header(data: bytes, *, complete: bool = False) -> ImageHeader:
    """Parse format and size from leading bytes.

    Raises NeedMoreBytes when the answer lies further in, unless `complete` says `data` is the
    whole object, in which case a missing header means a truncated file.
    """
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg(data, complete)
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(data, complete)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data, complete)
    for signature, name in _OTHER_SIGNATURES:
        if data.startswith(signature):
            return ImageHeader(name)
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return ImageHeader("AVIF" if data[8:12].startswith(b"avi") else "HEIC")
    if len(data) < 12 and not complete:
        raise NeedMoreBytes
    raise UnreadableImage("the content is not a JPEG, PNG or WEBP image")


def _truncated(complete: bool, what: str) -> Exception:
    return UnreadableImage(f"truncated {what} header") if complete else NeedMoreBytes()


def _png(data: bytes, complete: bool) -> ImageHeader:
    if len(data) < 24:
        raise _truncated(complete, "PNG")
    if data[12:16] != b"IHDR":
        raise UnreadableImage("PNG without an IHDR chunk")
    width, height = struct.unpack(">II", data[16:24])
    return _checked(ImageHeader("PNG", width, height))


# JPEG start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(data: bytes, complete: bool) -> ImageHeader:
    offset = 2
    while True:
        # Skip fill bytes between segments.
        while data[offset : offset + 2] == b"\xff\xff":
            offset += 1
        if offset + 4 > len(data):
            raise _truncated(complete, "JPEG")
        if data[offset] != 0xFF:
            raise UnreadableImage("corrupt JPEG: segment marker expected")
        marker = data[offset + 1]
        if marker in (0xD9, 0xDA):
            raise UnreadableImage("corrupt JPEG: image data before a frame header")
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        if length < 2:
            raise UnreadableImage("corrupt JPEG: bad segment length")
        if marker in _SOF_MARKERS:
            if offset + 9 > len(data):
                raise _truncated(complete, "JPEG")
            height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
            return _checked(ImageHeader("JPEG", width, height))
        offset += 2 + length


def _webp(data: bytes, complete: bool) -> ImageHeader:
    if len(data) < 30:
        raise _truncated(complete, "WEBP")
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise UnreadableImage("corrupt WEBP: bad VP8 frame tag")
        width, height = struct.unpack("<HH", data[26:30])
        return _checked(ImageHeader("WEBP", width & 0x3FFF, height & 0x3FFF))
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise UnreadableImage("corrupt WEBP: bad VP8L signature")
        bits = int.from_bytes(data[21:25], "little")
        return _checked(ImageHeader("WEBP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return _checked(ImageHeader("WEBP", width, height))
    raise UnreadableImage("corrupt WEBP: unknown chunk")


def _checked(header: ImageHeader) -> ImageHeader:
    if header.width <= 0 or header.height <= 0:
        raise UnreadableImage(f"{header.format} header gives no dimensions")
    return header
