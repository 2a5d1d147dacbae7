"""A backfill's dry run estimates as submit would judge: the stack's defaults, folder presets and each
object's metadata decide its tier; what submit would refuse is counted by reason and costs nothing;
the settings come from the submit function's environment (local) or its configuration (deployed)."""

from __future__ import annotations

import io
import json
import zipfile
from decimal import Decimal
from typing import Any

import boto3
import pytest
from PIL import Image

from tests.conftest import ENVIRONMENT, INBOX_BUCKET, JOBS_TABLE, REGION
from tests.unit.cli_target import moto_target, run_command
from upscale_cli import backfill_command
from upscale_cli.backfill import backfill
from upscale_cli.backfill_estimate import submit_settings
from upscale_cli.errors import StackNotFound
from upscale_cli.main import build_parser
from upscale_cli.output import Output
from upscaler.settings import Settings

PRESETS = {"print/": {"target-megapixels": 8, "output-format": "PNG"}, "web/": {"target-megapixels": 2}}
WITH_PRESETS = {**ENVIRONMENT, "UPSCALE_PRESETS": json.dumps(PRESETS)}


def jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(buffer, "JPEG")
    return buffer.getvalue()


def put(aws, key: str, body: bytes, metadata: dict[str, str] | None = None) -> None:
    aws.s3.put_object(Bucket=INBOX_BUCKET, Key=key, Body=body, Metadata=metadata or {})


def mixed_inbox(aws) -> None:
    put(aws, "inbox/a.jpg", jpeg(400, 300))  # defaults: 4 MP -> 1-4 MP
    put(aws, "inbox/print/poster.jpg", jpeg(600, 400))  # preset: 8 MP -> 5-8 MP
    put(aws, "inbox/print/small.jpg", jpeg(300, 200), {"target-megapixels": "3"})  # override wins: 1-4 MP
    put(aws, "inbox/web/banner.jpg", jpeg(500, 200))  # preset: 2 MP -> 1-4 MP
    put(aws, "inbox/notes.jpg", b"not an image")  # refused: notAnImage
    put(aws, "inbox/web/big.jpg", jpeg(2000, 1500))  # 3 MP, at or above the web/ preset's 2 MP: refused
    put(aws, "inbox/bad.jpg", jpeg(300, 200), {"target-megapixels": "12"})  # refused: invalidOverride


def run_dry(aws, settings: Settings, prefix: str = "inbox/"):
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="ingest-estimate")["QueueUrl"]
    return backfill(aws.s3, sqs, aws.dynamodb, bucket=INBOX_BUCKET, prefix=prefix, queue_url=url,
                    jobs_table=JOBS_TABLE, dry_run=True, settings=settings)  # fmt: skip


def test_each_new_object_is_priced_by_the_tier_of_the_options_it_would_get(aws):
    mixed_inbox(aws)
    estimate = run_dry(aws, Settings.from_environment(WITH_PRESETS)).estimate
    assert estimate is not None
    assert estimate.would_send == 4
    assert estimate.would_refuse == {"notAnImage": 1, "alreadyAtTarget": 1, "invalidOverride": 1}
    assert {tier.tier: tier.images for tier in estimate.tiers} == {"1-4 MP": 3, "5-8 MP": 1}
    assert estimate.usd == Decimal("0.025")  # 3 x $0.005 + 1 x $0.01
    assert estimate.presets == {"print/": 2, "web/": 1, "(none)": 1}


def test_without_presets_the_same_objects_get_the_defaults(aws):
    mixed_inbox(aws)
    estimate = run_dry(aws, Settings.from_environment(ENVIRONMENT)).estimate
    assert estimate is not None
    # big.jpg (3 MP) is below the 4 MP default: sent; every image is in the 1-4 MP tier.
    assert (estimate.would_send, estimate.usd) == (5, Decimal("0.025"))
    assert estimate.presets == {"(none)": 5}


def test_a_real_backfill_estimates_nothing(aws):
    mixed_inbox(aws)
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="ingest-real")["QueueUrl"]
    settings = Settings.from_environment(ENVIRONMENT)
    report = backfill(aws.s3, sqs, aws.dynamodb, bucket=INBOX_BUCKET, prefix="inbox/", queue_url=url,
                      jobs_table=JOBS_TABLE, dry_run=False, settings=settings)  # fmt: skip
    assert report.estimate is None and report.enqueued == 7


def run_command_line(*argv: str, **names: Any) -> tuple[int, str]:
    stream = io.StringIO()
    args = build_parser().parse_args(["backfill", *argv])
    return run_command(lambda: backfill_command.run(args, moto_target(**names), Output(stream=stream)), stream)


def test_the_dry_run_prints_the_estimate_by_tier(aws):
    mixed_inbox(aws)
    url = boto3.client("sqs", region_name=REGION).create_queue(QueueName="ingest")["QueueUrl"]
    code, text = run_command_line("--dry-run", ingest_queue_url=url, submit_environment=WITH_PRESETS)
    assert code == 0
    assert text.splitlines()[1:] == [
        "  of the 7 new: 4 would be sent to Runware, 3 refused (alreadyAtTarget 1, invalidOverride 1, notAnImage 1)",
        "  options by folder preset: (none) 1, print/ 2, web/ 1",
        "  estimated Runware cost: $0.025 = 3 at 1-4 MP x $0.005 + 1 at 5-8 MP x $0.01",
    ]


def zipped_handler() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return event\n")
    return buffer.getvalue()


def test_a_deployed_stack_s_settings_are_its_submit_function_s_configuration(aws):
    role = boto3.client("iam", region_name=REGION).create_role(
        RoleName="submit", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )["Role"]["Arn"]
    variables = {name: value for name, value in WITH_PRESETS.items() if not name.startswith("AWS_")}
    boto3.client("lambda", region_name=REGION).create_function(
        FunctionName="upscale-submit", Runtime="python3.13", Role=role, Handler="app.lambda_handler",
        Code={"ZipFile": zipped_handler()}, Environment={"Variables": variables},
    )  # fmt: skip
    settings = submit_settings(moto_target(submit_function="upscale-submit"))
    assert settings.options_for("inbox/print/a.jpg", {})[1] == "print/"


def test_without_a_submit_function_the_dry_run_says_what_it_lacks(aws):
    with pytest.raises(StackNotFound, match="no submit function output"):
        submit_settings(moto_target())
