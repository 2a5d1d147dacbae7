"""upscaler.output_geometry: the output's sides, and why an input cannot be upscaled to them."""

from __future__ import annotations

import pytest

from upscaler.models import UpscaleOptions
from upscaler.output_geometry import MAX_ASPECT_RATIO, MAX_OUTPUT_SIDE, geometry_problem, output_size


def test_the_output_keeps_the_aspect_ratio_at_the_target_area():
    assert output_size(1000, 500, 4) == (2828, 1414)
    assert output_size(640, 480, 1) == (1155, 866)


def test_the_target_is_capped_at_8_mp_and_no_side_is_below_one_pixel():
    assert output_size(1000, 1000, 12) == output_size(1000, 1000, 8) == (2828, 2828)
    assert output_size(1, 4_000_000, 1) == (1, 2_000_000)


def test_an_aspect_ratio_at_the_limit_is_sent_and_past_it_is_refused_whatever_the_options():
    assert geometry_problem(MAX_ASPECT_RATIO * 100, 100, UpscaleOptions()) is None
    for width, height in ((MAX_ASPECT_RATIO * 100 + 1, 100), (100, MAX_ASPECT_RATIO * 100 + 1)):
        problem = geometry_problem(width, height, UpscaleOptions(output_format="PNG"))
        assert problem is not None and problem.code == "extremeAspectRatio"
        assert f"{width}x{height}, an aspect ratio of 64.0:1" in problem.message
        assert f"crop it to {MAX_ASPECT_RATIO}:1 or less" in problem.message


def test_an_output_too_wide_for_webp_names_the_formats_and_the_largest_target_that_fit():
    problem = geometry_problem(6400, 100, UpscaleOptions(target_megapixels=8, output_format="WEBP"))
    assert problem is not None and problem.code == "outputTooLarge"
    assert problem.message == (
        "the output would be about 22627x354 px at 8 MP, more than the 16,383 px per side that WEBP allows; "
        "set x-amz-meta-output-format: JPG or PNG, or x-amz-meta-target-megapixels: 4 or less"
    )
    assert max(output_size(6400, 100, 4)) <= MAX_OUTPUT_SIDE["WEBP"] < max(output_size(6400, 100, 5))


def test_when_only_one_megapixel_fits_the_advice_says_just_1():
    options = UpscaleOptions(target_megapixels=8, output_format="WEBP")
    problem = geometry_problem(20000, 100, options, max_aspect_ratio=1000)
    assert problem is not None
    assert problem.message.endswith("set x-amz-meta-output-format: JPG or PNG, or x-amz-meta-target-megapixels: 1")


# Moved from test_source_validation: the advice when no option helps.
def test_geometry_with_no_override_that_helps():
    problem = geometry_problem(20000, 8, UpscaleOptions(), max_aspect_ratio=10_000)
    assert problem is not None and problem.code == "outputTooLarge"
    assert "65,500 px per side that JPEG allows" in problem.message
    assert "x-amz-meta-output-format: PNG" in problem.message
    assert geometry_problem(1000, 1000, UpscaleOptions(target_megapixels=8)) is None


@pytest.mark.parametrize("output_format", ["JPG", "PNG", "WEBP"])
def test_an_ordinary_photo_fits_every_format(output_format):
    assert geometry_problem(4000, 3000, UpscaleOptions(target_megapixels=8, output_format=output_format)) is None
