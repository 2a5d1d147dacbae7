"""A generated PNG for the smoke test, made with the standard library alone (no imaging package)."""

from __future__ import annotations

import struct
import zlib


def gradient_png(width: int = 640, height: int = 480) -> bytes:
    """An RGB gradient with a diagonal stripe pattern: cheap to make, not trivially uniform."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type None for each scanline
        for x in range(width):
            stripe = 60 if (x + y) // 24 % 2 else 0
            rows += bytes(((x * 255 // width + stripe) % 256, (y * 255 // height) % 256, (128 + stripe) % 256))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 6))
        + chunk(b"IEND", b"")
    )
