"""`smoke` (upscale_cli/smoke.py): the output's checks, the timings, and a run that finds no job."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from PIL import Image

from tests.conftest import INBOX_BUCKET, OUTPUT_BUCKET
from tests.unit.cli_target import moto_target
from upscale_cli import smoke
from upscale_cli.main import build_parser
from upscale_cli.output import Output
from upscale_cli.smoke import _check_output, _timings


def put_output(aws, fmt: str, size: tuple[int, int], content_type: str) -> int:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, format=fmt)
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key="upscaled/a.jpg", Body=buffer.getvalue(), ContentType=content_type)
    return len(buffer.getvalue())


def job(width: int, height: int, size: int) -> dict[str, object]:
    return {"outputBucket": OUTPUT_BUCKET, "outputKey": "upscaled/a.jpg", "outputWidth": width, "outputHeight": height,
            "outputSize": size}  # fmt: skip


def test_an_output_as_asked_passes(aws):
    size = put_output(aws, "JPEG", (1000, 1000), "image/jpeg")
    output, problems = _check_output(moto_target(), job(1000, 1000, size), 1, "JPG")
    assert problems == []
    assert output == {"bucket": OUTPUT_BUCKET, "key": "upscaled/a.jpg", "format": "JPEG", "width": 1000,
                      "height": 1000, "bytes": size, "contentType": "image/jpeg"}  # fmt: skip


def test_every_difference_from_what_was_asked_is_a_problem(aws):
    size = put_output(aws, "PNG", (800, 600), "image/jpeg")
    _, problems = _check_output(moto_target(), job(1000, 1000, size + 1), 1, "JPG")
    assert problems == [
        "output is PNG, JPEG was asked for",
        "output Content-Type is 'image/jpeg', expected image/png",
        "output 800x600 is not within 5% of 1 MP",
        "job records 1000x1000, the file is 800x600",
        f"job records {size + 1} bytes, the file has {size}",
    ]


def test_a_missing_or_unreadable_output_is_a_problem(aws):
    output, problems = _check_output(moto_target(), job(1, 1, 1), 1, "JPG")
    assert output == {} and problems[0].startswith(f"output s3://{OUTPUT_BUCKET}/upscaled/a.jpg cannot be read")
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key="upscaled/a.jpg", Body=b"not an image at all")
    output, problems = _check_output(moto_target(), job(1, 1, 1), 1, "JPG")
    assert output == {} and problems[0].startswith("output is not an image")


def test_the_timings_come_from_the_job_record_and_this_clock():
    record = {"createdAt": "2024-03-01T12:00:00.000Z", "submittedAt": "2024-03-01T12:00:01.500Z",
              "completedAt": "2024-03-01T12:00:09.000Z", "totalSeconds": 9.25}  # fmt: skip
    timings = _timings(record, datetime(2024, 3, 1, 12, tzinfo=UTC), 0.4567, 12.0)
    assert timings == {
        "upload to job record (this clock)": 0.457,
        "job created to submitted": 1.5,
        "submitted to result (Runware)": 7.5,
        "upload to result (job record)": 9.25,
        "whole smoke test (this clock)": 12.0,
    }
    assert set(_timings(None, datetime.now(UTC), None, 1.0).values()) == {None, 1.0}


def test_a_run_without_a_job_uploads_the_sample_and_fails(aws):
    stream = io.StringIO()
    args = build_parser().parse_args(["smoke", "--timeout", "0", "--megapixels", "2", "--format", "PNG"])
    assert smoke.run(args, moto_target(), Output(as_json=True, stream=stream)) == 1
    report = json.loads(stream.getvalue())
    assert (report["passed"], report["status"], report["job"]) == (False, None, None)
    assert report["problems"] == [f"no job for {report['key']} after 0s"]
    assert report["key"].startswith("inbox/smoke/") and report["key"].endswith(".png")
    head = aws.s3.head_object(Bucket=INBOX_BUCKET, Key=report["key"])
    assert head["ContentType"] == "image/png"
    assert head["Metadata"] == {"target-megapixels": "2", "output-format": "PNG"}
    assert report["jobId"], "named from the uploaded version"
