# ruff: noqa: F811 (pytest fixtures imported from test_submission and named as arguments)
"""What the submit path decides from a source's current state and content, and what it costs in AWS calls.

moto's S3 and DynamoDB, Runware answered at the HTTP level (the fixtures of test_submission).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import INBOX_BUCKET, OUTPUT_BUCKET, REGION
from tests.unit.queue_events import queued
from tests.unit.test_submission import (  # noqa: F401 (fixtures used by name)
    all_jobs,
    encode,
    jobs,
    jpeg,
    make_submitter,
    png,
    runware,
    sleeps,
    submit,
    submitter,
    upload,
)
from upscaler.ingestion import submit_batch
from upscaler.job_record import JobStatus
from upscaler.models import UpscaleOptions
from upscaler.output_geometry import MAX_ASPECT_RATIO, geometry_problem, output_size
from upscaler.runware import RunwareUnavailable
from upscaler.storage import HEADER_FIRST_READ_BYTES
from upscaler.submission import IGNORED, Submitter

# --- AWS calls per object -----------------------------------------------------------------------


class CallLog:
    """Every API call the submitter's S3 and DynamoDB clients make, as service.Operation."""

    def __init__(self, submitter: Submitter) -> None:
        self.calls: list[str] = []
        for client in (submitter.objects._s3, submitter.jobs._db):
            client.meta.events.register("before-call", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.calls.append(f"{model.service_model.service_name}.{model.name}")

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls


def test_a_fresh_valid_object_costs_three_aws_calls(aws, submitter, runware):
    log = CallLog(submitter)
    [outcome] = submit(submitter, queued(upload(aws, "inbox/a.jpg", jpeg())))
    assert outcome.status == JobStatus.SUBMITTED
    assert log.take() == ["s3.GetObject", "dynamodb.PutItem", "dynamodb.UpdateItem"]


def test_a_batch_of_valid_objects_costs_one_get_and_two_writes_each(aws, submitter, runware):
    log = CallLog(submitter)
    outcomes = submit(submitter, queued(*(upload(aws, f"inbox/b{n}.jpg", jpeg(300 + n, 200)) for n in range(4))))
    assert [o.status for o in outcomes] == [JobStatus.SUBMITTED] * 4
    # The four claims at once, then the four moves to SUBMITTED at once.
    assert log.take() == ["s3.GetObject"] * 4 + ["dynamodb.PutItem"] * 4 + ["dynamodb.UpdateItem"] * 4


def test_a_repeated_batch_is_answered_by_the_refused_claims(aws, submitter, runware):
    records = [upload(aws, f"inbox/c{n}.jpg", jpeg(300 + n, 200)) for n in range(3)]
    submit(submitter, queued(*records))
    log = CallLog(submitter)
    again = submit(submitter, queued(*records))
    assert [o.status for o in again] == ["DUPLICATE"] * 3
    # Every claim refused: each refusal returns its job (ALL_OLD), so nothing else is read.
    assert log.take() == ["s3.GetObject"] * 3 + ["dynamodb.PutItem"] * 3
    assert len(runware.requests) == 1


def test_a_repeat_delivery_costs_two_calls_and_no_get_item(aws, submitter, runware):
    record = upload(aws, "inbox/a.jpg", jpeg())
    submit(submitter, queued(record))
    log = CallLog(submitter)
    [again] = submit(submitter, queued(record))
    assert again.status == "DUPLICATE"
    assert log.take() == ["s3.GetObject", "dynamodb.PutItem"]  # the refused PutItem returns the job
    assert len(runware.requests) == 1


# --- the source's current state decides ---------------------------------------------------------


def test_a_deleted_object_is_rejected_as_deleted(aws, submitter, runware):
    record = upload(aws, "inbox/gone.jpg", jpeg())
    aws.s3.delete_object(Bucket=INBOX_BUCKET, Key="inbox/gone.jpg")  # aws s3 rm: a delete marker
    [outcome] = submit(submitter, queued(record))
    assert (outcome.status, outcome.code) == (JobStatus.REJECTED, "sourceDeleted")
    assert "deleted" in outcome.message
    assert runware.requests == []


def test_a_version_removed_for_good_is_missing(aws, submitter, runware):
    record = upload(aws, "inbox/purged.jpg", jpeg())
    version = record["s3"]["object"]["versionId"]
    aws.s3.delete_object(Bucket=INBOX_BUCKET, Key="inbox/purged.jpg", VersionId=version)
    [outcome] = submit(submitter, queued(record))
    assert (outcome.status, outcome.code) == (JobStatus.REJECTED, "sourceMissing")
    assert runware.requests == []


def test_a_key_that_never_existed_is_missing(aws, submitter, runware):
    record = upload(aws, "inbox/x.jpg", jpeg())
    record["s3"]["object"]["key"] = "inbox/never-there.jpg"
    [outcome] = submit(submitter, queued(record))
    assert (outcome.status, outcome.code) == (JobStatus.REJECTED, "sourceMissing")


def test_an_overwritten_version_is_not_sent_and_the_new_one_is(aws, submitter, runware):
    older = upload(aws, "inbox/a.jpg", jpeg(300, 200))
    newer = upload(aws, "inbox/a.jpg", jpeg(310, 200))
    first, second = submit(submitter, queued(older, newer))
    assert (first.status, first.code) == (JobStatus.REJECTED, "sourceReplaced")
    assert older["s3"]["object"]["versionId"] in first.message and newer["s3"]["object"]["versionId"] in first.message
    assert second.status == JobStatus.SUBMITTED
    assert [task["taskUUID"] for task in runware.tasks] == [second.job_id]


def test_without_versioning_the_etag_tells_an_overwrite(aws, make_submitter, runware):
    plain = "test-plain-inbox"
    aws.s3.create_bucket(Bucket=plain, CreateBucketConfiguration={"LocationConstraint": REGION})
    submitter = make_submitter()

    def unversioned_record(body: bytes) -> dict:
        record = upload(aws, "inbox/a.jpg", b"")  # only for the record's shape
        put = aws.s3.put_object(Bucket=plain, Key="inbox/a.jpg", Body=body)
        record["s3"]["bucket"]["name"] = plain
        record["s3"]["object"] = {
            "key": "inbox/a.jpg",
            "size": len(body),
            "eTag": put["ETag"].strip('"'),
            "sequencer": "01",
        }
        return record

    current = unversioned_record(jpeg(300, 200))
    [outcome] = submit(submitter, queued(current))
    assert outcome.status == JobStatus.SUBMITTED
    assert submitter.jobs.get(outcome.job_id).source_version_id is None

    stale = unversioned_record(jpeg(320, 200))
    stale["s3"]["object"]["sequencer"] = "02"
    unversioned_record(jpeg(330, 200))
    [outcome] = submit(submitter, queued(stale))
    assert (outcome.status, outcome.code) == (JobStatus.REJECTED, "sourceReplaced")
    assert "ETag" in outcome.message


def test_a_claimed_job_is_validated_again_before_it_is_sent_again(aws, make_submitter, runware):
    submitter = make_submitter(max_attempts=1)
    batch = queued(upload(aws, "inbox/crash.jpg", jpeg()))
    runware.script = [httpx.ConnectError("connection refused")]
    with pytest.raises(RunwareUnavailable):
        submit_batch(submitter, batch)
    aws.s3.delete_object(Bucket=INBOX_BUCKET, Key="inbox/crash.jpg")
    sent = len(runware.requests)

    [outcome] = submit(submitter, batch)  # the retry, or a re-drive from the DLQ

    assert (outcome.status, outcome.code) == (JobStatus.REJECTED, "sourceDeleted")
    assert len(runware.requests) == sent
    job = submitter.jobs.get(outcome.job_id)
    assert (job.status, job.error_code, job.rejected_after_claim) == ("REJECTED", "sourceDeleted", True)
    assert submit(submitter, batch)[0].status == "DUPLICATE"


def test_a_finished_job_redelivered_after_a_delete_stays_as_it_was(aws, submitter, runware):
    record = upload(aws, "inbox/done.jpg", jpeg())
    [first] = submit(submitter, queued(record))
    aws.s3.delete_object(Bucket=INBOX_BUCKET, Key="inbox/done.jpg")
    [again] = submit(submitter, queued(record))
    assert again.status == "DUPLICATE"
    assert submitter.jobs.get(first.job_id).status == "SUBMITTED"


# --- S3's answers to the one ranged GET ---------------------------------------------------------


def test_tiny_and_empty_objects(aws, submitter, runware):
    tiny = upload(aws, "inbox/tiny.jpg", b"abc")
    empty = upload(aws, "inbox/empty.png", b"")
    log = CallLog(submitter)
    first, second = submit(submitter, queued(tiny, empty))
    assert (first.code, second.code) == ("notAnImage", "emptyObject")
    assert "only 3 bytes" in first.message
    # The empty object answers the Range with 416, so a HEAD learns its version and metadata. The
    # two sources' reads run at once, so they interleave in any order; both rejections are then
    # written at once.
    calls = log.take()
    assert sorted(calls[:-2]) == sorted(["s3.GetObject", "s3.GetObject", "s3.HeadObject"])
    assert calls[-2:] == ["dynamodb.PutItem"] * 2
    assert submitter.objects.header_bytes_read == 3


def test_a_small_image_is_read_whole_from_the_first_range(aws, submitter, runware):
    body = png(64, 48)
    assert len(body) < HEADER_FIRST_READ_BYTES
    [outcome] = submit(submitter, queued(upload(aws, "inbox/small.png", body)))
    assert outcome.status == JobStatus.SUBMITTED
    assert submitter.objects.header_bytes_read == len(body)


# --- what the content says ----------------------------------------------------------------------


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (300, 200), (index * 60, 20, 20)) for index in range(3)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:])


