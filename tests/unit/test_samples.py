# ruff: noqa: F811 (pytest fixtures imported from test_submission and named as arguments)
"""local.samples: the demo's sample uploads, each of which the submit path treats as it says."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from urllib.parse import quote_plus

from PIL import Image

from local.samples import DEMO_PRESETS, PHOTOS, logo_with_alpha, photo, samples
from tests.unit.queue_events import queued
from tests.unit.test_submission import (  # noqa: F401 (fixtures used by name)
    make_submitter,
    runware,
    sleeps,
    submit,
    upload,
)
from upscaler.presets import parse_presets

EXPECTED_CODES = {
    "docs/notes.jpg": "notAnImage",
    "photos/already-large.png": "alreadyAtTarget",
    "photos/bad-override.jpg": "invalidOverride",
    "empty/zero-bytes.png": "emptyObject",
}


def test_the_logo_has_the_size_and_transparency_asked_for():
    logo = logo_with_alpha(64)
    assert (logo.size, logo.mode) == ((64, 64), "RGBA")
    assert logo.getchannel("A").getextrema()[0] < 255  # some of it is transparent


def test_every_photograph_is_a_jpeg_whose_source_and_licence_are_noted_beside_it():
    licence = (PHOTOS / "LICENSE.md").read_text(encoding="utf-8")
    files = sorted(path.name for path in PHOTOS.glob("*.jpg"))
    assert files, "the demo has photographs"
    for name in files:
        with Image.open(io.BytesIO(photo(name))) as image:
            assert image.format == "JPEG" and image.width * image.height < 1_000_000, name
            assert len(image.getcolors(image.width * image.height) or []) > 10_000, name  # a photograph, not a drawing
        row = next((line for line in licence.splitlines() if line.startswith(f"| `{name}` |")), "")
        assert "CC0" in row or "public domain" in row.lower(), f"{name}: no licence noted in LICENSE.md"


def test_the_upscaled_samples_include_the_photographs():
    bodies = {sample.body for sample in samples() if sample.expected_status == "COMPLETED"}
    assert {photo(path.name) for path in PHOTOS.glob("*.jpg")} <= bodies


def test_names_are_unique_and_every_sample_says_why_it_is_there():
    names = [sample.name for sample in samples()]
    assert len(set(names)) == len(names)
    assert all(sample.note for sample in samples())


def test_each_sample_is_submitted_or_rejected_as_it_expects(aws, make_submitter, runware):
    # With the demo stack's presets, as `python -m local demo` starts it.
    presets = parse_presets(json.dumps(DEMO_PRESETS), inbox_prefix=aws.settings.inbox_prefix)
    submitter = make_submitter(replace(aws.settings, presets=presets))
    uploads = {sample.name: sample for sample in samples()}
    records = [upload(aws, f"inbox/{sample.name}", sample.body, sample.metadata) for sample in uploads.values()]
    assert records[3]["s3"]["object"]["key"] == "inbox/" + quote_plus("My Photos/été + plus ☃.jpg", safe="/")
    outcomes = {outcome.source_key.removeprefix("inbox/"): outcome for outcome in submit(submitter, queued(*records))}
    assert set(outcomes) == set(uploads)
    for name, sample in uploads.items():
        outcome = outcomes[name]
        if sample.expected_status == "COMPLETED":
            assert outcome.status == "SUBMITTED", (name, outcome)
        else:
            assert (outcome.status, outcome.code) == (sample.expected_status, EXPECTED_CODES[name]), (name, outcome)
    sent = {task["taskUUID"]: task for task in runware.tasks}
    logo = sent[outcomes["graphics/logo.png"].job_id]
    assert not uploads["graphics/logo.png"].metadata  # its options come from its folder's preset alone
    assert (logo["targetMegapixels"], logo["outputFormat"]) == (2, "PNG")
    assert submitter.jobs.get(logo["taskUUID"]).preset == "graphics/"
    icon = sent[outcomes["tiny/icon.webp"].job_id]
    assert (icon["targetMegapixels"], icon["outputFormat"], icon["settings"]["enhanceDetails"]) == (1, "WEBP", True)
