"""Every shell block of README.md and docs/*.md, run against the local stack with the real AWS CLI.

A ```bash block runs unless the line above its opening fence is one of these marks, with a reason:
  <!-- aws-only: REASON -->  the block needs a deployed stack (sam, s3-upscale without --local, ...)
  <!-- not-run: REASON -->   the block runs elsewhere (e.g. `make test`, which runs this test)
A marked block is only checked to be valid bash (`bash -n`). Every other block runs in file order
(README.md, then docs/*.md by name), each in its own bash (`set -eo pipefail`), in a directory that
holds the files the examples name (photo.jpg, logo.png, holiday/) and `.venv`, after the lines
`python -m local up` prints for another shell: the AWS settings, the `aws` wrapper and one `export`
line with every name the examples use. Nothing else is set for them. Between blocks the test waits
until the stack is idle. Shell code in a fence other than ```bash (sh, shell, console) is refused,
so no example escapes the test.

The block that reads a deployed stack's outputs (the one defining `out()`) is also run, against a
CloudFormation stack made in the local stack with the template's outputs: it must export the same
names, with the same values, as `python -m local up` prints.
"""

from __future__ import annotations

import json
import os
import re
import shlex
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

from local.cli import shell_setup
from local.stack import LOCAL_RUNWARE_KEY
from local.state_file import running_stack_state, state_file_path
from tests.integration.conftest import image_bytes

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
MARK = re.compile(r"^\s*<!-- (aws-only|not-run): (.+?) -->\s*$")
FENCE = re.compile(r"^( *)```(\w*)\s*$")
SHELL_FENCES = {"sh", "shell", "console", "zsh"}
# What only a deployed stack has: an aws-only block must use one of them.
NEEDS_AWS = re.compile(
    r"\bsam (build|deploy|delete)\b|\bs3-upscale (?!--local)\w|cloudformation describe-stacks"
    r"|put-bucket-notification-configuration|\baws lambda invoke\b"
)
OUTPUTS_BLOCK = "out() {"


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence
    text: str
    mark: str  # "" (run), "aws-only" or "not-run"
    reason: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)} line {self.line}"


def shell_blocks(path: Path) -> list[Block]:
    """The ```bash blocks of a markdown file (indented ones in lists too), with the mark above each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        indent, language = fence.group(1), fence.group(2)
        end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
        assert language not in SHELL_FENCES, f"{path.name} line {index + 1}: shell code goes in a ```bash block"
        if language == "bash":
            body = "\n".join(line.removeprefix(indent) for line in lines[index + 1 : end]) + "\n"
            mark = MARK.match(lines[index - 1]) if index else None
            blocks.append(
                Block(path, index + 1, body, mark.group(1) if mark else "", mark.group(2).strip() if mark else "")
            )
        index = end + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in DOCUMENTS for block in shell_blocks(path)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def running_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], str]]:
    """The running `make up` stack and "" (its banner is not ours to read), or one started here exactly as
    `make up` starts it, and what it printed."""
    state = running_stack_state()
    if state is not None:
        yield state, ""
        return
    banner = tmp_path_factory.mktemp("up") / "banner.txt"
    with banner.open("w") as printed:
        process = subprocess.Popen(
            [sys.executable, "-m", "local", "up", "--aws-port", str(_free_port())],
            cwd=ROOT, stdout=printed, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while (state := running_stack_state()) is None or state.get("pid") != process.pid:
                assert process.poll() is None, "python -m local up exited"
                assert time.monotonic() < deadline, "python -m local up did not write its state file"
                time.sleep(0.2)
            while "then, for example" not in banner.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            yield state, banner.read_text()
        finally:
            process.terminate()
            process.wait(timeout=30)
    assert not state_file_path().exists(), "python -m local up leaves no state file behind"


def _client(state: dict[str, Any], service: str) -> Any:
    return boto3.client(
        service, endpoint_url=state["aws_endpoint"], region_name="us-east-1", aws_access_key_id="local",
        aws_secret_access_key="local", config=Config(s3={"addressing_style": "path"}),
    )  # fmt: skip


def _queue_arn(state: dict[str, Any], url: str) -> str:
    attributes = _client(state, "sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def _cloudformation_stack(state: dict[str, Any], name: str) -> None:
    """A stack carrying the template's outputs, so the block that reads a deployed stack's outputs runs."""
    outputs = {
        "InboxBucketName": state["inbox_bucket"],
        "InboxPrefix": state["inbox_prefix"],
        "OutputBucketName": state["output_bucket"],
        "JobsTableName": state["jobs_table"],
        "RunwareApiKeySecretArn": state["environment"]["RUNWARE_API_KEY_SECRET"],
        "IngestQueueUrl": state["ingest_queue_url"],
        "IngestQueueArn": _queue_arn(state, state["ingest_queue_url"]),
        "SubmitDeadLetterQueueUrl": state["dlq_url"],
        "SubmitDeadLetterQueueArn": _queue_arn(state, state["dlq_url"]),
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
        # Items without a status are not jobs (the day's spend counter, the intake pause).
        items.extend(item for item in page["Items"] if "status" in item)
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


def _workspace(path: Path) -> None:
    """The files the examples name, in the directory they run in, and `.venv` beside them."""
    (path / "photo.jpg").write_bytes(image_bytes(400, 300))
    (path / "photo.png").write_bytes(image_bytes(300, 300, "PNG"))
    (path / "logo.png").write_bytes(image_bytes(320, 320, "PNG"))
    (path / "holiday").mkdir()
    (path / "holiday" / "beach.jpg").write_bytes(image_bytes(360, 240))
    (path / "holiday" / "hills.jpg").write_bytes(image_bytes(300, 200))
    (path / ".venv").symlink_to(BIN.parent)


def _exported(lines: list[str]) -> dict[str, str]:
    """The names and values the setup's `export` lines set."""
    values: dict[str, str] = {}
    for line in lines:
        if line.startswith("export "):
            values.update(word.split("=", 1) for word in shlex.split(line.removeprefix("export ")))
    return values


