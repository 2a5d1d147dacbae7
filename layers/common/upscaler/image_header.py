"""Image format, dimensions, orientation and animation from an image's header, without decoding it.

Callers fetch byte ranges, not the object: the parser reads a sparse view of the file
(`HeaderBytes`) and says which bytes it needs next (`NeedMoreBytes`), so metadata that pushes the
frame header far in is skipped by its declared lengths. A format is named only once its signature
and the structure right after it check out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP")
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}

# How far into a file the image header may start: metadata (EXIF, XMP, ICC, text chunks) beyond
# this is not walked, and the file is refused as such, never called corrupt.
METADATA_MAX_BYTES = 16 * 1024 * 1024
MIB = 1024 * 1024

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis"}
_BMP_INFO_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
NOT_AN_IMAGE = "the content is not a JPEG, PNG or WEBP image"


@dataclass(frozen=True)
class ImageHeader:
    format: str  # JPEG | PNG | WEBP, or another recognised name (GIF, HEIC, ...) with no dimensions
    width: int = 0  # as stored; see display_width
    height: int = 0
    orientation: int = 1  # the EXIF Orientation tag (1 when absent): 5-8 show the image turned a quarter
    animated: bool = False

    @property
    def supported(self) -> bool:
        return self.format in SUPPORTED_FORMATS

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def display_width(self) -> int:
        return self.height if self.orientation >= 5 else self.width

    @property
    def display_height(self) -> int:
        return self.width if self.orientation >= 5 else self.height

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(self.format, "application/octet-stream")


class NeedMoreBytes(Exception):
    """The answer lies in bytes not fetched yet: `length` bytes from `offset`."""

    def __init__(self, offset: int = 0, length: int = 1) -> None:
        super().__init__(f"need {length} bytes at offset {offset}")
        self.offset = offset
        self.length = length


class UnreadableImage(ValueError):
    """The bytes do not start like any image this pipeline knows, or the header is broken."""


class MetadataTooLarge(UnreadableImage):
    """The image header lies past METADATA_MAX_BYTES of metadata: not known to be broken, just not read."""

    def __init__(self, fmt: str, limit: int = METADATA_MAX_BYTES) -> None:
        super().__init__(
            f"the {fmt} file's metadata is larger than {limit // MIB} MiB before its image header, "
            f"and at most {limit // MIB} MiB of metadata is read to find the dimensions; strip the "
            "metadata (e.g. exiftool -all= file) and upload it again"
        )
        self.limit = limit


class HeaderBytes:
    """The fetched parts of a file: contiguous spans from known offsets, and the file's size if known."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size
        self._spans: list[tuple[int, bytes]] = []

    @classmethod
    def of(cls, data: bytes, *, complete: bool = False) -> HeaderBytes:
        held = cls(len(data) if complete else None)
        held.add(0, data)
        return held

    @property
    def bytes_held(self) -> int:
        return sum(len(data) for _, data in self._spans)

    def add(self, offset: int, data: bytes) -> None:
        for index, (start, held) in enumerate(self._spans):
            if start + len(held) == offset:
                self._spans[index] = (start, held + data)
                return
        self._spans.append((offset, data))

    def gap_at(self, offset: int) -> int:
        """The first offset at or after `offset` that is not held."""
        for start, data in self._spans:
            if start <= offset < start + len(data):
                return start + len(data)
        return offset

    def take(self, offset: int, length: int) -> bytes:
        """Bytes [offset, offset+length), shorter only where the file ends; NeedMoreBytes if not held."""
        end = offset + length if self.size is None else min(offset + length, self.size)
        if end <= offset:
            return b""
        for start, data in self._spans:
            if start <= offset and start + len(data) >= end:
                return data[offset - start : end - start]
        raise NeedMoreBytes(offset, end - offset)


def read_image_header(data: bytes, *, complete: bool = False) -> ImageHeader:
    """Parse leading bytes. Raises NeedMoreBytes when the answer lies further in, unless `complete`
    says `data` is the whole object, in which case a missing header means a truncated file."""
    return parse_image(HeaderBytes.of(data, complete=complete))


def parse_image(source: HeaderBytes) -> ImageHeader:
    head = source.take(0, 12)
    if head.startswith(b"\xff\xd8\xff"):
        return _jpeg(source)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(source)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp(source)
    other = _other_format(source, head)
    if other:
        return ImageHeader(other)
    if len(head) < 12:
        raise UnreadableImage(f"{NOT_AN_IMAGE} (only {len(head)} bytes)")
    raise UnreadableImage(NOT_AN_IMAGE)


