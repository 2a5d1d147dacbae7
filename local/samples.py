"""Sample images the demo drops into the inbox, made here so the repository carries no binaries.

Varied on purpose: a photo-like JPEG, a PNG with transparency (kept as PNG by an override), a tiny
WEBP, a key with spaces, '+' and unicode, and inputs that must be refused with a clear reason.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFilter


@dataclass(frozen=True)
class Sample:
    name: str  # the key below the inbox prefix
    body: bytes
    metadata: dict[str, str] = field(default_factory=dict)
    expected_status: str = "COMPLETED"
    note: str = ""


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo_like(width: int = 640, height: int = 427, seed: int = 7) -> Image.Image:
    """A sky-to-ground gradient with soft shapes and grain: smooth areas and edges, like a photo."""
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height))
    pixels = image.load()
    assert pixels is not None
    for y in range(height):
        t = y / height
        for x in range(width):
            shade = 0.08 * math.sin(x / 37.0)
            sky = (int(90 + 120 * t), int(140 + 80 * t + 20 * shade), int(230 - 90 * t))
            ground = (int(60 + 40 * t), int(110 - 30 * t), int(50 + 10 * shade))
            pixels[x, y] = sky if y < height * 0.62 + 18 * math.sin(x / 53.0) else ground
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.72, height * 0.08, width * 0.86, height * 0.29), fill=(255, 236, 170))
    for _ in range(14):
        x, y = rng.uniform(0, width), rng.uniform(height * 0.55, height)
        r = rng.uniform(8, 30)
        draw.ellipse((x - r, y - r * 1.6, x + r, y + r), fill=(30, rng.randint(80, 130), 40))
    image = image.filter(ImageFilter.GaussianBlur(0.8))
    grain = Image.effect_noise((width, height), 12).convert("RGB")
    return Image.blend(image, grain, 0.06)


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
    photo = photo_like()
    return [
        Sample("photos/countryside.jpg", _encode(photo, "JPEG", quality=90), note="photo-like JPEG, defaults"),
        Sample(
            "graphics/logo.png",
            _encode(logo_with_alpha(), "PNG"),
            {"target-megapixels": "2", "output-format": "PNG"},
            note="PNG with alpha, kept PNG",
        ),
        Sample(
            "tiny/icon.webp",
            _encode(photo.resize((64, 43)), "WEBP", quality=85),
            {"target-megapixels": "1", "output-format": "WEBP", "enhance-details": "true"},
            note="tiny WEBP to 1 MP",
        ),
        Sample(
            "My Photos/été + plus ☃.jpg",
            _encode(photo.resize((480, 320)), "JPEG", quality=85),
            {"target-megapixels": "2", "realism": "true"},
            note="key with spaces, '+' and unicode",
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
            _encode(photo.resize((320, 213)), "JPEG"),
            {"target-megapixels": "12"},
            expected_status="REJECTED",
            note="override outside 1..8",
        ),
        Sample("empty/zero-bytes.png", b"", expected_status="REJECTED", note="empty object"),
    ]