@pytest.mark.parametrize(("fmt", "key"), [("WEBP", "inbox/anim.webp"), ("PNG", "inbox/anim.png")])
def test_animated_webp_and_apng_are_refused_by_name(aws, submitter, runware, fmt, key):
    [outcome] = submit(submitter, queued(upload(aws, key, animated(fmt))))
    assert (outcome.status, outcome.code) == (JobStatus.REJECTED, "animatedImage")
    assert f"the {fmt} is animated" in outcome.message
    assert runware.requests == []


def test_an_animated_gif_is_refused_as_a_gif(aws, submitter, runware):
    [outcome] = submit(submitter, queued(upload(aws, "inbox/anim.gif", animated("GIF"))))
    assert (outcome.code, outcome.message) == ("unsupportedFormat", "GIF is not supported; use JPEG, PNG or WEBP")


def test_an_extreme_aspect_ratio_is_refused_before_sending(aws, submitter, runware):
    body = encode(Image.new("RGB", (20000, 8), (90, 90, 90)), "JPEG")
    [outcome] = submit(submitter, queued(upload(aws, "inbox/strip.jpg", body)))
    assert (outcome.status, outcome.code) == (JobStatus.REJECTED, "extremeAspectRatio")
    assert "20000x8" in outcome.message and f"{MAX_ASPECT_RATIO}:1" in outcome.message
    assert runware.requests == []