def _environment() -> dict[str, str]:
    # No AWS settings of this process: the printed setup lines must be enough.
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AWS_PAGER": "",
    }


def _run(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=_environment(), input=f"{LOCAL_RUNWARE_KEY}\n",
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_documented_blocks_run_against_the_local_stack(
    running_stack: tuple[dict[str, Any], str], tmp_path: Path
) -> None:
    state, banner = running_stack
    assert shutil.which("aws", path=str(BIN)), "the AWS CLI from requirements-dev.txt"
    setup = shell_setup(state, _queue_arn(state, state["dlq_url"]))
    if banner:  # started here: the lines it printed are the ones used below
        printed = [line.strip() for line in banner.splitlines()]
        assert all(line in printed for line in setup), f"python -m local up printed:\n{banner}"
    names = _exported(setup)
    assert {"INBOX_BUCKET", "JOBS_TABLE", "INGEST_QUEUE_URL", "DLQ_URL", "DLQ_ARN"} <= set(names)
    _workspace(tmp_path)
    _cloudformation_stack(state, "s3-upscale")
    prelude = "set -eo pipefail\n" + "".join(line + "\n" for line in setup)
    ran, parsed = [], []
    for block in all_blocks():
        if block.mark and OUTPUTS_BLOCK not in block.text:
            parsed.append(block)
            continue
        script = prelude + block.text
        if OUTPUTS_BLOCK in block.text:  # a deployed stack's outputs, read from the stack made above
            script += "\necho __NAMES__\n" + "".join(f'printf "%s\\n" "{name}=${{{name}-}}"\n' for name in names)
        result = _run(script, tmp_path)
        assert result.returncode == 0, f"{block}:\n{block.text}\n{result.stdout}\n{result.stderr}"
        if OUTPUTS_BLOCK in block.text:
            after = dict(line.split("=", 1) for line in result.stdout.split("__NAMES__\n", 1)[1].splitlines())
            assert after == names, f"{block} sets other values than python -m local up prints"
        ran.append(block)
        _settle(state)
    print(f"blocks run: {len(ran)}; only parsed (marked): {len(parsed)}")
    for block in ran:
        print(f"  ran    {block}")
    assert len(ran) >= 14, f"only {len(ran)} documented blocks ran"
    assert secret_value(state) == LOCAL_RUNWARE_KEY


def secret_value(state: dict[str, Any]) -> str:
    secret = state["environment"]["RUNWARE_API_KEY_SECRET"]
    return str(_client(state, "secretsmanager").get_secret_value(SecretId=secret)["SecretString"])


def test_every_block_is_valid_bash() -> None:
    for block in all_blocks():
        result = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{block}:\n{block.text}\n{result.stderr}"


def test_every_block_that_is_not_run_says_why() -> None:
    """A block is run above or visibly marked with a reason; an aws-only block really needs a deployment."""
    blocks = all_blocks()
    for block in blocks:
        if block.mark:
            assert len(block.reason) > 10, f"{block}: say why after the mark"
        if block.mark == "aws-only":
            assert NEEDS_AWS.search(block.text), f"{block} is marked aws-only but needs no deployed stack"
    assert sum(1 for block in blocks if not block.mark) >= 14


def test_the_readme_links_every_docs_file() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    index = readme[readme.index("## Documentation") :]
    for path in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{path.name})" in index, f"README.md's documentation index does not link docs/{path.name}"


def test_links_between_documents_point_at_files_and_headings_that_exist() -> None:
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            assert linked.exists(), f"{path.relative_to(ROOT)} links {target}: no such file"
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked.read_text(encoding="utf-8")), (
                    f"{path.relative_to(ROOT)} links {target}: no such heading"
                )


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_the_pictures_the_readme_shows_are_committed_pngs_of_reasonable_size() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pictures = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", readme)
    assert {"docs/images/demo-page.png", "docs/images/cli-status.png"} <= set(pictures)
    for picture in pictures:
        data = (ROOT / picture).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), f"{picture} is not a PNG"
        assert len(data) < 300 * 1024, f"{picture} is {len(data) // 1024} KiB; make screenshots keeps them smaller"
