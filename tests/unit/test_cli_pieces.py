"""Parts of s3-upscale that need no stack: the generated sample, key references, plain tables, JSON."""

from __future__ import annotations

import io
import json
from decimal import Decimal

from PIL import Image

from upscale_cli.jobs_query import JOB_ID, source_key
from upscale_cli.output import plain_table, to_json
from upscale_cli.sample_image import gradient_png
from upscale_cli.target import Target
from upscaler.image_header import read_image_header
from upscaler.job_record import job_id_for

TARGET = Target("test", "inbox-bucket", "inbox/", "output-bucket", "jobs", "secret-arn")


def test_the_smoke_sample_is_a_valid_png_that_pillow_decodes():
    body = gradient_png(64, 48)
    assert read_image_header(body, complete=True).format == "PNG"
    with Image.open(io.BytesIO(body)) as image:
        image.load()
        assert (image.format, image.size, image.mode) == ("PNG", (64, 48), "RGB")
        assert len(image.getcolors(maxcolors=100_000) or []) > 10, "not a flat colour"


def test_job_ids_are_recognised_and_keys_are_resolved_below_the_prefix():
    assert JOB_ID.match(job_id_for("b", "inbox/a.jpg", "v1"))
    assert not JOB_ID.match("inbox/a.jpg")
    assert source_key(TARGET, "a.jpg") == "inbox/a.jpg"
    assert source_key(TARGET, "inbox/a.jpg") == "inbox/a.jpg"
    assert source_key(TARGET, "s3://inbox-bucket/inbox/x/a.jpg") == "inbox/x/a.jpg"


def test_plain_tables_align_columns_and_json_keeps_numbers():
    text = plain_table(["status", "jobs"], [["COMPLETED", "12"], ["FAILED", "3"]])
    assert text.splitlines() == ["status     jobs", "---------  ----", "COMPLETED  12", "FAILED     3"]
    assert json.loads(to_json({"cost": Decimal("0.0050"), "n": Decimal(3)})) == {"cost": 0.005, "n": 3}