def test_an_output_too_large_for_its_format_names_the_overrides_that_help(aws, submitter, runware):
    body = encode(Image.new("RGB", (4000, 100), (90, 90, 90)), "PNG")
    metadata = {"output-format": "WEBP", "target-megapixels": "8"}
    [outcome] = submit(submitter, queued(upload(aws, "inbox/banner.png", body, metadata)))
    assert (outcome.status, outcome.code) == (JobStatus.REJECTED, "outputTooLarge")
    assert "16,383 px per side that WEBP allows" in outcome.message
    assert "x-amz-meta-output-format: JPG or PNG" in outcome.message
    assert "x-amz-meta-target-megapixels: 6 or less" in outcome.message
    # Each suggestion really fits.
    assert max(output_size(4000, 100, 6)) <= 16_383 < max(output_size(4000, 100, 7))
    for fmt in ("JPG", "PNG"):
        assert geometry_problem(4000, 100, UpscaleOptions(target_megapixels=8, output_format=fmt)) is None


@pytest.mark.parametrize(
    ("fmt", "orientation", "displayed"),
    [
        ("JPEG", 6, (480, 640)),
        ("JPEG", 8, (480, 640)),
        ("JPEG", 3, (640, 480)),
        ("PNG", 5, (480, 640)),
        ("WEBP", 7, (480, 640)),
    ],
)
def test_the_job_records_the_displayed_sides_and_the_orientation(aws, submitter, runware, fmt, orientation, displayed):
    exif = Image.Exif()
    exif[0x0112] = orientation
    body = encode(Image.new("RGB", (640, 480), (30, 60, 90)), fmt, exif=exif.tobytes())
    [outcome] = submit(submitter, queued(upload(aws, f"inbox/turned.{fmt.lower()}", body)))
    job = submitter.jobs.get(outcome.job_id)
    assert (job.input_width, job.input_height, job.input_orientation) == (*displayed, orientation)


