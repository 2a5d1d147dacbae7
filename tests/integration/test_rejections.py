"""Every refusal through the real handlers against the local stack: one test per reason code, with the
text the user reads, and the sources that make no job at all (folder markers, foreign events)."""

from __future__ import annotations

import io
import struct
from dataclasses import asdict
from typing import Any
from urllib.parse import quote_plus

import pytest
from PIL import Image

from local.runware_emulator import FaultConfig
from local.stack import LocalStack
from tests.integration.conftest import drop, image_bytes, wait_for_jobs
from tests.stack_waits import job_states, wait_on_stack
from upscaler.source_events import source_objects


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (240, 160), (index * 70, 40, 40)) for index in range(3)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:])


def jpeg_with_metadata(total: int) -> bytes:
    """A valid JPEG with `total` bytes of APP2 segments (as ICC profiles are stored) before its frame header."""
    base = image_bytes(64, 48)
    segment = b"\xff\xe2" + struct.pack(">H", 65_002) + b"\x00" * 65_000
    return base[:2] + segment * (total // len(segment) + 1) + base[2:]


def sent_task_ids(stack: LocalStack, since: int = 0) -> set[str]:
    assert stack.emulator is not None
    return {task["taskUUID"] for request in stack.emulator.requests[since:] for task in request}


def settle(stack: LocalStack) -> None:
    """Until the stack has no submit invocation queued or running."""
    wait_on_stack(stack, lambda: not stack.invocations_pending(), "submit invocations still pending")


REJECTIONS = [
    pytest.param(b"plain text, not a picture", {}, "notAnImage", ["not a JPEG, PNG or WEBP"], id="notAnImage"),
    pytest.param(
        b"\x89PNG\r\n\x1a\n\x00\x00", {}, "notAnImage", ["too short to be one"], id="notAnImage-signature-only"
    ),
    pytest.param(b"", {}, "emptyObject", ["the object is empty (0 bytes)"], id="emptyObject"),
    pytest.param(
        image_bytes(100, 100),
        {"output-quality": "5"},
        "invalidOverride",
        ["x-amz-meta-output-quality"],
        id="invalidOverride",
    ),
    pytest.param(
        image_bytes(100, 100),
        {"target-megapixel": "2"},
        "invalidOverride",
        ["x-amz-meta-target-megapixel", "did you mean x-amz-meta-target-megapixels?"],
        id="invalidOverride-near-miss",
    ),
    pytest.param(
        encode(Image.new("P", (40, 40)), "GIF"),
        {},
        "unsupportedFormat",
        ["GIF is not supported"],
        id="unsupportedFormat",
    ),
    pytest.param(animated("WEBP"), {}, "animatedImage", ["the WEBP is animated"], id="animatedImage-webp"),
    pytest.param(animated("PNG"), {}, "animatedImage", ["the PNG is animated"], id="animatedImage-apng"),
    pytest.param(image_bytes(2500, 2000, "PNG"), {}, "alreadyAtTarget", ["2500x2000 (5.00 MP)"], id="alreadyAtTarget"),
    pytest.param(
        encode(Image.new("RGB", (20000, 8), (80, 80, 80)), "JPEG"),
        {},
        "extremeAspectRatio",
        ["20000x8", "2500.0:1", "64:1"],
        id="extremeAspectRatio",
    ),
    pytest.param(
        encode(Image.new("RGB", (4000, 100), (80, 80, 80)), "PNG"),
        {"output-format": "WEBP", "target-megapixels": "8"},
        "outputTooLarge",
        ["16,383 px per side that WEBP allows", "x-amz-meta-output-format: JPG or PNG", "target-megapixels: 6 or less"],
        id="outputTooLarge",
    ),
]


@pytest.mark.parametrize(("body", "metadata", "code", "phrases"), REJECTIONS)
def test_each_rejection_gives_its_reason_and_sends_nothing(
    stack: LocalStack,
    request: pytest.FixtureRequest,
    body: bytes,
    metadata: dict[str, str],
    code: str,
    phrases: list[str],
) -> None:
    assert stack.emulator is not None
    before = len(stack.emulator.requests)
    key = drop(stack, f"it-reject/{request.node.callspec.id}.bin", body, metadata)
    job = wait_for_jobs(stack, [key])[key]
    assert (job["status"], job["errorCode"]) == ("REJECTED", code), job.get("errorMessage")
    for phrase in phrases:
        assert phrase in job["errorMessage"]
    assert job["jobId"] not in sent_task_ids(stack, before)


def test_an_object_over_the_size_limit_is_rejected(stack: LocalStack) -> None:
    limit = int(stack.environment["MAX_INPUT_BYTES"])
    key = drop(stack, "it-reject/too-large.jpg", image_bytes(64, 48) + b"\x00" * (limit + 1))
    job = wait_for_jobs(stack, [key])[key]
    assert (job["status"], job["errorCode"]) == ("REJECTED", "objectTooLarge")
    assert f"the limit is {limit} bytes" in job["errorMessage"]


def test_metadata_past_16_mib_is_refused_as_such_not_as_corrupt(stack: LocalStack) -> None:
    key = drop(stack, "it-reject/heavy-metadata.jpg", jpeg_with_metadata(16 * 1024 * 1024 + 70_000))
    job = wait_for_jobs(stack, [key])[key]
    assert (job["status"], job["errorCode"]) == ("REJECTED", "metadataTooLarge")
    assert "metadata is larger than 16 MiB" in job["errorMessage"]
    assert "corrupt" not in job["errorMessage"]


def test_metadata_within_the_bound_is_walked_and_the_image_upscaled(stack: LocalStack) -> None:
    key = drop(stack, "it-reject/exif-heavy.jpg", jpeg_with_metadata(900_000), {"target-megapixels": "1"})
    job = wait_for_jobs(stack, [key])[key]
    assert job["status"] == "COMPLETED", job.get("errorMessage")
    assert (job["inputWidth"], job["inputHeight"]) == (64, 48)


def test_the_job_records_the_displayed_sides_of_a_turned_photo(stack: LocalStack) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    body = encode(Image.new("RGB", (640, 480), (30, 60, 90)), "JPEG", exif=exif.tobytes())
    key = drop(stack, "it-reject/turned.jpg", body, {"target-megapixels": "1"})
    job = wait_for_jobs(stack, [key])[key]
    assert (job["inputWidth"], job["inputHeight"], job["inputOrientation"]) == (480, 640, 6)


# --- the source's current state, on a re-drive from the DLQ -------------------------------------


def test_deleted_purged_and_overwritten_sources_are_not_sent_when_intake_resumes(stack: LocalStack) -> None:
    """Runware down: the three uploads end CLAIMED and intake waits (nothing dead-lettered). Then the
    user deletes one (aws s3 rm), purges another's version and overwrites the third; when Runware is
    back, intake resumes by itself, validates each again, and sends none of them."""
    assert stack.emulator is not None
    s3 = stack.client("s3")
    bucket = stack.names["inbox_bucket"]
    stack.emulator.faults = FaultConfig(rate_5xx=1.0, status_5xx=503)
    letters_before = stack.dead_letter_count()
    names = ("deleted.jpg", "purged.jpg", "replaced.jpg")
    keys = [drop(stack, f"it-source/{name}", image_bytes(300, 200), {"target-megapixels": "1"}) for name in names]

    def claimed_jobs() -> dict[str, dict[str, Any]]:
        return {job["sourceKey"]: job for job in stack.jobs() if job["sourceKey"] in keys}

    wait_on_stack(
        stack,
        # Claimed, intake stopped, and no batch on its way (its sources were validated before the change).
        lambda: (
            {job["status"] for job in claimed_jobs().values()} == {"CLAIMED"}
            and len(claimed_jobs()) == 3
            and stack.intake_mapping_state() == "Disabled"
            and stack.ingestion is not None
            and stack.ingestion.in_flight == 0
        ),
        "the uploads were not claimed, or intake did not pause, while Runware was down",
        progress=lambda: job_states(list(claimed_jobs().values())),
        poll_seconds=0.5,
    )
    claimed = claimed_jobs()
    assert stack.dead_letter_count() == letters_before, "an outage dead-letters nothing"

    deleted, purged, replaced = keys
    s3.delete_object(Bucket=bucket, Key=deleted)
    s3.delete_object(Bucket=bucket, Key=purged, VersionId=claimed[purged]["sourceVersionId"])
    s3.put_object(Bucket=bucket, Key=replaced, Body=image_bytes(320, 200), Metadata={"target-megapixels": "1"})
    before = len(stack.emulator.requests)
    stack.emulator.faults = FaultConfig()  # Runware is back; nobody re-drives anything
    settle(stack)

    jobs = {job["jobId"]: job for job in stack.jobs() if job["sourceKey"] in keys}
    outcome = {key: jobs[claimed[key]["jobId"]] for key in keys}
    assert {key: (job["status"], job["errorCode"]) for key, job in outcome.items()} == {
        deleted: ("REJECTED", "sourceDeleted"),
        purged: ("REJECTED", "sourceMissing"),
        replaced: ("REJECTED", "sourceReplaced"),
    }
    assert all(job["rejectedAfterClaim"] for job in outcome.values())
    assert "delete marker" in outcome[deleted]["errorMessage"]
    assert "no longer exists" in outcome[purged]["errorMessage"]
    assert "no longer the object's current version" in outcome[replaced]["errorMessage"]
    assert not sent_task_ids(stack, before) & {job["jobId"] for job in outcome.values()}
    # The overwrite is its own upload, its own job, and is upscaled.

    def newer() -> list[dict[str, Any]]:
        return [
            job for job in stack.jobs() if job["sourceKey"] == replaced and job["jobId"] != claimed[replaced]["jobId"]
        ]

    wait_on_stack(
        stack,
        lambda: [job["status"] for job in newer()] == ["COMPLETED"],
        "the overwriting upload was not upscaled",
        progress=lambda: job_states(newer()),
        pending=lambda: str(newer()),
        poll_seconds=0.3,
    )


# --- sources that are no job ----------------------------------------------------------------------


def s3_event(bucket: str, key: str, size: int, etag: str, version_id: str | None) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag, "sequencer": "0A"}
    if version_id:
        obj["versionId"] = version_id
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-05-14T09:21:07.512Z",
                "eventName": "ObjectCreated:Put",
                "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": obj},
            }
        ]
    }


