"""Image work: target sizes, the documented classical filters, transparency, orientation and tones."""

from __future__ import annotations

import base64
import io

import pytest
from emulator_helpers import call, data_uri, decoded, textured_image, upscale_task
from PIL import ExifTags, Image, ImageEnhance, ImageFilter, ImageMath, ImageStat

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


# --------------------------------------------------------------------------------------------
# What the user sees: orientation and tones


def jpeg_with_orientation(orientation: int) -> bytes:
    """A 400x200 JPEG stored with its top half red and bottom half blue, tagged with an EXIF orientation."""
    stored = Image.new("RGB", (400, 200), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 400, 100))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", quality=95, exif=exif)
    return buffer.getvalue()


def test_exif_orientation_is_applied_before_resizing():
    # Orientation 6: shown rotated 90 degrees clockwise, so the stored top ends up on the right.
    output = upscale_image(decoded(jpeg_with_orientation(6)), 1)
    assert output.width < output.height
    assert output.width / output.height == pytest.approx(200 / 400, rel=0.01)
    middle = output.height // 2
    assert output.getpixel((output.width * 3 // 4, middle))[0] > 200, "the red top is on the right"
    assert output.getpixel((output.width // 4, middle))[2] > 200, "the blue bottom is on the left"


def test_an_upright_output_carries_no_orientation_that_would_turn_it_again():
    output = decoded(encode_image(upscale_image(decoded(jpeg_with_orientation(8)), 1), "JPG", 90))
    assert output.getexif().get(ExifTags.Base.Orientation, 1) == 1
    assert output.width < output.height


def test_exif_orientation_is_honoured_through_the_api(emulator, client):
    task = upscale_task(data_uri(jpeg_with_orientation(6), "image/jpeg"), outputType="base64Data", outputFormat="PNG")
    [result] = call(client, emulator, [task]).json()["data"]
    output = decoded(base64.b64decode(result["imageBase64Data"]))
    assert output.width < output.height
    record = emulator.tasks[task["taskUUID"]]
    assert (record.output_width, record.output_height) == output.size


def grey_16_bit(size: tuple[int, int] = (256, 64), base: Image.Image | None = None) -> Image.Image:
    """A 16-bit grey ramp (or ``base`` in grey) from 0 to 65535, with values between the 8-bit steps."""
    coarse = (base.convert("L").resize(size) if base else Image.linear_gradient("L").resize(size)).convert("I")
    fine = Image.linear_gradient("L").rotate(90).resize(size).convert("I").point(lambda v: v / 16)
    return ImageMath.lambda_eval(lambda a: a["coarse"] * 257 + a["fine"], coarse=coarse, fine=fine).convert("I;16")


def mean_value(image: Image.Image) -> float:
    # ImageStat bins I images into 256 buckets; the real mean needs every value.
    values = list(image.convert("I").get_flattened_data())
    return sum(values) / len(values)


def png_bytes_of(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_16_bit_grey_png_comes_out_16_bit_with_its_tonal_range():
    source = decoded(png_bytes_of(grey_16_bit()))
    assert source.mode == "I;16"
    output = decoded(encode_image(upscale_image(source, 1), "PNG", 95))
    assert output.mode == "I;16"
    low, high = output.getextrema()
    assert low < 1_000 and high > 64_000, "no clipping to 8-bit black and white"
    assert ImageStat.Stat(output.convert("I")).mean[0] == pytest.approx(
        ImageStat.Stat(source.convert("I")).mean[0], rel=0.02
    )
    assert len(set(output.convert("I").get_flattened_data())) > 1_000, "16-bit precision, not 256 steps"


@pytest.mark.parametrize("output_format", ["JPG", "WEBP"])
def test_a_16_bit_grey_image_is_scaled_to_8_bits_where_the_format_has_no_16(output_format):
    source = grey_16_bit()
    output = decoded(encode_image(upscale_image(source, 1), output_format, 95))
    grey = output.convert("L")
    low, high = grey.getextrema()
    assert low < 8 and high > 247
    expected_mean = mean_value(source) / 257
    assert ImageStat.Stat(grey).mean[0] == pytest.approx(expected_mean, rel=0.03)


@pytest.mark.parametrize("mode", ["I;16B", "I"])
def test_other_16_bit_grey_modes_keep_their_range(mode):
    source = (
        grey_16_bit().convert("I")
        if mode == "I"
        else Image.frombytes("I;16B", (256, 1), b"".join(value.to_bytes(2, "big") for value in range(0, 65536, 257)))
    )
    output = upscale_image(source, 1)
    assert output.mode == "I;16"
    low, high = output.getextrema()
    assert low < 1_000 and high > 64_000


@pytest.mark.parametrize(("enhance_details", "realism"), [(True, False), (False, True)])
def test_the_filters_keep_16_bit_grey_16_bit(enhance_details, realism):
    source = grey_16_bit((160, 120), base=textured_image((160, 120)))
    plain = upscale_image(source, 1)
    filtered = upscale_image(source, 1, enhance_details=enhance_details, realism=realism)
    assert filtered.mode == "I;16"
    assert filtered.tobytes() != plain.tobytes(), "the filter did something"
    (low, high), (plain_low, plain_high) = filtered.getextrema(), plain.getextrema()
    assert low <= plain_low + 514 and high >= plain_high - 514, "the range is kept, not cut to 8 bits"
    assert len(set(filtered.convert("I").get_flattened_data())) > 1_000


@pytest.mark.parametrize("output_format", ["PNG", "JPG"])
def test_an_8_bit_grey_image_stays_grey_with_its_range(output_format):
    source = Image.linear_gradient("L").resize((300, 200))
    output = decoded(encode_image(upscale_image(source, 1), output_format, 95))
    assert output.mode == "L"
    low, high = output.getextrema()
    assert low < 8 and high > 247
    assert ImageStat.Stat(output).mean[0] == pytest.approx(ImageStat.Stat(source).mean[0], rel=0.02)


def test_grey_with_alpha_keeps_both_in_png_and_flattens_on_white_in_jpg():
    grey = Image.linear_gradient("L").resize((80, 60))
    alpha = Image.new("L", (80, 60), 255)
    alpha.paste(0, (0, 0, 80, 20))
    upscaled = upscale_image(Image.merge("LA", (grey, alpha)), 1)
    as_png = decoded(encode_image(upscaled, "PNG", 95))
    assert as_png.mode == "LA" and as_png.getpixel((5, 5))[1] == 0
    as_jpg = decoded(encode_image(upscaled, "JPG", 95))
    assert as_jpg.mode == "L" and as_jpg.getpixel((5, 5)) >= 245


def test_a_bilevel_image_comes_out_black_and_white_grey():
    source = Image.new("1", (100, 50), 0)
    source.paste(1, (50, 0, 100, 50))
    output = upscale_image(source, 1)
    assert output.mode == "L"
    assert output.getextrema() == (0, 255)
