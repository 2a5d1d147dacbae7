"""Benchmark inputs: images of an exact size in bytes, and the S3 events Lambda would deliver for them."""

from __future__ import annotations

import io
import math
import random
import struct
import zlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BYTES_PER_PIXEL = 8  # RGBA at 16 bits per channel


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def noise_png(approximate_bytes: int, seed: int = 1) -> tuple[bytes, int]:
    """A square RGBA PNG, 16 bits per channel, of random pixels stored uncompressed; and its side.

    Noise cannot be compressed, so the file is as large as its pixels: a 50 MB file is a 6.25 MP
    image, under the 8 MP most a job may ask for. Both the header and the pixels are real: the
    pipeline validates it and the emulator decodes and resizes it.
    """
    side = max(1, math.isqrt(approximate_bytes // BYTES_PER_PIXEL))
    rng = random.Random(seed)
    row_bytes = side * BYTES_PER_PIXEL
    raw = b"".join(b"\x00" + rng.randbytes(row_bytes) for _ in range(side))  # filter type 0 per row
    header = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)
    body = PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 0)) + _chunk(b"IEND", b"")
    return body, side


def photo_jpeg(width: int, height: int, seed: int = 2, quality: int = 90) -> bytes:
    """A JPEG with the statistics of a detailed photo: smooth gradients under fine grain."""
    from PIL import Image, ImageFilter

    rng = random.Random(seed)
    grain = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3)).filter(
        ImageFilter.GaussianBlur(1.2)
    )
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    image = Image.blend(gradient, grain, 0.55)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def s3_record(bucket: str, key: str, size: int, etag: str, version_id: str | None, sequencer: int) -> dict[str, Any]:
    """One ObjectCreated:Put record, shaped as S3 sends it (key URL-encoded with '+' for spaces)."""
    obj: dict[str, Any] = {
        "key": quote_plus(key, safe="/"),
        "size": size,
        "eTag": etag.strip('"'),
        "sequencer": f"{sequencer:016X}",
    }
    if version_id:
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "benchmark",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
    }


def s3_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}
