"""Upscale options, overrides from S3 metadata and the task JSON (Runware's answers: test_runware_answers.py)."""

from __future__ import annotations

import json
import uuid

import pytest

from upscaler.models import (
    MODEL_ID,
    InvalidOption,
    UpscaleOptions,
    UpscaleTask,
    decoded_metadata_value,
    is_uuid4,
    parse_bool,
)

# --- UpscaleOptions -----------------------------------------------------------------------------


def test_defaults_match_the_models_documented_defaults():
    options = UpscaleOptions()
    assert options == UpscaleOptions(4, False, False, "JPG", 95)
    assert options.target_pixels == 4_000_000
    assert options.output_extension == "jpg"
    assert options.output_content_type == "image/jpeg"


@pytest.mark.parametrize(
    ("fmt", "ext", "ctype"), [("JPG", "jpg", "image/jpeg"), ("PNG", "png", "image/png"), ("WEBP", "webp", "image/webp")]
)
def test_output_formats(fmt, ext, ctype):
    options = UpscaleOptions(output_format=fmt)
    assert (options.output_extension, options.output_content_type) == (ext, ctype)


@pytest.mark.parametrize("value", [1, 8])
def test_target_megapixels_bounds_are_accepted(value):
    assert UpscaleOptions(target_megapixels=value).target_pixels == value * 1_000_000


@pytest.mark.parametrize("value", [0, 9, -1, 4.0, True, "4"])
def test_target_megapixels_outside_1_to_8_or_not_an_int_is_refused(value):
    with pytest.raises(InvalidOption) as caught:
        UpscaleOptions(target_megapixels=value)
    assert caught.value.name == "target-megapixels"


@pytest.mark.parametrize("value", [20, 99])
def test_output_quality_bounds_are_accepted(value):
    assert UpscaleOptions(output_quality=value).output_quality == value


@pytest.mark.parametrize("value", [19, 100, 0, 95.0, False])
def test_output_quality_outside_20_to_99_is_refused(value):
    with pytest.raises(InvalidOption) as caught:
        UpscaleOptions(output_quality=value)
    assert caught.value.name == "output-quality"


@pytest.mark.parametrize("value", ["GIF", "jpg", "JPEG", "", "TIFF"])
def test_output_format_must_be_one_of_the_models_values(value):
    with pytest.raises(InvalidOption) as caught:
        UpscaleOptions(output_format=value)
    assert caught.value.name == "output-format"


@pytest.mark.parametrize("field", ["enhance_details", "realism"])
@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_boolean_options_must_be_real_booleans(field, value):
    with pytest.raises(InvalidOption) as caught:
        UpscaleOptions(**{field: value})
    assert caught.value.name == field.replace("_", "-")


# --- overrides from S3 user metadata ------------------------------------------------------------


def test_no_override_keeps_the_defaults():
    defaults = UpscaleOptions()
    assert defaults.with_overrides({}) is defaults
    assert defaults.with_overrides({"author": "me", "x-other": "1"}) is defaults


def test_every_override_applies():
    options = UpscaleOptions().with_overrides(
        {
            "target-megapixels": " 8 ",
            "enhance-details": "TRUE",
            "realism": "yes",
            "output-format": "png",
            "output-quality": "80",
        }
    )
    assert options == UpscaleOptions(8, True, True, "PNG", 80)


@pytest.mark.parametrize(("raw", "expected"), [("jpeg", "JPG"), ("JPEG", "JPG"), ("jpg", "JPG"), (" webp ", "WEBP")])
def test_output_format_override_is_case_insensitive_and_accepts_jpeg(raw, expected):
    assert UpscaleOptions().with_overrides({"output-format": raw}).output_format == expected


@pytest.mark.parametrize(
    ("metadata", "name", "fragment"),
    [
        ({"target-megapixels": "9"}, "target-megapixels", "from 1 to 8"),
        ({"target-megapixels": "0"}, "target-megapixels", "from 1 to 8"),
        ({"target-megapixels": "abc"}, "target-megapixels", "not an integer"),
        ({"target-megapixels": "4.5"}, "target-megapixels", "not an integer"),
        ({"target-megapixels": ""}, "target-megapixels", "not an integer"),
        ({"output-quality": "10"}, "output-quality", "from 20 to 99"),
        ({"output-quality": "high"}, "output-quality", "not an integer"),
        ({"output-format": "GIF"}, "output-format", "JPG, PNG, WEBP"),
        ({"enhance-details": "maybe"}, "enhance-details", "not true or false"),
        ({"realism": "2"}, "realism", "not true or false"),
    ],
)
def test_invalid_overrides_name_the_offending_key(metadata, name, fragment):
    with pytest.raises(InvalidOption) as caught:
        UpscaleOptions().with_overrides(metadata)
    assert caught.value.name == name
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(f"{name}: ")


# --- overrides S3 returns as RFC 2047 encoded-words (non-ASCII metadata values) -------------------