def _other_format(source: HeaderBytes, head: bytes) -> str | None:
    """Formats recognised only to refuse them by name; each needs more than a magic number."""
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return "GIF"
    if head[:4] in (b"II*\x00", b"MM\x00*") and len(head) >= 8:
        offset = struct.unpack("<I" if head[:2] == b"II" else ">I", head[4:8])[0]
        return "TIFF" if offset >= 8 else None
    if head.startswith(b"%PDF-"):
        return "PDF"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS and struct.unpack(">I", head[:4])[0] >= 16:
        return "AVIF" if head[8:12].startswith(b"avi") else "HEIC"
    if head.startswith(b"BM"):
        info = source.take(14, 4)
        if len(info) == 4 and struct.unpack("<I", info)[0] in _BMP_INFO_HEADER_SIZES:
            return "BMP"
    return None


def _truncated(fmt: str) -> UnreadableImage:
    return UnreadableImage(f"truncated {fmt} header: the file ends before its dimensions")


def _checked(header: ImageHeader) -> ImageHeader:
    if header.width <= 0 or header.height <= 0:
        raise UnreadableImage(f"{header.format} header gives no dimensions")
    return header


# --- JPEG ---------------------------------------------------------------------------------------

# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _is_segment_marker(marker: int) -> bool:
    # Markers with a length field: C0-FE except RSTn (D0-D7), SOI (D8), EOI (D9).
    return 0xC0 <= marker <= 0xFE and not 0xD0 <= marker <= 0xD9


def _jpeg(source: HeaderBytes) -> ImageHeader:
    offset = 2
    orientation = 1
    named = False  # "JPEG" only once SOI is followed by a valid segment with a length
    while True:
        if offset > METADATA_MAX_BYTES:
            raise MetadataTooLarge("JPEG")
        marker_bytes = source.take(offset, 4)
        if len(marker_bytes) >= 2 and marker_bytes[:2] == b"\xff\xff":
            offset += 1  # a fill byte
            continue
        if len(marker_bytes) < 4:
            raise _truncated("JPEG") if named else UnreadableImage(f"{NOT_AN_IMAGE} (too short to be one)")
        if marker_bytes[0] != 0xFF:
            raise UnreadableImage("corrupt JPEG: segment marker expected")
        marker = marker_bytes[1]
        if marker in (0xD9, 0xDA):
            raise UnreadableImage("corrupt JPEG: image data before a frame header")
        if not _is_segment_marker(marker):
            raise UnreadableImage(f"corrupt JPEG: invalid marker 0xFF{marker:02X} before the frame header")
        (length,) = struct.unpack(">H", marker_bytes[2:4])
        if length < 2:
            raise UnreadableImage("corrupt JPEG: bad segment length")
        named = True
        if marker in _SOF_MARKERS:
            frame = source.take(offset + 4, 5)
            if len(frame) < 5:
                raise _truncated("JPEG")
            height, width = struct.unpack(">HH", frame[1:5])
            return _checked(ImageHeader("JPEG", width, height, orientation))
        if marker == 0xE1 and orientation == 1 and source.take(offset + 4, 6) == b"Exif\x00\x00":
            segment = source.take(offset + 10, length - 8)
            if len(segment) < length - 8:
                raise _truncated("JPEG")
            orientation = exif_orientation(segment)
        offset += 2 + length


