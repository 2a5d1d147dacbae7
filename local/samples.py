"""Sample images the demo drops into the inbox: two real photographs and a few made here.

Varied on purpose: photographs (CC0, in `local/sample_photos/` with their sources and licences in
its LICENSE.md), a PNG with transparency (kept as PNG by the graphics/ folder preset), a tiny WEBP, a key with
spaces, '+' and unicode, and inputs that must be refused with a clear reason.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

PHOTOS = Path(__file__).resolve().parent / "sample_photos"

# The demo stack's folder presets (the UploadPresets parameter): what is dropped in graphics/ stays a PNG.
DEMO_PRESETS = {"graphics/": {"target-megapixels": 2, "output-format": "PNG"}}


@dataclass(frozen=True)
class Sample:
    name: str  # the key below the inbox prefix
    body: bytes
    metadata: dict[str, str] = field(default_factory=dict)
    expected_status: str = "COMPLETED"
    note: str = ""
    detail_focus: tuple[float, float] = (0.5, 0.5)  # where the demo page's close-up looks, as shares of the sides


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(name: str) -> bytes:
    """A photograph from local/sample_photos/, as the file's own bytes."""
    return (PHOTOS / name).read_bytes()


def _resized(body: bytes, width: int, height: int) -> Image.Image:
    with Image.open(io.BytesIO(body)) as image:
        return image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)


def logo_with_alpha(size: int = 320) -> Image.Image:
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((20, 20, size - 20, size - 20), radius=48, fill=(25, 110, 220, 235))
    draw.ellipse((size * 0.3, size * 0.3, size * 0.7, size * 0.7), fill=(255, 255, 255, 255))
    draw.polygon(
        [(size * 0.45, size * 0.38), (size * 0.45, size * 0.62), (size * 0.64, size * 0.5)], fill=(25, 110, 220, 255)
    )
    return image


def samples() -> list[Sample]:
    coffee, cat = photo("coffee.jpg"), photo("chelsea.jpg")
    return [
        Sample(
            "photos/coffee.jpg",
            coffee,
            note="photograph (CC0), defaults: 4 MP JPG",
            detail_focus=(0.62, 0.66),
        ),
        Sample(
            "graphics/logo.png",
            _encode(logo_with_alpha(), "PNG"),
            note="PNG with alpha, kept PNG by the graphics/ preset",
            detail_focus=(0.3, 0.3),
        ),
        Sample(
            "tiny/icon.webp",
            _encode(_resized(cat, 64, 43), "WEBP", quality=85),
            {"target-megapixels": "1", "output-format": "WEBP", "enhance-details": "true"},
            note="tiny WEBP to 1 MP",
            detail_focus=(0.38, 0.4),
        ),
        Sample(
            "My Photos/été + plus ☃.jpg",
            cat,
            {"target-megapixels": "2", "realism": "true"},
            note="photograph (CC0); key with spaces, '+' and unicode",
            detail_focus=(0.38, 0.4),
        ),
        Sample(
            "docs/notes.jpg",
            b"These are meeting notes saved with a .jpg name by mistake.\n",
            expected_status="REJECTED",
            note="not an image",
        ),
        Sample(
            "photos/already-large.png",
            _encode(Image.new("RGB", (2600, 1700), (200, 200, 190)), "PNG"),
            expected_status="REJECTED",
            note="already above the 4 MP target",
        ),
        Sample(
            "photos/bad-override.jpg",
            _encode(_resized(coffee, 320, 213), "JPEG"),
            {"target-megapixels": "12"},
            expected_status="REJECTED",
            note="override outside 1..8",
        ),
        Sample("empty/zero-bytes.png", b"", expected_status="REJECTED", note="empty object"),
    ]
