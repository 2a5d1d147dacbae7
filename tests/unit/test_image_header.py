"""Format and dimensions from leading bytes: every supported variant, the rejected formats, broken input."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from upscaler.image_header import (
    METADATA_MAX_BYTES,
    HeaderBytes,
    ImageHeader,
    MetadataTooLarge,
    NeedMoreBytes,
    UnreadableImage,
    parse_image,
    read_image_header,
)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def gradient(width: int, height: int, mode: str = "RGB") -> Image.Image:
    image = Image.linear_gradient("L").resize((width, height))
    return image.convert(mode)


def with_segments_after_soi(jpeg: bytes, *segments: tuple[int, int]) -> bytes:
    """Insert (marker, payload length) segments right after SOI, before the frame header."""
    inserted = b"".join(
        bytes([0xFF, marker]) + struct.pack(">H", length + 2) + b"\x00" * length for marker, length in segments
    )
    return jpeg[:2] + inserted + jpeg[2:]


def sof_offset(jpeg: bytes) -> int:
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        index = jpeg.find(marker)
        if index >= 0:
            return index
    raise AssertionError("no frame header")


# --- JPEG ---------------------------------------------------------------------------------------


def test_baseline_jpeg():
    data = encode(gradient(640, 480), "JPEG", quality=90)
    assert data[sof_offset(data) + 1] == 0xC0
    assert read_image_header(data) == ImageHeader("JPEG", 640, 480)


def test_progressive_jpeg():
    data = encode(gradient(321, 123), "JPEG", progressive=True)
    assert b"\xff\xc2" in data and b"\xff\xc0" not in data[: sof_offset(data)]
    header = read_image_header(data)
    assert (header.format, header.width, header.height) == ("JPEG", 321, 123)


def test_grayscale_and_cmyk_jpeg():
    assert read_image_header(encode(gradient(50, 70, "L"), "JPEG")) == ImageHeader("JPEG", 50, 70)
    assert read_image_header(encode(gradient(33, 44, "CMYK"), "JPEG")) == ImageHeader("JPEG", 33, 44)


def test_jpeg_with_exif_padding_before_the_frame_header():
    exif = Image.Exif()
    exif[0x010E] = "x" * 60_000  # ImageDescription: a big APP1 segment
    data = encode(gradient(800, 600), "JPEG", exif=exif.tobytes())
    assert sof_offset(data) > 60_000
    assert read_image_header(data) == ImageHeader("JPEG", 800, 600)


def test_jpeg_whose_frame_header_lies_beyond_the_first_bytes_asks_for_more():
    data = with_segments_after_soi(encode(gradient(200, 100), "JPEG"), (0xE1, 65_000), (0xE2, 65_000))
    assert sof_offset(data) > 128_000
    with pytest.raises(NeedMoreBytes):
        read_image_header(data[: 64 * 1024])
    assert read_image_header(data[: 256 * 1024]) == ImageHeader("JPEG", 200, 100)


def test_jpeg_fill_bytes_between_segments_are_skipped():
    data = encode(gradient(20, 10), "JPEG")
    padded = data[:2] + b"\xff\xff\xff" + data[2:]
    assert read_image_header(padded) == ImageHeader("JPEG", 20, 10)


# --- PNG and WEBP -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_png(mode):
    assert read_image_header(encode(gradient(1234, 567, mode), "PNG")) == ImageHeader("PNG", 1234, 567)


def test_webp_lossy_vp8():
    data = encode(gradient(300, 200), "WEBP", quality=80)
    assert data[12:16] == b"VP8 "
    assert read_image_header(data) == ImageHeader("WEBP", 300, 200)


def test_webp_lossless_vp8l():
    data = encode(gradient(301, 199), "WEBP", lossless=True)
    assert data[12:16] == b"VP8L"
    assert read_image_header(data) == ImageHeader("WEBP", 301, 199)


def test_webp_extended_vp8x():
    data = encode(gradient(457, 389, "RGBA"), "WEBP", quality=80, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00")
    assert data[12:16] == b"VP8X"
    assert read_image_header(data) == ImageHeader("WEBP", 457, 389)


def test_webp_at_the_largest_size_the_format_allows():
    # VP8L stores width-1 and height-1 in 14 bits each: 16384 is the maximum.
    bits = (16384 - 1) | ((9000 - 1) << 14)
    chunk = b"VP8L" + struct.pack("<I", 5) + b"\x2f" + bits.to_bytes(4, "little")
    data = b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk + b"\x00" * 8
    assert read_image_header(data) == ImageHeader("WEBP", 16384, 9000)


def test_tiny_images_read_from_complete_files():
    for fmt, params in (("PNG", {}), ("WEBP", {"lossless": True}), ("WEBP", {}), ("JPEG", {})):
        data = encode(Image.new("RGB", (1, 1)), fmt, **params)
        assert read_image_header(data, complete=True) == ImageHeader(fmt, 1, 1)


# --- recognised but unsupported -----------------------------------------------------------------


def heif(brand: bytes) -> bytes:
    ftyp = b"ftyp" + brand + b"\x00\x00\x00\x00" + b"mif1" + brand
    return struct.pack(">I", 4 + len(ftyp)) + ftyp + b"\x00" * 64


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (encode(gradient(10, 10, "P"), "GIF"), "GIF"),
        (b"GIF87a" + b"\x00" * 20, "GIF"),
        (encode(gradient(10, 10), "BMP"), "BMP"),
        (encode(gradient(10, 10), "TIFF"), "TIFF"),
        (b"MM\x00*\x00\x00\x00\x08" + b"\x00" * 20, "TIFF"),  # big-endian, first IFD at 8
        (heif(b"heic"), "HEIC"),
        (heif(b"heix"), "HEIC"),
        (heif(b"mif1"), "HEIC"),
        (heif(b"avif"), "AVIF"),
        (b"%PDF-1.7\n" + b"\x00" * 20, "PDF"),
    ],
)
def test_other_formats_are_recognised_as_unsupported(data, name):
    header = read_image_header(data)
    assert header.format == name
    assert not header.supported
    assert header.pixels == 0
    assert header.content_type == "application/octet-stream"


@pytest.mark.parametrize(
    ("fmt", "content_type"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")]
)
def test_supported_headers_report_their_content_type_and_pixels(fmt, content_type):
    header = read_image_header(encode(gradient(40, 30), fmt))
    assert header.supported
    assert header.content_type == content_type
    assert header.pixels == 1200


# --- garbage, broken and short input ------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"hello, this is plain text and not an image at all",
        b"<html><body>not found</body></html>",
        b"\x00" * 100,
        b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2mp41" + b"\x00" * 40,  # an MP4 video
    ],
)
def test_garbage_is_unreadable(data):
    with pytest.raises(UnreadableImage):
        read_image_header(data)


def test_broken_headers_are_unreadable():
    with pytest.raises(UnreadableImage, match="segment marker"):
        read_image_header(b"\xff\xd8\xff\xe0\x00\x04AB\x00\x00" + b"\x00" * 40)
    with pytest.raises(UnreadableImage, match="before a frame header"):
        read_image_header(b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 40)
    with pytest.raises(UnreadableImage, match="segment length"):
        read_image_header(b"\xff\xd8\xff\xe0\x00\x01" + b"\x00" * 40)
    png = encode(gradient(20, 10), "PNG")
    with pytest.raises(UnreadableImage, match="IHDR"):
        read_image_header(png[:12] + b"JUNK" + png[16:])
    with pytest.raises(UnreadableImage, match="no dimensions"):
        read_image_header(png[:16] + struct.pack(">II", 0, 10) + png[24:])
    webp = encode(gradient(20, 10), "WEBP")
    with pytest.raises(UnreadableImage, match="unknown chunk"):
        read_image_header(webp[:12] + b"ABCD" + webp[16:])
    with pytest.raises(UnreadableImage, match="VP8 frame tag"):
        read_image_header(webp[:23] + b"\x00\x00\x00" + webp[26:])


@pytest.mark.parametrize(
    "data",
    [
        with_segments_after_soi(encode(gradient(64, 48), "JPEG"), (0xE1, 3000)),
        encode(gradient(64, 48), "PNG"),
        encode(gradient(64, 48), "WEBP"),
        encode(gradient(64, 48), "WEBP", lossless=True),
    ],
    ids=["jpeg", "png", "webp-vp8", "webp-vp8l"],
)
def test_every_short_prefix_asks_for_more_bytes_unless_it_is_the_whole_file(data):
    full = read_image_header(data)
    needed = next(n for n in range(len(data) + 1) if _answers(data[:n]))
    assert needed > 3
    for n in range(needed):
        with pytest.raises(NeedMoreBytes):
            read_image_header(data[:n])
        with pytest.raises(UnreadableImage):
            read_image_header(data[:n], complete=True)
    assert read_image_header(data[:needed]) == full


def _answers(data: bytes) -> bool:
    try:
        read_image_header(data)
    except NeedMoreBytes:
        return False
    return True


def test_empty_input():
    with pytest.raises(NeedMoreBytes):
        read_image_header(b"")
    with pytest.raises(UnreadableImage):
        read_image_header(b"", complete=True)


def test_truncated_jpeg_reports_truncation_when_complete():
    data = with_segments_after_soi(encode(gradient(64, 48), "JPEG"), (0xE1, 3000))
    with pytest.raises(UnreadableImage, match="truncated JPEG"):
        read_image_header(data[:2000], complete=True)


# --- what is named, and from how much --------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xd8\xff", "too short to be one"),  # SOI and half a marker: not yet a JPEG
        (b"\xff\xd8\xff\xe0\x00", "too short to be one"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "too short to be one"),
        (b"RIFF\x10\x00\x00\x00WEBP", "too short to be one"),
        (b"abc", "only 3 bytes"),
    ],
)
def test_a_signature_alone_names_no_format(data, reason):
    with pytest.raises(UnreadableImage, match=reason) as raised:
        read_image_header(data, complete=True)
    assert "not a JPEG, PNG or WEBP image" in str(raised.value)


def test_structure_after_the_signature_is_checked():
    png = encode(gradient(20, 10), "PNG")
    with pytest.raises(UnreadableImage, match="13-byte IHDR"):
        read_image_header(png[:8] + struct.pack(">I", 12) + png[12:])
    bad_depth = bytearray(png)
    bad_depth[24] = 3  # bit depth 3 exists for no colour type
    with pytest.raises(UnreadableImage, match="bit depth 3"):
        read_image_header(bytes(bad_depth))
    jpeg = encode(gradient(20, 10), "JPEG")
    with pytest.raises(UnreadableImage, match="invalid marker 0xFF05"):
        read_image_header(jpeg[:2] + b"\xff\x05\x00\x04ab" + jpeg[2:])
    webp = encode(gradient(20, 10), "WEBP")
    with pytest.raises(UnreadableImage, match="truncated WEBP"):
        read_image_header(webp[:-10], complete=True)  # the RIFF size promises more than the file holds
    with pytest.raises(UnreadableImage, match="bad VP8L signature"):
        lossless = encode(gradient(20, 10), "WEBP", lossless=True)
        read_image_header(lossless[:20] + b"\x2e" + lossless[21:])


# --- orientation and animation ------------------------------------------------------------------


def exif_with_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize(("orientation", "displayed"), [(1, (64, 48)), (3, (64, 48)), (6, (48, 64)), (8, (48, 64))])
def test_exif_orientation_gives_the_displayed_sides(fmt, orientation, displayed):
    data = encode(gradient(64, 48), fmt, exif=exif_with_orientation(orientation))
    header = read_image_header(data, complete=True)
    assert (header.width, header.height, header.orientation) == (64, 48, orientation)
    assert (header.display_width, header.display_height) == displayed
    # Pillow, which applies the tag as viewers do, agrees on what is shown.
    from PIL import ImageOps

    assert ImageOps.exif_transpose(Image.open(io.BytesIO(data))).size == displayed


def test_an_exif_segment_after_other_app_segments_is_still_read():
    data = with_segments_after_soi(encode(gradient(64, 48), "JPEG", exif=exif_with_orientation(5)), (0xE2, 5000))
    assert read_image_header(data).orientation == 5


def frames(count: int) -> list[Image.Image]:
    return [Image.new("RGB", (30, 20), (index * 60, 10, 10)) for index in range(count)]


@pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
def test_animations_are_recognised(fmt):
    first, *rest = frames(3)
    data = encode(first, fmt, save_all=True, append_images=rest)
    header = read_image_header(data, complete=True)
    assert header.animated and (header.format, header.width, header.height) == (fmt, 30, 20)


@pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
def test_still_images_saved_as_sequences_of_one_are_not_animated(fmt):
    [only] = frames(1)
    assert not read_image_header(encode(only, fmt, save_all=True), complete=True).animated
    assert not read_image_header(encode(Image.new("RGBA", (30, 20)), fmt), complete=True).animated


def test_an_anim_chunk_without_the_flag_still_counts():
    first, *rest = frames(2)
    data = bytearray(encode(first, "WEBP", save_all=True, append_images=rest))
    data[20] &= ~0x02  # clear VP8X's animation flag: the ANIM chunk that follows still tells
    assert read_image_header(bytes(data), complete=True).animated


# --- metadata: skipped by length, within a bound --------------------------------------------------


def png_with_chunk_before_idat(size: int) -> bytes:
    png = encode(gradient(20, 10), "PNG")
    chunk = struct.pack(">I", size) + b"zTXt" + b"\x00" * size + b"\x00\x00\x00\x00"
    return png[:33] + chunk + png[33:]


def test_large_chunks_are_skipped_by_their_length_not_read():
    data = png_with_chunk_before_idat(3_000_000)
    held = HeaderBytes(len(data))
    held.add(0, data[:4096])
    with pytest.raises(NeedMoreBytes) as needed:
        parse_image(held)
    assert needed.value.offset == 33 + 12 + 3_000_000  # straight to the next chunk header
    held.add(needed.value.offset, data[needed.value.offset : needed.value.offset + 4096])
    assert parse_image(held) == ImageHeader("PNG", 20, 10)


def test_metadata_past_the_bound_is_refused_as_such_not_as_corrupt():
    data = png_with_chunk_before_idat(METADATA_MAX_BYTES)
    with pytest.raises(MetadataTooLarge, match="metadata is larger than 16 MiB") as raised:
        read_image_header(data, complete=True)
    assert "corrupt" not in str(raised.value)
    assert read_image_header(png_with_chunk_before_idat(METADATA_MAX_BYTES - 100), complete=True).width == 20
