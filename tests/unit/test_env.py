"""`env` (upscale_cli/env.py): the stack's names as export lines a shell can eval."""

from __future__ import annotations

import io
import json
import shlex
import subprocess

from tests.unit.cli_target import moto_target
from upscale_cli import env
from upscale_cli.main import build_parser
from upscale_cli.output import Output
from upscale_cli.target import local_target_from_state

LOCAL_STATE = {
    "aws_endpoint": "http://127.0.0.1:4566",
    "inbox_bucket": "local-inbox",
    "inbox_prefix": "inbox/",
    "output_bucket": "local-output",
    "jobs_table": "local-jobs",
    "ingest_queue_url": "http://127.0.0.1:4566/123456789012/ingest",
    "dlq_url": "http://127.0.0.1:4566/123456789012/dlq",
    "environment": {"RUNWARE_API_KEY_SECRET": "arn:secret"},
}


def printed(target, as_json: bool = False) -> str:
    stream = io.StringIO()
    assert env.run(build_parser().parse_args(["env"]), target, Output(as_json=as_json, stream=stream)) == 0
    return stream.getvalue()


def evaluated(text: str) -> dict[str, str]:
    """What a shell has after eval'ing the lines (bash, with an empty environment)."""
    script = text + "\nenv -0"
    output = subprocess.run(["bash", "-c", script], env={}, capture_output=True, check=True).stdout.decode()
    pairs = (item.split("=", 1) for item in output.split("\0") if "=" in item)
    return {name: value for name, value in pairs if name not in ("PWD", "SHLVL", "_")}


def test_the_local_stack_exports_its_names_endpoint_and_dummy_credentials():
    variables = evaluated(printed(local_target_from_state(LOCAL_STATE)))
    assert variables == {
        "INBOX_BUCKET": "local-inbox",
        "INBOX_PREFIX": "inbox/",
        "OUTPUT_BUCKET": "local-output",
        "JOBS_TABLE": "local-jobs",
        "INGEST_QUEUE_URL": "http://127.0.0.1:4566/123456789012/ingest",
        "DLQ_URL": "http://127.0.0.1:4566/123456789012/dlq",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def test_a_deployed_stack_exports_its_outputs_and_region_and_names_what_it_lacks():
    text = printed(moto_target(ingest_queue_url="https://sqs/q"))
    variables = evaluated(text)
    assert variables["INBOX_BUCKET"] == "test-inbox" and variables["AWS_REGION"] == "eu-west-1"
    assert "AWS_ACCESS_KEY_ID" not in variables and "AWS_ENDPOINT_URL" not in variables
    assert "DLQ_URL" not in variables
    assert "# DLQ_URL: the stack has no SubmitDeadLetterQueueUrl output" in text.splitlines()


def test_values_are_quoted_for_the_shell():
    target = moto_target(inbox_prefix="my photos/$(rm -rf x)/")
    line = next(line for line in printed(target).splitlines() if line.startswith("export INBOX_PREFIX="))
    assert shlex.split(line) == ["export", "INBOX_PREFIX=my photos/$(rm -rf x)/"]


def test_as_json_a_plain_object():
    assert json.loads(printed(local_target_from_state(LOCAL_STATE), as_json=True))["JOBS_TABLE"] == "local-jobs"
