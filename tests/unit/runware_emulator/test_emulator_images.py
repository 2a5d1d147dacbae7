"""Image work: target sizes, the documented classical filters, transparency."""

from __future__ import annotations

import pytest
from emulator_helpers import (
    decoded,
    textured_image,
)
from PIL import Image, ImageEnhance, ImageFilter, ImageStat

from local.runware_emulator import (
    encode_image,
    target_dimensions,
    upscale_image,
)

# --------------------------------------------------------------------------------------------
# Image work


@pytest.mark.parametrize(
    ("size", "megapixels"),
    [((400, 300), 2), ((1, 1), 8), ((3000, 10), 1), ((1000, 1000), 1), ((5000, 4000), 4), ((123, 457), 8)],
)
def test_target_dimensions_land_within_two_percent_and_keep_the_aspect(size, megapixels):
    width, height = target_dimensions(*size, megapixels)
    assert abs(width * height - megapixels * 1_000_000) <= 0.02 * megapixels * 1_000_000
    assert width / height == pytest.approx(size[0] / size[1], rel=0.02)


def test_targets_above_eight_megapixels_are_capped():
    assert target_dimensions(400, 300, 12) == target_dimensions(400, 300, 8)


def test_enhance_details_sharpens_and_realism_boosts_colour_and_contrast():
    source = textured_image((160, 120))
    plain = upscale_image(source, 1)
    sharpened = upscale_image(source, 1, enhance_details=True)
    realistic = upscale_image(source, 1, realism=True)
    assert plain.size == sharpened.size == realistic.size

    def edge_energy(image: Image.Image) -> float:
        return ImageStat.Stat(image.convert("L").filter(ImageFilter.FIND_EDGES)).mean[0]

    def saturation(image: Image.Image) -> float:
        return ImageStat.Stat(image.convert("HSV")).mean[1]

    def contrast(image: Image.Image) -> float:
        return ImageStat.Stat(image.convert("L")).stddev[0]

    assert edge_energy(sharpened) > edge_energy(plain)
    assert saturation(realistic) > saturation(plain)
    # On a grey image the colour boost changes nothing, so only the contrast step can show.
    grey = textured_image((160, 120)).convert("L").convert("RGB")
    assert contrast(upscale_image(grey, 1, realism=True)) > contrast(upscale_image(grey, 1))


def test_the_filters_are_exactly_the_documented_recipes():
    source = textured_image((160, 120))
    plain = upscale_image(source, 1)
    documented_sharpening = plain.filter(ImageFilter.UnsharpMask(radius=2, percent=120, threshold=3))
    documented_realism = ImageEnhance.Contrast(ImageEnhance.Color(plain).enhance(1.08)).enhance(1.04)
    assert upscale_image(source, 1, enhance_details=True).tobytes() == documented_sharpening.tobytes()
    assert upscale_image(source, 1, realism=True).tobytes() == documented_realism.tobytes()


def test_jpg_flattens_transparency_on_white_while_png_and_webp_keep_it():
    source = textured_image((80, 60), mode="RGBA")
    source.paste((0, 0, 0, 0), (0, 0, 80, 20))
    upscaled = upscale_image(source, 1)
    as_jpg = decoded(encode_image(upscaled, "JPG", 95))
    assert as_jpg.mode == "RGB"
    assert min(as_jpg.getpixel((5, 5))) >= 245
    for output_format in ("PNG", "WEBP"):
        kept = decoded(encode_image(upscaled, output_format, 95))
        assert kept.mode == "RGBA"
        assert kept.getpixel((5, 5))[3] == 0