@pytest.mark.parametrize(
    ("metadata", "field", "expected"),
    [
        ({"target-megapixels": "=?UTF-8?B?OA==?="}, "target_megapixels", 8),
        ({"output-quality": "=?UTF-8?Q?80?="}, "output_quality", 80),
        ({"output-format": "=?utf-8?b?cG5n?="}, "output_format", "PNG"),
        ({"realism": "=?UTF-8?Q?yes?="}, "realism", True),
        # A non-ASCII space around the value (why S3 encoded it) is whitespace once decoded.
        ({"target-megapixels": "=?UTF-8?B?4oCDNuKAgw==?="}, "target_megapixels", 6),
    ],
)
def test_an_encoded_word_override_is_decoded_then_validated(metadata, field, expected):
    assert getattr(UpscaleOptions().with_overrides(metadata), field) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("=?UTF-8?B?w6k=?=", "'é' is not an integer"),  # decoded, then refused as a value
        ("=?UTF-8?B?OQ==?=", "from 1 to 8"),  # 9
        ("=?UTF-8?B?!!!?=", "not a valid RFC 2047 encoded-word (bad base64)"),
        ("=?x-no-such-charset?B?OA==?=", "not a valid RFC 2047 encoded-word"),
        ("=?UTF-8?B?/w==?=", "not a valid RFC 2047 encoded-word"),  # not UTF-8
    ],
)
def test_an_encoded_word_override_that_is_invalid_is_refused_decoded(raw, fragment):
    with pytest.raises(InvalidOption) as caught:
        UpscaleOptions().with_overrides({"target-megapixels": raw})
    assert caught.value.name == "target-megapixels"
    assert fragment in str(caught.value)
    assert "=?UTF-8?B?w6k=?=" not in str(caught.value)


def test_a_value_without_encoded_words_is_used_as_it_is():
    assert decoded_metadata_value("output-format", " png =? ") == " png =? "


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("1", True), ("Yes", True), ("ON", True)])
def test_parse_bool_true(text, expected):
    assert parse_bool("x", text) is expected


@pytest.mark.parametrize("text", ["false", "0", "no", " Off "])
def test_parse_bool_false(text):
    assert parse_bool("x", text) is False


@pytest.mark.parametrize("text", ["", "maybe", "y", "t", "2"])
def test_parse_bool_refuses_anything_else(text):
    with pytest.raises(InvalidOption):
        parse_bool("flag", text)


# --- identifiers and the task -------------------------------------------------------------------


def test_is_uuid4():
    assert is_uuid4(str(uuid.uuid4()))
    assert not is_uuid4("{" + str(uuid.uuid4()) + "}")
    assert not is_uuid4("urn:uuid:" + str(uuid.uuid4()))
    assert not is_uuid4(str(uuid.uuid1()))
    assert not is_uuid4(uuid.uuid4().hex)
    assert not is_uuid4("not-a-uuid")
    assert not is_uuid4(uuid.uuid4())
    assert not is_uuid4(None)


def make_task(**changes) -> UpscaleTask:
    fields = {
        "task_uuid": "5f0c6d0e-2f4b-4c39-9d6e-0a1b2c3d4e5f",
        "image_url": "https://in.example/a.jpg?sig=1",
        "options": UpscaleOptions(6, True, False, "WEBP", 70),
        "upload_endpoint": "https://out.example/a.webp?sig=2",
        "webhook_url": "https://hooks.example/webhook?job=x&token=y",
        "result_ttl_seconds": 600,
    }
    return UpscaleTask(**{**fields, **changes})


def test_task_json_has_every_field_the_model_takes():
    body = make_task().to_json()
    assert body == {
        "taskType": "upscale",
        "taskUUID": "5f0c6d0e-2f4b-4c39-9d6e-0a1b2c3d4e5f",
        "model": MODEL_ID,
        "inputs": {"image": "https://in.example/a.jpg?sig=1"},
        "targetMegapixels": 6,
        "settings": {"enhanceDetails": True, "realism": False},
        "outputType": "URL",
        "outputFormat": "WEBP",
        "outputQuality": 70,
        "deliveryMethod": "async",
        "uploadEndpoint": "https://out.example/a.webp?sig=2",
        "webhookURL": "https://hooks.example/webhook?job=x&token=y",
        "includeCost": True,
        "ttl": 600,
    }
    assert MODEL_ID == "prunaai:p-image@upscale"
    assert json.loads(json.dumps([body])) == [body]


@pytest.mark.parametrize(
    "task_uuid",
    ["abc", "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "3f2b6c1e8a4d4e0f9b7a2c5d8e1f0a3b", ""],
    ids=["short", "version-1", "no-hyphens", "empty"],
)
def test_task_refuses_anything_but_a_uuid4(task_uuid):
    with pytest.raises(ValueError, match="taskUUID"):
        make_task(task_uuid=task_uuid)


def test_task_refuses_a_ttl_below_60_seconds():
    assert make_task(result_ttl_seconds=60).to_json()["ttl"] == 60
    with pytest.raises(ValueError, match="ttl"):
        make_task(result_ttl_seconds=59)