def exif_orientation(tiff: bytes) -> int:
    """The Orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block; 1 when absent or odd."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    order = "<" if tiff[:2] == b"II" else ">"
    magic, ifd = struct.unpack(order + "HI", tiff[2:8])
    if magic != 42 or ifd + 2 > len(tiff):
        return 1
    (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
    for index in range(count):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(tiff):
            break
        tag, kind, values = struct.unpack(order + "HHI", tiff[entry : entry + 8])
        if tag == 0x0112 and kind == 3 and values >= 1:
            (value,) = struct.unpack(order + "H", tiff[entry + 8 : entry + 10])
            return value if 1 <= value <= 8 else 1
    return 1


# --- PNG ----------------------------------------------------------------------------------------

# Allowed bit depths per colour type (PNG specification, IHDR).
_PNG_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}
_EXIF_READ_BYTES = 64 * 1024  # IFD0, where Orientation lives, comes first


def _png(source: HeaderBytes) -> ImageHeader:
    ihdr = source.take(8, 21)
    if len(ihdr) < 8:
        raise UnreadableImage(f"{NOT_AN_IMAGE} (too short to be one)")
    length, kind = struct.unpack(">I4s", ihdr[:8])
    if kind != b"IHDR" or length != 13:
        raise UnreadableImage("corrupt PNG: the first chunk is not a 13-byte IHDR")
    if len(ihdr) < 21:
        raise _truncated("PNG")
    width, height, depth, colour = struct.unpack(">IIBB", ihdr[8:18])
    _checked(ImageHeader("PNG", width, height))
    if depth not in _PNG_DEPTHS.get(colour, set()):
        raise UnreadableImage(f"corrupt PNG: bit depth {depth} with colour type {colour}")
    # Walk the chunks before the image data: acTL there makes an APNG, eXIf carries orientation.
    offset, orientation = 33, 1
    while True:
        if offset > METADATA_MAX_BYTES:
            raise MetadataTooLarge("PNG")
        chunk = source.take(offset, 8)
        if len(chunk) < 8:
            raise UnreadableImage(f"truncated PNG: the file ends before its image data ({width}x{height} declared)")
        length, kind = struct.unpack(">I4s", chunk)
        if kind in (b"IDAT", b"IEND"):
            return ImageHeader("PNG", width, height, orientation)
        if kind == b"acTL":
            return ImageHeader("PNG", width, height, orientation, animated=True)
        if kind == b"eXIf":
            orientation = exif_orientation(source.take(offset + 8, min(length, _EXIF_READ_BYTES)))
        offset += 12 + length


# --- WEBP ---------------------------------------------------------------------------------------

_VP8X_ANIMATION = 0x02
_VP8X_EXIF = 0x08


def _webp(source: HeaderBytes) -> ImageHeader:
    head = source.take(0, 30)
    if len(head) < 16:
        raise UnreadableImage(f"{NOT_AN_IMAGE} (too short to be one)")
    (riff_size,) = struct.unpack("<I", head[4:8])
    chunk = head[12:16]
    if chunk not in (b"VP8 ", b"VP8L", b"VP8X"):
        raise UnreadableImage("corrupt WEBP: unknown chunk where VP8, VP8L or VP8X must be")
    if riff_size < 4 + 8:
        raise UnreadableImage("corrupt WEBP: RIFF size too small")
    if source.size is not None and riff_size + 8 > source.size:
        raise UnreadableImage(f"truncated WEBP: the RIFF header says {riff_size + 8} bytes, the file has {source.size}")
    if len(head) < 30:
        raise _truncated("WEBP")
    if chunk == b"VP8 ":
        if head[23:26] != b"\x9d\x01\x2a" or head[20] & 0x01:
            raise UnreadableImage("corrupt WEBP: bad VP8 frame tag")
        width, height = struct.unpack("<HH", head[26:30])
        return _checked(ImageHeader("WEBP", width & 0x3FFF, height & 0x3FFF))
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        if head[20] != 0x2F or bits >> 29:
            raise UnreadableImage("corrupt WEBP: bad VP8L signature")
        return _checked(ImageHeader("WEBP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
    flags = head[20]
    width = int.from_bytes(head[24:27], "little") + 1
    height = int.from_bytes(head[27:30], "little") + 1
    return _webp_extended(source, width, height, flags)


def _webp_extended(source: HeaderBytes, width: int, height: int, flags: int) -> ImageHeader:
    """VP8X: walk the chunks for ANIM/ANMF (animation) and, when flagged, EXIF after the image data."""
    if flags & _VP8X_ANIMATION:
        return ImageHeader("WEBP", width, height, animated=True)
    offset = 12 + 8 + 10
    image_seen = False
    while True:
        if offset > METADATA_MAX_BYTES and not image_seen:
            raise MetadataTooLarge("WEBP")
        chunk = source.take(offset, 8)
        if len(chunk) < 8:
            if image_seen:
                return _checked(ImageHeader("WEBP", width, height))
            raise _truncated("WEBP")
        kind = chunk[:4]
        (length,) = struct.unpack("<I", chunk[4:8])
        if kind in (b"ANIM", b"ANMF"):
            return _checked(ImageHeader("WEBP", width, height, animated=True))
        if kind in (b"VP8 ", b"VP8L"):
            image_seen = True
            if not flags & _VP8X_EXIF:
                return _checked(ImageHeader("WEBP", width, height))
        if kind == b"EXIF":
            block = source.take(offset + 8, min(length, _EXIF_READ_BYTES))
            orientation = exif_orientation(block.removeprefix(b"Exif\x00\x00"))
            return _checked(ImageHeader("WEBP", width, height, orientation))
        offset += 8 + length + (length & 1)
