"""The README's shell blocks that talk to the stack, run against the local stack with the real AWS CLI.

Each ```bash block that calls `aws`, `sam`, `s3-upscale` or `python -m local` runs in its own bash
(`set -eo pipefail`), after a prelude that fills the documented variables (STACK, INBOX, PREFIX,
OUTPUT, TABLE, SECRET, DLQ, SUBMIT, JOB_ID, TARGET_ARN) from the local stack and exports what the
README's local-stack section exports; for blocks after "Deploy" the shell also holds what the
README's own block that defines `out()` and reads the stack's outputs left behind when it ran (its
`out` function, and the variables it set, checked to be the documented ones), as a reader's shell
would hold them. A block
the README marks `# deployed stack only` is not run. The local stack is the one `make up` runs, or
one this test starts with `python -m local up`; a CloudFormation stack with the template's outputs
is created in it, so the README's output-reading block runs too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from local.stack import LOCAL_RUNWARE_KEY
from local.state_file import running_stack_state, state_file_path
from tests.integration.conftest import image_bytes

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
DEPLOYED_ONLY = "# deployed stack only"
TALKS_TO_STACK = re.compile(r"(^|[\s;(|&/])(aws|sam|s3-upscale)\s|python -m local\b", re.MULTILINE)
VARIABLES = ("STACK", "INBOX", "PREFIX", "OUTPUT", "TABLE", "SECRET", "DLQ", "SUBMIT", "TARGET_ARN")
README_ENDPOINT = "http://127.0.0.1:4566"  # what the README's export line names; replaced by the real port


@dataclass
class Block:
    line: int
    text: str

    @property
    def deployed_only(self) -> bool:
        return any(line.strip().startswith(DEPLOYED_ONLY) for line in self.text.splitlines())

    @property
    def talks_to_stack(self) -> bool:
        code = "\n".join(line for line in self.text.splitlines() if not line.lstrip().startswith("#"))
        return bool(TALKS_TO_STACK.search(code))


def bash_blocks(markdown: str) -> list[Block]:
    blocks = []
    for match in re.finditer(r"^```bash\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL):
        blocks.append(Block(markdown[: match.start()].count("\n") + 1, match.group(1)))
    return blocks


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def running_stack() -> Iterator[dict[str, Any]]:
    """The running `make up` stack, or one started here exactly as `make up` starts it."""
    state = running_stack_state()
    if state is not None:
        yield state
        return
    with open(os.devnull, "w") as quiet:
        process = subprocess.Popen(
            [sys.executable, "-m", "local", "up", "--aws-port", str(_free_port())],
            cwd=ROOT, stdout=quiet, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while (state := running_stack_state()) is None or state.get("pid") != process.pid:
                assert process.poll() is None, "python -m local up exited"
                assert time.monotonic() < deadline, "python -m local up did not write its state file"
                time.sleep(0.2)
            yield state
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert not state_file_path().exists(), "python -m local up leaves no state file behind"


def _client(state: dict[str, Any], service: str) -> Any:
    return boto3.client(
        service, endpoint_url=state["aws_endpoint"], region_name="us-east-1", aws_access_key_id="local",
        aws_secret_access_key="local", config=Config(s3={"addressing_style": "path"}),
    )  # fmt: skip


def _cloudformation_stack(state: dict[str, Any], name: str) -> None:
    """A stack carrying the template's outputs, so the README's `aws cloudformation` block reads real ones."""
    sqs = _client(state, "sqs")

    def arn(url: str) -> str:
        return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])

    outputs = {
        "InboxBucketName": state["inbox_bucket"],
        "InboxPrefix": state["inbox_prefix"],
        "OutputBucketName": state["output_bucket"],
        "JobsTableName": state["jobs_table"],
        "RunwareApiKeySecretArn": state["environment"]["RUNWARE_API_KEY_SECRET"],
        "IngestQueueUrl": state["ingest_queue_url"],
        "IngestQueueArn": arn(state["ingest_queue_url"]),
        "SubmitDeadLetterQueueUrl": state["dlq_url"],
        "SubmitDeadLetterQueueArn": arn(state["dlq_url"]),
        "SubmitFunctionName": "s3-upscale-local-SubmitFunction",
        "WebhookUrl": state["webhook_url"],
        "CompletionEventBusName": "default",
    }
    cloudformation = _client(state, "cloudformation")
    if any(s["StackName"] == name for s in cloudformation.describe_stacks().get("Stacks", [])):
        cloudformation.delete_stack(StackName=name)
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))


def _jobs(state: dict[str, Any]) -> list[dict[str, Any]]:
    dynamodb = _client(state, "dynamodb")
    items: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=state["jobs_table"]):
        items.extend(page["Items"])
    return items


def _settle(state: dict[str, Any], timeout: float = 60.0) -> None:
    """Wait, as a user would, until uploads have their jobs and no job is in flight: the ingestion
    queue holds no message (S3 notifies it before the upload returns; a message leaves it once its
    invocation has written the job), then no job is CLAIMED or SUBMITTED."""
    sqs = _client(state, "sqs")
    counts = [f"ApproximateNumberOfMessages{kind}" for kind in ("", "NotVisible", "Delayed")]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queued = sqs.get_queue_attributes(QueueUrl=state["ingest_queue_url"], AttributeNames=counts)["Attributes"]
        jobs = _jobs(state)  # read after the queue: the jobs of every message gone from it are written
        in_flight = [job for job in jobs if job["status"]["S"] in ("CLAIMED", "SUBMITTED")]
        if not any(int(value) for value in queued.values()) and not in_flight:
            return
        time.sleep(0.2)


def _newest_job_id(state: dict[str, Any], key: str) -> str:
    jobs = [job for job in _jobs(state) if job["sourceKey"]["S"] == key]
    jobs.sort(key=lambda job: job["createdAt"]["S"])
    return jobs[-1]["jobId"]["S"] if jobs else ""


def _workspace(path: Path) -> None:
    """The files the README's commands name, in the directory they run in, and `.venv` beside them."""
    (path / "photo.jpg").write_bytes(image_bytes(400, 300))
    (path / "photo.png").write_bytes(image_bytes(300, 300, "PNG"))
    (path / "logo.png").write_bytes(image_bytes(320, 320, "PNG"))
    (path / "holiday").mkdir()
    (path / "holiday" / "beach.jpg").write_bytes(image_bytes(360, 240))
    (path / "holiday" / "hills.jpg").write_bytes(image_bytes(300, 200))
    (path / ".venv").symlink_to(BIN.parent)


