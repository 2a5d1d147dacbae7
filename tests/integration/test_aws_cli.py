"""The README's flow, driven with the AWS CLI against the local stack, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from local.stack import LocalStack
from tests.integration.conftest import image_bytes, wait_for_jobs

AWS_CLI = Path(sys.executable).with_name("aws")


def aws(stack: LocalStack, *args: str) -> str:
    environment = {
        **os.environ,
        "AWS_ENDPOINT_URL": stack.aws_endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = subprocess.run(
        [str(AWS_CLI), *args], env=environment, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_drop_and_read_results_with_the_aws_cli(stack: LocalStack, tmp_path: Path) -> None:
    source = tmp_path / "holiday photo.png"
    source.write_bytes(image_bytes(500, 400, "PNG"))
    inbox = f"s3://{stack.names['inbox_bucket']}/{stack.names['inbox_prefix']}"

    aws(stack, "s3", "cp", str(source), f"{inbox}cli/holiday photo.png", "--metadata", "target-megapixels=2")

    key = f"{stack.names['inbox_prefix']}cli/holiday photo.png"
    job_id = wait_for_jobs(stack, [key])[key]["jobId"]
    item = json.loads(
        aws(stack, "dynamodb", "get-item", "--table-name", stack.names["jobs_table"], "--key",
            json.dumps({"jobId": {"S": job_id}}))
    )["Item"]  # fmt: skip
    assert item["status"]["S"] == "COMPLETED"
    assert item["targetMegapixels"]["N"] == "2"

    # Ended: no longer in the open-jobs index (item["openShard"] is gone with it).
    assert "openShard" not in item and "openSince" not in item
    still_open = json.loads(
        aws(stack, "dynamodb", "query", "--table-name", stack.names["jobs_table"], "--index-name", "openJobs",
            "--key-condition-expression", "openShard = :n", "--expression-attribute-values", '{":n": {"N": "0"}}')
    )["Items"]  # fmt: skip
    assert job_id not in {entry["jobId"]["S"] for entry in still_open}

    listing = aws(stack, "s3", "ls", f"s3://{stack.names['output_bucket']}/", "--recursive")
    output_key = item["outputKey"]["S"]
    assert output_key in listing

    downloaded = tmp_path / "result.jpg"
    aws(stack, "s3", "cp", f"s3://{stack.names['output_bucket']}/{output_key}", str(downloaded))
    with Image.open(downloaded) as result:
        assert result.format == "JPEG"
        assert abs(result.width * result.height - 2_000_000) <= 40_000
