"""The smoke test's generated sample (upscale_cli/sample_image.py): a PNG made with the standard library alone."""

from __future__ import annotations

import io

from PIL import Image

from upscale_cli.sample_image import gradient_png
from upscaler.image_header import read_image_header


def test_the_smoke_sample_is_a_valid_png_that_pillow_decodes():
    body = gradient_png(64, 48)
    assert read_image_header(body, complete=True).format == "PNG"
    with Image.open(io.BytesIO(body)) as image:
        image.load()
        assert (image.format, image.size, image.mode) == ("PNG", (64, 48), "RGB")
        assert len(image.getcolors(maxcolors=100_000) or []) > 10, "not a flat colour"


def test_the_sample_is_the_same_image_every_time_and_its_size_is_what_was_asked():
    assert gradient_png(32, 16) == gradient_png(32, 16)
    header = read_image_header(gradient_png(), complete=True)
    assert (header.width, header.height) == (640, 480)
    with Image.open(io.BytesIO(gradient_png(7, 3))) as image:
        assert image.size == (7, 3)
    # The stripes shift the red and blue channels every 24 pixels along the diagonal.
    with Image.open(io.BytesIO(gradient_png(50, 1))) as image:
        assert image.getpixel((0, 0))[2] == 128
        assert image.getpixel((24, 0))[2] == 188
