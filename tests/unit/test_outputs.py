"""upscaler.outputs: finding the output Runware uploaded, checking it, and publishing it (moto's S3)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from tests.conftest import OUTPUT_BUCKET
from upscaler.job_record import Job
from upscaler.outputs import (
    OutputInvalid,
    OutputPublisher,
    final_key_for,
    output_metadata,
    staging_key_for,
)
from upscaler.storage import ObjectMissing, ObjectStore


def image(width: int, height: int, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 90, 160)).save(buffer, fmt)
    return buffer.getvalue()


def job(**changes: Any) -> Job:
    return Job.from_record(
        {
            "jobId": "job-1",
            "sourceBucket": "test-inbox",
            "sourceKey": "inbox/été/a.jpg",
            "sourceVersionId": "v1",
            "inputWidth": 500,
            "inputHeight": 250,
            "targetMegapixels": 1,
            "outputBucket": OUTPUT_BUCKET,
            "outputKey": "upscaled/été/a.jpg.job-1.jpg",
            **changes,
        }
    )


@pytest.fixture
def publisher(aws) -> OutputPublisher:
    return OutputPublisher(ObjectStore(aws.s3))


def put(aws, key: str, body: bytes, content_type: str = "binary/octet-stream") -> None:
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=key, Body=body, ContentType=content_type)


def test_final_key_takes_the_extension_of_the_bytes():
    assert final_key_for("upscaled/a.jpg.job-1.jpg", "JPG") == "upscaled/a.jpg.job-1.jpg"
    assert final_key_for("upscaled/a.jpg.job-1.jpg", "PNG") == "upscaled/a.jpg.job-1.png"
    assert final_key_for("upscaled/v1.2/a", "WEBP") == "upscaled/v1.2/a.webp"


def test_output_metadata_is_ascii_and_names_the_version_only_when_there_is_one():
    assert output_metadata(job()) == {
        "job-id": "job-1",
        "source-bucket": "test-inbox",
        "source-key": "inbox/%C3%A9t%C3%A9/a.jpg",
        "source-version-id": "v1",
    }
    assert "source-version-id" not in output_metadata(job(sourceVersionId=None))


def test_the_staging_key_is_the_jobs_own_or_made_from_the_prefix(publisher):
    assert staging_key_for("staging/", "job-1") == "staging/job-1"
    assert publisher.staging_key(job()) == "staging/job-1"
    assert publisher.staging_key(job(stagingKey="elsewhere/job-1")) == "elsewhere/job-1"
    assert OutputPublisher(publisher.objects, "other/").staging_key(job()) == "other/job-1"


def test_nothing_uploaded_is_no_output(publisher):
    assert publisher.find(job()) is None


def test_a_staged_image_of_the_asked_size_is_found_and_published_under_its_real_type(aws, publisher):
    put(aws, "staging/job-1", image(1414, 707))  # 1 MP at the input's 2:1, as PNG though JPG was planned
    found = publisher.find(job())
    assert found is not None and not found.published
    assert (found.output_format, found.info.key) == ("PNG", "staging/job-1")

    published = publisher.publish(job(), found)

    assert (published.key, published.content_type, published.output_format) == (
        "upscaled/été/a.jpg.job-1.png",
        "image/png",
        "PNG",
    )
    assert (published.width, published.height) == (1414, 707)
    final = aws.s3.head_object(Bucket=OUTPUT_BUCKET, Key=published.key)
    assert final["ContentType"] == "image/png"
    assert final["Metadata"] == output_metadata(job())
    assert final["ETag"].strip('"') == published.etag
    publisher.discard_staged(job())
    with pytest.raises(ObjectMissing):
        publisher.objects.head(OUTPUT_BUCKET, "staging/job-1")


def test_an_already_published_output_is_found_at_its_final_key_and_its_type_put_right(aws, publisher):
    put(aws, "upscaled/été/a.jpg.job-1.jpg", image(1414, 707, "JPEG"), content_type="binary/octet-stream")
    found = publisher.find(job())
    assert found is not None and found.published
    published = publisher.publish(job(), found)
    assert published.key == "upscaled/été/a.jpg.job-1.jpg"
    assert aws.s3.head_object(Bucket=OUTPUT_BUCKET, Key=published.key)["ContentType"] == "image/jpeg"


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        (b"not an image", "outputUnreadable", "not a readable image"),
        (image(64, 64, "GIF"), "outputUnreadable", "is GIF, not JPEG, PNG or WEBP"),
        (image(500, 250), "outputMismatch", "(0.12 MP), not the 1 MP asked for"),
        (image(1000, 1000), "outputMismatch", "not the shape of the 500x250 input"),
    ],
)
def test_bytes_that_are_not_this_jobs_result_are_invalid(aws, publisher, body, code, fragment):
    put(aws, "staging/job-1", body)
    with pytest.raises(OutputInvalid) as invalid:
        publisher.find(job())
    assert invalid.value.code == code
    assert fragment in invalid.value.message


def test_an_output_of_the_input_turned_a_quarter_is_the_right_shape(aws, publisher):
    put(aws, "staging/job-1", image(707, 1414))  # EXIF orientation applied by the model, or not
    found = publisher.find(job())
    assert found is not None and found.header.width == 707