def test_readme_blocks_run_against_the_local_stack(running_stack: dict[str, Any], tmp_path: Path) -> None:
    state = running_stack
    assert shutil.which("aws", path=str(BIN)), "the AWS CLI from requirements-dev.txt"
    _workspace(tmp_path)
    _cloudformation_stack(state, "s3-upscale")
    filled = {
        "STACK": "s3-upscale",
        "INBOX": state["inbox_bucket"],
        "PREFIX": state["inbox_prefix"],
        "OUTPUT": state["output_bucket"],
        "TABLE": state["jobs_table"],
        "SECRET": state["environment"]["RUNWARE_API_KEY_SECRET"],
        "DLQ": state["dlq_url"],
        "SUBMIT": "s3-upscale-local-SubmitFunction",
    }
    # No AWS settings of this process: the README's own export lines must be enough.
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AWS_PAGER": "",
    }
    readme = README.read_text()
    # The local-stack section's setup lines: the AWS settings it exports and its `aws` wrapper.
    exports = [line for line in readme.splitlines() if re.match(r"export AWS_[A-Z_]+=|aws\(\) \{", line)]
    assert len(exports) == 2, "the README's local-stack section exports the AWS settings and wraps aws"
    exported = "".join(line.replace(README_ENDPOINT, state["aws_endpoint"]) + "\n" for line in exports)
    target_queue = _client(state, "sqs").create_queue(QueueName="readme-rule-target")["QueueUrl"]
    filled["TARGET_ARN"] = _client(state, "sqs").get_queue_attributes(
        QueueUrl=target_queue, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    blocks = [block for block in bash_blocks(readme) if block.talks_to_stack]
    outputs_block = next(block for block in blocks if "out() {" in block.text)
    ran, skipped = [], []
    outputs_shell = ""  # what the outputs block leaves in a reader's shell: its `out` function
    for block in blocks:
        if block.deployed_only:
            skipped.append(block.line)
            continue
        job_id = _newest_job_id(state, f"{state['inbox_prefix']}photo.jpg")
        prelude = "set -eo pipefail\n" + "".join(f"{name}={_quote(value)}\n" for name, value in filled.items())
        prelude += f"JOB_ID={_quote(job_id)}\n" + exported
        if block.line > outputs_block.line:
            # What a reader's shell holds from "Deploy" on: the stack's name and outputs (the values the
            # outputs block was checked to set, in the prelude) and its out() function.
            assert outputs_shell, "the outputs block ran before the blocks after it"
            prelude += outputs_shell
        script = prelude + block.text.replace(README_ENDPOINT, state["aws_endpoint"])
        if block is outputs_block:
            script += "\necho __FUNCTIONS__\ndeclare -f out"
        script += "\necho __VARIABLES__\n" + "".join(f'printf "%s\\n" "{name}=${{{name}-}}"\n' for name in VARIABLES)
        result = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, env=environment, input=f"{LOCAL_RUNWARE_KEY}\n",
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"README.md line {block.line}:\n{block.text}\n{result.stdout}\n{result.stderr}"
        output, variables = result.stdout.split("__VARIABLES__\n", 1)
        after = dict(line.split("=", 1) for line in variables.splitlines())
        assert after == filled, f"README.md line {block.line} sets the documented variables to other values"
        if block is outputs_block:
            outputs_shell = output.split("__FUNCTIONS__\n", 1)[1]
            assert outputs_shell.startswith("out ()"), f"README.md line {block.line} defines no out(): {output}"
        ran.append(block.line)
        _settle(state)
    print(f"README blocks run: {len(ran)} (lines {ran}); deployed stack only: {len(skipped)} (lines {skipped})")
    assert len(ran) >= 8, f"only {len(ran)} README blocks ran"
    assert secret_value(state) == LOCAL_RUNWARE_KEY


def secret_value(state: dict[str, Any]) -> str:
    secret = state["environment"]["RUNWARE_API_KEY_SECRET"]
    return str(_client(state, "secretsmanager").get_secret_value(SecretId=secret)["SecretString"])


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def test_every_block_that_is_not_run_says_why() -> None:
    """A stack-talking block is either run above or visibly marked, and the marks are few and honest."""
    blocks = [block for block in bash_blocks(README.read_text()) if block.talks_to_stack]
    marked = [block for block in blocks if block.deployed_only]
    for block in marked:
        reason = next(line for line in block.text.splitlines() if line.strip().startswith(DEPLOYED_ONLY))
        assert len(reason.strip()) > len(DEPLOYED_ONLY) + 5, f"README.md line {block.line}: say why, after the mark"
        assert re.search(r"\b(sam (deploy|delete|build)|aws lambda invoke)\b", block.text), (
            f"README.md line {block.line} is marked deployed-only but runs nothing that needs a deployment"
        )
    assert len(blocks) - len(marked) >= 8
