"""`download` (upscale_cli/download.py): a job's output, by job id or inbox key, to a local path."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import OUTPUT_BUCKET
from tests.unit.cli_target import add_job, moto_target, run_command
from upscale_cli import download
from upscale_cli.main import build_parser
from upscale_cli.output import Output

START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def run(*argv: str, as_json: bool = False) -> tuple[int, str]:
    stream = io.StringIO()
    args = build_parser().parse_args(["download", *argv])
    return run_command(lambda: download.run(args, moto_target(), Output(as_json=as_json, stream=stream)), stream)


def completed(aws, name: str, body: bytes) -> str:
    key = f"upscaled/{name}.jpg"
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=key, Body=body)
    put = aws.s3.put_object(Bucket="test-inbox", Key=f"inbox/{name}.png", Body=b"src")
    return add_job(moto_target(), f"inbox/{name}.png", "COMPLETED", START, version=put["VersionId"],
                   outputBucket=OUTPUT_BUCKET, outputKey=key)  # fmt: skip


def test_by_job_id_into_a_directory(aws, tmp_path):
    job_id = completed(aws, "cat", b"the cat output")
    code, text = run(job_id, "--to", str(tmp_path))
    assert code == 0
    assert (tmp_path / "cat.jpg").read_bytes() == b"the cat output"
    assert text == f"s3://{OUTPUT_BUCKET}/upscaled/cat.jpg -> {tmp_path / 'cat.jpg'} (14 bytes)\n"


def test_by_key_to_a_file_name_and_several_as_json(aws, tmp_path):
    completed(aws, "dog", b"dog")
    completed(aws, "owl", b"owl!")
    code, _ = run("dog.png", "--to", str(tmp_path / "named.jpg"))
    assert code == 0 and (tmp_path / "named.jpg").read_bytes() == b"dog"
    code, text = run("inbox/dog.png", "owl.png", "--to", str(tmp_path / "both"), as_json=True)
    assert code == 0
    assert [Path(item["path"]).name for item in json.loads(text)] == ["dog.jpg", "owl.jpg"]


def test_a_job_without_output_or_no_job_is_exit_1_and_nothing_is_written(aws, tmp_path):
    # An ended job is found by its id (or by the key of an object still in the inbox).
    job_id = add_job(moto_target(), "inbox/bad.png", "FAILED", START, errorCode="invalidImage")
    code, text = run(job_id, "--to", str(tmp_path))
    assert code == 1 and "is FAILED (invalidImage): no output to download" in text
    code, text = run("never.png", "--to", str(tmp_path))
    assert (code, text) == (1, "no job for never.png in stack test (moto)\n")
    assert list(tmp_path.iterdir()) == []
