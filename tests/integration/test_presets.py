"""Folder presets on the local stack (the session stack's are tests/integration/conftest.py's
INTEGRATION_PRESETS): each folder's output has its preset's format and size, metadata still wins, the
record names the preset; a bad document stops the stack at start; a backfill's estimate is the cost
the emulator then reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from local.stack import LocalStack
from tests.integration.conftest import drop, image_bytes, read_output, wait_for_jobs
from tests.stack_waits import wait_on_stack

CLI = Path(sys.executable).with_name("s3-upscale")
ROOT = Path(__file__).resolve().parents[2]


def within(actual: int, target: int, tolerance: float = 0.02) -> bool:
    return abs(actual - target) <= tolerance * target


def test_each_folder_gets_its_preset_and_metadata_still_overrides(stack: LocalStack) -> None:
    drops = {
        # key below the inbox prefix: (metadata, Pillow format, megapixels, preset named in the record)
        "presets-print/poster.jpg": ({}, "PNG", 8, "presets-print/"),
        "presets-web/banner.jpg": ({}, "WEBP", 2, "presets-web/"),
        "presets-web/thumbs/icon.jpg": ({}, "JPEG", 1, "presets-web/thumbs/"),
        "presets-print/proof.jpg": ({"output-format": "JPG", "target-megapixels": "3"}, "JPEG", 3, "presets-print/"),
    }
    keys = {name: drop(stack, name, image_bytes(480, 320), metadata) for name, (metadata, *_) in drops.items()}
    jobs = wait_for_jobs(stack, list(keys.values()))
    for name, (_, pillow_format, megapixels, preset) in drops.items():
        job = jobs[keys[name]]
        assert job["status"] == "COMPLETED", job
        image, _ = read_output(stack, job)
        assert image.format == pillow_format, name
        assert within(image.width * image.height, megapixels * 1_000_000), (name, image.size)
        assert (job["targetMegapixels"], job["preset"]) == (megapixels, preset), name
    assert jobs[keys["presets-web/banner.jpg"]]["outputQuality"] == 80
    assert jobs[keys["presets-web/thumbs/icon.jpg"]]["outputQuality"] == 70  # the longer prefix's preset


def test_an_image_its_preset_cannot_enlarge_is_rejected_and_the_record_names_the_preset(stack: LocalStack) -> None:
    key = drop(stack, "presets-web/large.jpg", image_bytes(2000, 1500))  # 3 MP; the preset asks for 2
    job = wait_for_jobs(stack, [key])[key]
    assert (job["status"], job["errorCode"], job["preset"]) == ("REJECTED", "alreadyAtTarget", "presets-web/")
    assert "above the target of 2 MP" in job["errorMessage"]


def test_an_object_outside_every_preset_gets_the_defaults_and_no_preset(stack: LocalStack) -> None:
    key = drop(stack, "presets-none/photo.jpg", image_bytes(480, 320))
    job = wait_for_jobs(stack, [key])[key]
    assert (job["status"], job["targetMegapixels"], job["outputFormat"]) == ("COMPLETED", 4, "JPG")
    assert "preset" not in job


@pytest.mark.parametrize("command", ["up", "demo"])
def test_a_bad_presets_document_stops_the_local_stack_at_start(command: str, tmp_path: Path) -> None:
    presets = tmp_path / "presets.json"
    presets.write_text(json.dumps({"print/": {"target-megapixel": 8, "output-format": "GIF"}}))
    arguments = ["--aws-port", "0"] if command == "up" else ["--out", str(tmp_path / "out")]
    environment = {**os.environ, "S3_UPSCALE_LOCAL_STATE": str(tmp_path / "state.json")}
    result = subprocess.run(
        [sys.executable, "-m", "local", command, "--presets", str(presets), *arguments],
        capture_output=True, text=True, timeout=120, check=False, env=environment, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"python -m local {command}: the stack would not deploy: UploadPresetsCheck failed: UploadPresets " \
           "refused: the presets document has 2 problems: " in result.stderr  # fmt: skip
    assert "did you mean 'target-megapixels'?" in result.stderr and "must be one of JPG, PNG, WEBP" in result.stderr
    assert not (tmp_path / "out").exists(), "nothing was dropped"
    assert not (tmp_path / "state.json").exists(), "no stack is left claiming the state file"


@contextmanager
def notifications_off(stack: LocalStack) -> Iterator[None]:
    """Objects put meanwhile make no event: objects that were in the bucket before the stack was."""
    s3, bucket = stack.client("s3"), stack.names["inbox_bucket"]
    configuration = s3.get_bucket_notification_configuration(Bucket=bucket)
    configuration.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    try:
        yield
    finally:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=configuration)


def cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "S3_UPSCALE_LOCAL_STATE": str(state)}
    return subprocess.run([str(CLI), "--local", *args], env=environment, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip


def test_the_backfill_estimate_is_the_cost_the_emulator_then_reports(stack: LocalStack, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"pid": os.getpid(), "aws_endpoint": stack.aws_endpoint,
                                 "environment": stack.environment, **stack.names}))  # fmt: skip
    objects: dict[str, tuple[bytes, dict[str, str]]] = {
        "estimate/photo.jpg": (image_bytes(400, 300), {}),  # the defaults: 4 MP
        "estimate/large/poster.jpg": (image_bytes(500, 400), {}),  # the estimate/large/ preset: 6 MP
        "estimate/large/proof.jpg": (image_bytes(300, 200), {"target-megapixels": "2"}),  # metadata wins: 2 MP
        "estimate/print.jpg": (image_bytes(300, 200, "PNG"), {"target-megapixels": "8"}),  # 8 MP
        "estimate/notes.jpg": (b"meeting notes, not an image", {}),  # refused: costs nothing
        "estimate/big.jpg": (image_bytes(2400, 1800), {}),  # 4.3 MP, above the 4 MP default: refused
    }
    with notifications_off(stack):
        keys = [drop(stack, name, body, metadata) for name, (body, metadata) in objects.items()]
    prefix = stack.names["inbox_prefix"] + "estimate/"

    dry = cli(state, "--json", "backfill", "--prefix", prefix, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    estimate: dict[str, Any] = json.loads(dry.stdout)["estimate"]
    assert (estimate["would_send"], estimate["would_refuse"]) == (4, {"notAnImage": 1, "alreadyAtTarget": 1})
    assert {tier["tier"]: tier["images"] for tier in estimate["tiers"]} == {"1-4 MP": 2, "5-8 MP": 2}
    text = cli(state, "backfill", "--prefix", prefix, "--dry-run").stdout
    assert "estimated Runware cost: $0.030 = 2 at 1-4 MP x $0.005 + 2 at 5-8 MP x $0.01" in text

    sent = cli(state, "--json", "backfill", "--prefix", prefix)
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["enqueued"] == len(objects)
    jobs = wait_for_jobs(stack, keys)
    wait_on_stack(stack, lambda: not stack.invocations_pending(), "the backfilled messages were never consumed")
    completed = [job for job in jobs.values() if job["status"] == "COMPLETED"]
    assert len(completed) == estimate["would_send"]
    assert sum((Decimal(str(job["cost"])) for job in completed), Decimal(0)) == Decimal(str(estimate["usd"]))
