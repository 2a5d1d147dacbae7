"""upscaler.presets: a presets document read whole and refused whole; the longest prefix wins; metadata
still overrides; and the settings refuse a bad document when a function starts."""

from __future__ import annotations

import json

import pytest

from upscaler.models import UpscaleOptions
from upscaler.presets import NO_PRESETS, PresetsError, parse_presets
from upscaler.settings import ConfigurationError, Settings

DOCUMENT = {
    "print/": {"target-megapixels": 8, "output-format": "PNG"},
    "print/proofs/": {"target-megapixels": 2},
    "web/": {"target-megapixels": 2, "output-format": "WEBP", "output-quality": 80, "enhance-details": True},
}
DEFAULTS = UpscaleOptions()
REQUIRED = {
    "JOBS_TABLE": "jobs",
    "OUTPUT_BUCKET": "out-bucket",
    "RUNWARE_API_KEY_SECRET": "runware-key-secret",
    "WEBHOOK_TOKEN_SECRET": "webhook-key-secret",
}


def options_of(key: str, metadata: dict[str, str] | None = None) -> tuple[UpscaleOptions, str | None]:
    return parse_presets(json.dumps(DOCUMENT)).options_for(key, "inbox/", DEFAULTS, metadata or {})


@pytest.mark.parametrize("document", ["", "  ", "{}"])
def test_an_empty_document_is_no_presets(document):
    assert parse_presets(document) == NO_PRESETS
    assert options_of("inbox/a.jpg")[1] is None


def test_a_folder_gets_its_preset_over_the_defaults():
    options, preset = options_of("inbox/web/banner.jpg")
    assert preset == "web/"
    assert options == UpscaleOptions(2, True, False, "WEBP", 80)


def test_the_longest_matching_prefix_wins():
    options, preset = options_of("inbox/print/proofs/page 1.jpg")
    assert preset == "print/proofs/"
    assert (options.target_megapixels, options.output_format) == (2, "JPG")
    assert options_of("inbox/print/poster.jpg")[0].target_megapixels == 8


def test_a_key_outside_every_preset_gets_the_defaults():
    assert options_of("inbox/printing/a.jpg") == (DEFAULTS, None)
    assert options_of("inbox/photos/print/a.jpg") == (DEFAULTS, None)  # prefixes start below the inbox prefix


def test_metadata_still_overrides_a_preset():
    options, preset = options_of("inbox/print/poster.jpg", {"output-format": "jpeg", "output-quality": "70"})
    assert preset == "print/"
    assert (options.target_megapixels, options.output_format, options.output_quality) == (8, "JPG", 70)


@pytest.mark.parametrize(
    ("document", "said"),
    [
        ({"print/": {"target-megapixel": 8}}, "unknown option 'target-megapixel'; did you mean 'target-megapixels'?"),
        ({"print/": {"colour": "red"}}, "unknown option 'colour'; the options are target-megapixels"),
        ({"print/": {"target-megapixels": 9}}, "target-megapixels: must be an integer from 1 to 8"),
        ({"web/": {"output-quality": 10}}, "output-quality: must be an integer from 20 to 99"),
        ({"web/": {"output-format": "GIF"}}, "output-format: must be one of JPG, PNG, WEBP"),
        ({"web/": {"target-megapixels": 2.5}}, "target-megapixels: 2.5 is not a valid value"),
        ({"web/": {"target-megapixels": True}}, "target-megapixels: true is not a valid value"),
        ({"web/": {"realism": "maybe"}}, "realism: 'maybe' is not true or false"),
        ({"web/": {}}, "preset 'web/': options must be a non-empty JSON object"),
        ({"": {"realism": True}}, 'preset "": an empty prefix is every object'),
    ],
)
def test_a_bad_preset_is_refused_with_what_is_wrong(document, said):
    with pytest.raises(PresetsError) as refused:
        parse_presets(json.dumps(document))
    assert said in str(refused.value)


def test_every_problem_is_named_at_once():
    document = {"print/": {"target-megapixels": 12, "outputformat": "PNG"}, "web/": {"output-quality": 5}}
    with pytest.raises(PresetsError) as refused:
        parse_presets(json.dumps(document))
    message = str(refused.value)
    assert message.startswith("the presets document has 3 problems: ")
    assert "did you mean 'output-format'?" in message and "from 1 to 8" in message and "from 20 to 99" in message


@pytest.mark.parametrize(("document", "said"), [("{print/: 8}", "not JSON"), ('["print/"]', "must be a JSON object")])
def test_a_document_that_is_not_a_json_object_is_refused(document, said):
    with pytest.raises(PresetsError, match=said):
        parse_presets(document)


def test_a_prefix_that_repeats_the_inbox_prefix_is_refused_since_it_would_never_apply():
    with pytest.raises(PresetsError, match="write 'print/' for keys under 'inbox/print/'"):
        parse_presets('{"inbox/print/": {"target-megapixels": 8}}', inbox_prefix="inbox/")
    assert parse_presets('{"inbox/print/": {"target-megapixels": 8}}', inbox_prefix="")


def test_settings_read_the_presets_variable():
    settings = Settings.from_environment({**REQUIRED, "UPSCALE_PRESETS": json.dumps(DOCUMENT)})
    options, preset = settings.options_for("inbox/web/a.png", {})
    assert (options.output_format, preset) == ("WEBP", "web/")
    assert Settings.from_environment(REQUIRED).presets == NO_PRESETS


@pytest.mark.parametrize(
    ("document", "said"),
    [
        ('{"print/": {"target-megapixels": 0}}', "target-megapixels: must be an integer from 1 to 8"),
        ('{"inbox/print/": {"realism": true}}', "prefixes are below the inbox prefix 'inbox/'"),
    ],
)
def test_a_function_refuses_to_start_with_a_bad_document(document, said):
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_environment({**REQUIRED, "UPSCALE_PRESETS": document})
    assert "UPSCALE_PRESETS" in str(refused.value) and said in str(refused.value)
