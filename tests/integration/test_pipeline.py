"""Objects dropped into the local stack's inbox come out upscaled, with a complete job record."""

from __future__ import annotations

from typing import Any

import pytest

from local.stack import LocalStack
from tests.integration.conftest import drop, image_bytes, read_output, wait_for_jobs
from tests.stack_waits import job_states, wait_on_stack


def within(actual: int, target: int, tolerance: float = 0.02) -> bool:
    return abs(actual - target) <= tolerance * target


@pytest.mark.parametrize(
    ("name", "body", "metadata", "pillow_format", "content_type", "megapixels"),
    [
        ("it/photo.jpg", image_bytes(640, 480), {}, "JPEG", "image/jpeg", 4),
        ("it/alpha.png", image_bytes(300, 200, "PNG", "RGBA"), {"output-format": "PNG", "target-megapixels": "2"},
         "PNG", "image/png", 2),
        ("it/small.webp", image_bytes(120, 90, "WEBP"), {"output-format": "WEBP", "target-megapixels": "1"},
         "WEBP", "image/webp", 1),
    ],
)  # fmt: skip
def test_dropped_image_is_upscaled_to_target(
    stack: LocalStack,
    name: str,
    body: bytes,
    metadata: dict[str, str],
    pillow_format: str,
    content_type: str,
    megapixels: int,
) -> None:
    key = drop(stack, name, body, metadata)
    job = wait_for_jobs(stack, [key])[key]

    assert job["status"] == "COMPLETED", job
    image, response = read_output(stack, job)
    assert image.format == pillow_format
    assert within(image.width * image.height, megapixels * 1_000_000)
    source_width, source_height = job["inputWidth"], job["inputHeight"]
    assert abs(image.width / image.height - source_width / source_height) < 0.01
    # The emulator PUTs without a Content-Type; the webhook path sets the right one.
    assert response["ContentType"] == content_type
    assert job["outputContentType"] == content_type
    assert (job["outputWidth"], job["outputHeight"]) == (image.width, image.height)
    assert job["outputSize"] == response["ContentLength"]
    assert job["sourceSize"] == len(body)
    assert job["cost"] > 0
    for duration in ("uploadToSubmitSeconds", "providerSeconds", "totalSeconds"):
        assert job[duration] >= 0, duration
    assert job["totalSeconds"] >= job["providerSeconds"]
    assert job["resultVia"] == "webhook"


def test_source_object_is_left_untouched(stack: LocalStack) -> None:
    body = image_bytes(400, 300)
    key = drop(stack, "it/untouched.jpg", body)
    job = wait_for_jobs(stack, [key])[key]
    assert job["status"] == "COMPLETED"
    s3 = stack.client("s3")
    versions = s3.list_object_versions(Bucket=stack.names["inbox_bucket"], Prefix=key)["Versions"]
    assert len(versions) == 1
    assert s3.get_object(Bucket=stack.names["inbox_bucket"], Key=key)["Body"].read() == body


@pytest.mark.parametrize(
    ("name", "body", "metadata", "code"),
    [
        ("it/bad/notes.jpg", b"plain text, not a picture", {}, "notAnImage"),
        ("it/bad/empty.png", b"", {}, "emptyObject"),
        ("it/bad/huge.png", image_bytes(2500, 2000, "PNG"), {}, "alreadyAtTarget"),
        ("it/bad/override.jpg", image_bytes(100, 100), {"output-quality": "5"}, "invalidOverride"),
    ],
)
def test_bad_input_is_rejected_with_a_reason(
    stack: LocalStack, name: str, body: bytes, metadata: dict[str, str], code: str
) -> None:
    requests_before = len(stack.emulator.requests) if stack.emulator else 0
    key = drop(stack, name, body, metadata)
    job = wait_for_jobs(stack, [key])[key]
    assert job["status"] == "REJECTED"
    assert job["errorCode"] == code
    assert job["errorMessage"]
    assert stack.emulator is not None
    sent = [task["taskUUID"] for request in stack.emulator.requests[requests_before:] for task in request]
    assert job["jobId"] not in sent


def test_same_key_uploaded_twice_gives_two_jobs_and_two_outputs(stack: LocalStack) -> None:
    key = drop(stack, "it/again.jpg", image_bytes(500, 400))
    first = wait_for_jobs(stack, [key])[key]
    drop(stack, "it/again.jpg", image_bytes(520, 400))

    def both() -> list[dict[str, Any]]:
        return [job for job in stack.jobs() if job["sourceKey"] == key]

    wait_on_stack(
        stack,
        lambda: [job["status"] for job in both()] == ["COMPLETED", "COMPLETED"],
        "the second upload did not complete",
        progress=lambda: job_states(both()),
        pending=lambda: str([job["status"] for job in both()]),
    )
    jobs = both()
    assert len(jobs) == 2
    assert len({job["sourceVersionId"] for job in jobs}) == 2
    assert len({job["outputKey"] for job in jobs}) == 2
    assert first["outputKey"] in {job["outputKey"] for job in jobs}


def test_lost_webhook_is_finished_by_the_reconciler(stack: LocalStack) -> None:
    from local.runware_emulator import FaultConfig

    assert stack.emulator is not None
    stack.emulator.faults = FaultConfig(drop_webhook_rate=1.0)
    key = drop(stack, "it/lost-webhook.jpg", image_bytes(300, 300))
    job = wait_for_jobs(stack, [key])[key]
    assert job["status"] == "COMPLETED"
    assert job["resultVia"] == "reconcile"
    assert job["imageUUID"]
