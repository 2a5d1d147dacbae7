# ruff: noqa: F811 (pytest fixtures imported from test_submission and named as arguments)
"""local.samples: the demo's sample uploads, each of which the submit path treats as it says."""

from __future__ import annotations

from urllib.parse import quote_plus

from local.samples import logo_with_alpha, photo_like, samples
from tests.unit.queue_events import queued
from tests.unit.test_submission import (  # noqa: F401 (fixtures used by name)
    make_submitter,
    runware,
    sleeps,
    submit,
    submitter,
    upload,
)

EXPECTED_CODES = {
    "docs/notes.jpg": "notAnImage",
    "photos/already-large.png": "alreadyAtTarget",
    "photos/bad-override.jpg": "invalidOverride",
    "empty/zero-bytes.png": "emptyObject",
}


def test_the_generated_images_have_the_sizes_and_modes_asked_for():
    assert photo_like(320, 200).size == (320, 200)
    assert len(photo_like(64, 48).getcolors(64 * 48) or []) > 100  # shaded and grained, not flat
    logo = logo_with_alpha(64)
    assert (logo.size, logo.mode) == ((64, 64), "RGBA")
    assert logo.getchannel("A").getextrema()[0] < 255  # some of it is transparent


def test_names_are_unique_and_every_sample_says_why_it_is_there():
    names = [sample.name for sample in samples()]
    assert len(set(names)) == len(names)
    assert all(sample.note for sample in samples())


def test_each_sample_is_submitted_or_rejected_as_it_expects(aws, submitter, runware):
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
    assert (logo["targetMegapixels"], logo["outputFormat"]) == (2, "PNG")
    icon = sent[outcomes["tiny/icon.webp"].job_id]
    assert (icon["targetMegapixels"], icon["outputFormat"], icon["settings"]["enhanceDetails"]) == (1, "WEBP", True)
