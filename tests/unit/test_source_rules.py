"""upscaler.source_rules: when an event's version is no longer current, and why an image is refused."""

from __future__ import annotations

import pytest

from upscaler.image_header import ImageHeader
from upscaler.models import UpscaleOptions
from upscaler.source_events import SourceObject
from upscaler.source_rules import Rejection, content_problem, input_fields, replaced_by, unreadable_source
from upscaler.storage import CustomerKeyEncrypted, KmsKeyRefused, ObjectArchived, ObjectInfo, ReadDenied


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


# --- unreadable_source: what S3's refusal means, and what to do -------------------------------

KMS_KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
WHERE = ("inbox", "inbox/my photo.jpg")


@pytest.mark.parametrize(
    ("storage_class", "tier", "named", "request_fragment"),
    [
        ("GLACIER", "", "S3 Glacier Flexible Retrieval (GLACIER)", '"Days":1,"GlacierJobParameters"'),
        ("DEEP_ARCHIVE", "", "S3 Glacier Deep Archive (DEEP_ARCHIVE)", '"Days":1,"GlacierJobParameters"'),
        (
            "INTELLIGENT_TIERING",
            "ARCHIVE_ACCESS",
            "S3 Intelligent-Tiering (INTELLIGENT_TIERING, Archive Access tier)",
            "--restore-request '{}'",
        ),
    ],
)
def test_an_archived_source_names_its_class_and_the_restore_command(storage_class, tier, named, request_fragment):
    rejection = unreadable_source(ObjectArchived(*WHERE, "InvalidObjectState", "not valid", storage_class, tier))
    assert rejection.code == "sourceArchived"
    assert f"archived in {named}" in rejection.message
    assert "aws s3api restore-object --bucket inbox --key 'inbox/my photo.jpg'" in rejection.message
    assert request_fragment in rejection.message
    assert "aws s3 cp s3://inbox/inbox/my photo.jpg s3://inbox/inbox/my photo.jpg --storage-class STANDARD" in (
        rejection.message
    )
    assert rejection.message.endswith("(S3: InvalidObjectState: not valid)")


def test_a_kms_key_not_granted_names_the_key_and_the_parameter():
    rejection = unreadable_source(KmsKeyRefused(*WHERE, "AccessDenied", "not authorized", KMS_KEY))
    assert rejection.code == "sourceKmsKeyNotGranted"
    assert f"encrypted with the KMS key {KMS_KEY} (SSE-KMS)" in rejection.message
    assert "kms:Decrypt" in rejection.message and "SourceKmsKeyArns parameter" in rejection.message


def test_a_kms_key_of_unknown_id_is_still_a_grant_to_make():
    rejection = unreadable_source(KmsKeyRefused(*WHERE, "AccessDenied", "", ""))
    assert rejection.code == "sourceKmsKeyNotGranted"
    assert "encrypted with its KMS key (SSE-KMS)" in rejection.message
    assert rejection.message.endswith("(S3: AccessDenied)")


@pytest.mark.parametrize("code", ["KMS.DisabledException", "KMS.KMSInvalidStateException", "KMS.NotFoundException"])
def test_a_disabled_or_deleted_kms_key_is_unusable_not_ungranted(code):
    rejection = unreadable_source(KmsKeyRefused(*WHERE, code, "key problem", KMS_KEY))
    assert rejection.code == "sourceKmsKeyUnusable"
    assert "disabled, pending deletion or gone" in rejection.message and KMS_KEY in rejection.message


def test_a_customer_provided_key_is_not_supported():
    rejection = unreadable_source(CustomerKeyEncrypted(*WHERE, "InvalidRequest", "stored using SSE"))
    assert rejection.code == "sourceCustomerKey"
    assert "customer-provided key (SSE-C), which is not supported" in rejection.message


def test_access_denied_names_the_missing_permission():
    rejection = unreadable_source(ReadDenied(*WHERE, "AccessDenied", "Access Denied"))
    assert rejection.code == "sourceAccessDenied"
    assert "needs s3:GetObject on it" in rejection.message
    assert "s3://inbox/inbox/my photo.jpg" in rejection.message