def invoke_submit(stack: LocalStack, event: dict[str, Any]) -> list[dict[str, Any]]:
    """The running submit function's library on the event's sources (the outcomes the handler logs)."""
    report = stack.functions["SubmitFunction"].module.submitter.submit_sources(source_objects(event))
    assert report.retry == []
    return [asdict(outcome) for outcome in report.outcomes]


def test_a_folder_marker_makes_no_job(stack: LocalStack) -> None:
    bucket = stack.names["inbox_bucket"]
    key = stack.names["inbox_prefix"] + "it-folder/holiday/"
    put = stack.client("s3").put_object(Bucket=bucket, Key=key, Body=b"")  # the console's "Create folder"
    settle(stack)
    [outcome] = invoke_submit(stack, s3_event(bucket, key, 0, put["ETag"].strip('"'), put.get("VersionId")))
    assert (outcome["status"], outcome["code"], outcome["job_id"]) == ("IGNORED", "folderMarker", "")
    assert [job for job in stack.jobs() if job["sourceKey"] == key] == []


def test_events_for_sources_the_stack_does_not_own_make_no_job(stack: LocalStack) -> None:
    s3 = stack.client("s3")
    inbox, output = stack.names["inbox_bucket"], stack.names["output_bucket"]
    outside = "it-foreign/outside-the-prefix.jpg"
    put = s3.put_object(Bucket=inbox, Key=outside, Body=image_bytes(200, 100))  # no notification: not under the prefix
    events = [
        (s3_event(inbox, outside, 100, put["ETag"].strip('"'), put.get("VersionId")), "outside this stack's inbox"),
        (s3_event(output, stack.names["output_prefix"] + "a.jpg", 100, "e", None), "output bucket, never a source"),
    ]
    before = len(stack.emulator.requests) if stack.emulator else 0
    for event, reason in events:
        [outcome] = invoke_submit(stack, event)
        assert (outcome["status"], outcome["code"]) == ("IGNORED", "foreignSource")
        assert reason in outcome["message"]
    assert [job for job in stack.jobs() if job["sourceKey"] in (outside, stack.names["output_prefix"] + "a.jpg")] == []
    assert len(stack.emulator.requests if stack.emulator else []) == before
