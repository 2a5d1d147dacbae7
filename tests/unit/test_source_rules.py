"""upscaler.source_rules: when an event's version is no longer current, and why an image is refused."""

from __future__ import annotations

from upscaler.image_header import ImageHeader
from upscaler.models import UpscaleOptions
from upscaler.source_events import SourceObject
from upscaler.source_rules import Rejection, content_problem, input_fields, replaced_by
from upscaler.storage import ObjectInfo


def source(version_id: str | None = "v1", etag: str = "e1") -> SourceObject:
    return SourceObject("inbox", "inbox/a.jpg", version_id, etag, 10, "01", "2026-05-14T10:00:00.000Z")


def current(version_id: str | None = "v1", etag: str = "e1") -> ObjectInfo:
    return ObjectInfo("inbox", "inbox/a.jpg", version_id, 10, etag, "image/jpeg")


# --- replaced_by --------------------------------------------------------------------------------


def test_the_same_version_is_current_even_if_the_etag_differs():
    assert replaced_by(source("v1", "e1"), current("v1", "e2")) is None


def test_another_current_version_names_both_versions():
    reason = replaced_by(source("v1"), current("v2"))
    assert reason is not None
    assert "this version (v1) is no longer the object's current version (v2)" in reason


def test_without_version_ids_the_etag_decides():
    assert replaced_by(source(None, "e1"), current(None, "e1")) is None
    reason = replaced_by(source(None, "e1"), current(None, "e2"))
    assert reason is not None and "its ETag changed" in reason
    # A version id on one side only is no comparison: the ETag still is.
    assert replaced_by(source("v1", "e1"), current(None, "e1")) is None
    assert replaced_by(source("v1", "e1"), current(None, "e2")) is not None


def test_an_etag_missing_on_either_side_proves_nothing():
    assert replaced_by(source(None, ""), current(None, "e2")) is None
    assert replaced_by(source(None, "e1"), current(None, "")) is None


# --- input_fields and content_problem -----------------------------------------------------------


def test_input_fields_record_the_displayed_sides():
    assert input_fields(ImageHeader("JPEG", 640, 480, orientation=6)) == {
        "input_format": "JPEG",
        "input_width": 480,
        "input_height": 640,
        "input_orientation": 6,
    }
    assert input_fields(ImageHeader("PNG", 640, 480))["input_width"] == 640


def test_a_small_still_image_has_no_problem():
    assert content_problem(ImageHeader("PNG", 640, 480), UpscaleOptions()) is None


def test_an_unsupported_format_is_refused_knowing_only_the_format():
    assert content_problem(ImageHeader("HEIC"), UpscaleOptions()) == Rejection(
        "unsupportedFormat", "HEIC is not supported; use JPEG, PNG or WEBP", {"input_format": "HEIC"}
    )


def test_an_animated_image_is_refused_with_what_was_learnt():
    rejection = content_problem(ImageHeader("WEBP", 300, 200, animated=True), UpscaleOptions(target_megapixels=2))
    assert rejection is not None and rejection.code == "animatedImage"
    assert rejection.message.startswith("the WEBP is animated")
    assert rejection.known == {
        "input_format": "WEBP",
        "input_width": 300,
        "input_height": 200,
        "input_orientation": 1,
        "target_megapixels": 2,
    }


def test_an_image_at_the_target_is_refused_and_one_pixel_row_below_is_not():
    rejection = content_problem(ImageHeader("PNG", 2000, 2000), UpscaleOptions(target_megapixels=4))
    assert rejection is not None and rejection.code == "alreadyAtTarget"
    assert rejection.message == "the image is 2000x2000 (4.00 MP), already at or above the target of 4 MP"
    assert content_problem(ImageHeader("PNG", 2000, 1999), UpscaleOptions(target_megapixels=4)) is None


def test_a_geometry_problem_is_a_rejection_that_keeps_the_output_format():
    rejection = content_problem(ImageHeader("JPEG", 20000, 8), UpscaleOptions(output_format="WEBP"))
    assert rejection is not None and rejection.code == "extremeAspectRatio"
    assert rejection.known["output_format"] == "WEBP"
    assert (rejection.known["input_width"], rejection.known["input_height"]) == (20000, 8)