# --- overrides ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        ("target-megapixel", "target-megapixels"),
        ("targetmegapixels", "target-megapixels"),
        ("target_megapixels", "target-megapixels"),
        ("output_format", "output-format"),
        ("outputformat", "output-format"),
        ("output-formats", "output-format"),
        ("output-qualty", "output-quality"),
        ("enhance-detail", "enhance-details"),
        ("realisms", "realism"),
    ],
)
def test_a_near_miss_of_an_option_is_refused_with_the_option_it_meant(aws, submitter, runware, key, meant):
    [outcome] = submit(submitter, queued(upload(aws, "inbox/typo.jpg", jpeg(), {key: "2"})))
    assert (outcome.status, outcome.code) == (JobStatus.REJECTED, "invalidOverride")
    assert outcome.message.endswith(f"did you mean x-amz-meta-{meant}?")
    assert f"x-amz-meta-{key}" in outcome.message
    assert runware.requests == []


def test_unrelated_user_metadata_is_ignored(aws, submitter, runware):
    metadata = {"author": "me", "camera": "x100", "realm": "eu", "format-version": "2", "target": "web"}
    [outcome] = submit(submitter, queued(upload(aws, "inbox/tagged.jpg", jpeg(), metadata)))
    assert outcome.status == JobStatus.SUBMITTED
    assert runware.tasks[0]["targetMegapixels"] == 4


# --- sources that are no job --------------------------------------------------------------------


def test_a_folder_marker_makes_no_job_and_no_call(aws, submitter, runware):
    record = upload(aws, "inbox/holiday/", b"")
    log = CallLog(submitter)
    [outcome] = submit(submitter, queued(record))
    assert (outcome.status, outcome.code, outcome.job_id) == (IGNORED, "folderMarker", "")
    assert log.take() == []
    assert all_jobs(aws) == []


def test_sources_outside_the_stack_make_no_job(aws, make_submitter, runware):
    from dataclasses import replace

    submitter = make_submitter(replace(aws.settings, inbox_bucket=INBOX_BUCKET))
    elsewhere = "someone-elses-bucket"
    aws.s3.create_bucket(Bucket=elsewhere, CreateBucketConfiguration={"LocationConstraint": REGION})
    records = []
    for bucket, key in ((elsewhere, "inbox/a.jpg"), (OUTPUT_BUCKET, "upscaled/a.jpg"), (INBOX_BUCKET, "other/a.jpg")):
        record = upload(aws, "inbox/shape.jpg", jpeg())
        aws.s3.put_object(Bucket=bucket, Key=key, Body=jpeg())
        record["s3"]["bucket"]["name"] = bucket
        record["s3"]["object"]["key"] = key
        records.append(record)
    log = CallLog(submitter)
    outcomes = submit(submitter, queued(*records))
    assert [(o.status, o.code) for o in outcomes] == [(IGNORED, "foreignSource")] * 3
    assert [o.message for o in outcomes] == [
        f"s3://{elsewhere}/inbox/a.jpg is outside this stack's inbox (s3://{INBOX_BUCKET}/inbox/)",
        f"s3://{OUTPUT_BUCKET}/upscaled/a.jpg is in this stack's output bucket, never a source",
        f"s3://{INBOX_BUCKET}/other/a.jpg is outside this stack's inbox (s3://{INBOX_BUCKET}/inbox/)",
    ]
    assert log.take() == []
    assert all_jobs(aws) == []
    assert runware.requests == []


def test_without_an_inbox_bucket_setting_only_the_output_bucket_is_foreign(aws, submitter):
    assert aws.settings.inbox_bucket == ""
    assert aws.settings.owns_source(INBOX_BUCKET, "inbox/a.jpg")
    assert aws.settings.owns_source("any-bucket", "inbox/a.jpg")
    assert not aws.settings.owns_source(OUTPUT_BUCKET, "inbox/a.jpg")
    assert not aws.settings.owns_source(INBOX_BUCKET, "elsewhere/a.jpg")


def test_ignored_sources_are_counted_in_their_own_metric(aws, submitter):
    from aws_lambda_powertools import Metrics

    from upscaler.job_metrics import add_submit_metrics

    outcomes = submit(submitter, queued(upload(aws, "inbox/a/", b""), upload(aws, "elsewhere/b.jpg", jpeg())))
    metrics = Metrics(namespace="S3UpscaleTest")
    metrics.clear_metrics()  # Powertools shares one metric set between instances
    add_submit_metrics(metrics, outcomes)
    counted = {name: sum(value["Value"]) for name, value in metrics.metric_set.items()}
    metrics.clear_metrics()
    assert counted == {"SourcesIgnored": 2}
