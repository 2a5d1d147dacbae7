"""s3-upscale misused: every failure is one line on stderr, no traceback, and the exit status docs/cli.md gives."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from local import cli as local_cli
from local.state_file import STATE_FILE_VARIABLE
from tests.conftest import REGION
from tests.unit.cli_target import STACK_OUTPUTS, deploy_stack
from upscale_cli.errors import ExitStatus
from upscale_cli.main import main

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
AWS_SETTINGS = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL",
                "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "S3_UPSCALE_STACK")  # fmt: skip


def documented_statuses() -> dict[int, str]:
    """The exit status table of docs/cli.md: status -> meaning."""
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", DOCS.read_text(), flags=re.MULTILINE)
    return {int(status): meaning.strip() for status, meaning in rows}


def test_the_documented_table_is_the_code_table():
    assert set(documented_statuses()) == {int(status) for status in ExitStatus}


@pytest.fixture
def no_aws_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in AWS_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance metadata lookups
    monkeypatch.setenv(STATE_FILE_VARIABLE, str(tmp_path / "no-state.json"))


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _deployed(request: pytest.FixtureRequest, outputs: dict[str, str] | None = None) -> None:
    request.getfixturevalue("aws")
    deploy_stack("my-stack", STACK_OUTPUTS if outputs is None else outputs)


STACK = ["--stack", "my-stack", "--region", REGION]

# name -> (setup, argv, expected status, a phrase the line must hold)
MISUSES: dict[str, tuple[Callable[[pytest.FixtureRequest], None], list[str], ExitStatus, str]] = {
    "no stack named": (lambda r: None, ["status"], ExitStatus.NO_STACK, "name the stack with --stack"),
    "no region": (lambda r: None, ["--stack", "s", "status"], ExitStatus.NO_STACK, "no AWS region"),
    "no credentials": (lambda r: None, [*STACK, "status"], ExitStatus.AWS_DENIED, "no AWS credentials"),
    "wrong stack": (lambda r: r.getfixturevalue("aws"), ["--stack", "nope", "--region", REGION, "status"],
                    ExitStatus.NO_STACK, "no stack 'nope'"),
    "not this pipeline": (lambda r: _deployed(r, {"Other": "x"}), [*STACK, "status"], ExitStatus.NO_STACK,
                          "is it this pipeline"),
    "wrong bucket": (_deployed, [*STACK, "job", "s3://another-bucket/inbox/a.jpg"], ExitStatus.USAGE,
                     "is not in the inbox bucket"),
    "bad key reference": (_deployed, [*STACK, "download", "never-uploaded.jpg"], ExitStatus.NOT_DONE,
                          "no job for never-uploaded.jpg"),
    "stack without an ingestion queue": (_deployed, [*STACK, "backfill", "--prefix", "elsewhere/"], ExitStatus.NO_STACK,
                                 "no ingestion queue output"),
    "empty key": (_deployed, [*STACK, "set-key"], ExitStatus.USAGE, "no key given"),
    "no local stack": (lambda r: None, ["--local", "status"], ExitStatus.NO_STACK, "no local stack is running"),
    "no local stack for env": (lambda r: None, ["env", "--local"], ExitStatus.NO_STACK, "make up"),
    "events without a queue": (_deployed, [*STACK, "watch", "--events"], ExitStatus.USAGE, "--events needs --local"),
    "unknown option": (lambda r: None, ["status", "--bogus"], ExitStatus.USAGE, "unrecognized arguments: --bogus"),
    "unknown command": (lambda r: None, ["statsu"], ExitStatus.USAGE, "invalid choice: 'statsu'"),
    "stack and local": (lambda r: None, ["--stack", "s", "--local", "status"], ExitStatus.USAGE, "not allowed"),
    "bad number": (lambda r: None, ["status", "--limit", "ten"], ExitStatus.USAGE, "not a whole number: 'ten'"),
    "megapixels out of range": (lambda r: None, ["smoke", "--local", "--megapixels", "9"], ExitStatus.USAGE,
                                "must be a whole number from 1 to 8"),
    "negative limit": (lambda r: None, ["status", "--limit", "-1"], ExitStatus.USAGE, "of at least 0"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(MISUSES))
def test_a_misuse_is_one_line_and_its_documented_exit_status(name, request, no_aws_settings, capsys, monkeypatch):
    setup, argv, expected, phrase = MISUSES[name]
    if name == "no credentials":
        monkeypatch.setenv("AWS_REGION", REGION)
    setup(request)
    if name == "empty key":
        monkeypatch.setattr("sys.stdin", __import__("io").StringIO("\n"))
    status = main(argv)
    captured = capsys.readouterr()
    assert (status, captured.err.count("\n")) == (expected, 1), captured.err
    assert captured.err.startswith("s3-upscale"), captured.err
    assert phrase in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert int(expected) in documented_statuses()


def test_an_endpoint_that_does_not_answer_is_exit_5(no_aws_settings, monkeypatch, capsys, closed_port):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert main(["--stack", "s", "--region", REGION, "status"]) == ExitStatus.UNREACHABLE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("s3-upscale: cannot reach AWS"), err


def test_a_prefix_outside_the_inbox_is_a_usage_error(request, no_aws_settings, capsys):
    _deployed(request, {**STACK_OUTPUTS, "IngestQueueUrl": "https://sqs.eu-west-1.amazonaws.com/1/q"})
    assert main([*STACK, "backfill", "--prefix", "elsewhere/"]) == ExitStatus.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is outside the inbox" in err, err


def test_interrupted_by_sigint_is_exit_130_after_the_summary(request, no_aws_settings, capsys):
    _deployed(request)
    captured_stdout = sys.stdout  # capsys's buffer: the interrupt comes once watch is polling
    started = time.monotonic()

    def interrupt_once_watching() -> None:
        while "watching" not in captured_stdout.getvalue() and time.monotonic() - started < 60:
            time.sleep(0.05)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, to this process

    sender = threading.Thread(target=interrupt_once_watching, daemon=True)
    sender.start()
    status = main([*STACK, "watch", "--interval", "0.05"])
    sender.join()
    captured = capsys.readouterr()
    assert status == ExitStatus.INTERRUPTED == 130
    assert captured.out.splitlines()[-1] == "summary: no jobs"
    assert captured.err == "s3-upscale: interrupted\n"


@pytest.fixture
def running_stack_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, int]]:
    """A state file naming another live process and a port that answers: a stack `up` already runs."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        path = tmp_path / "state.json"
        path.write_text(json.dumps({"pid": other.pid, "aws_endpoint": endpoint, "runware_url": "http://x/v1"}))
        monkeypatch.setenv(STATE_FILE_VARIABLE, str(path))
        try:
            yield path, other.pid
        finally:
            other.kill()
            other.wait()


def test_a_second_up_names_the_running_stack_and_exits_7_at_once(running_stack_state, capsys):
    path, pid = running_stack_state
    assert local_cli.main(["up", "--aws-port", "0"]) == ExitStatus.ALREADY_RUNNING == 7
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "a local stack is already running" in err and str(path) in err
    assert f"pid {pid}" in err
    assert json.loads(path.read_text())["pid"] == pid, "the running stack's state file is left alone"


def test_a_second_up_while_the_first_is_still_starting_exits_7(tmp_path, monkeypatch, capsys):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = tmp_path / "state.json"
        path.write_text(json.dumps({"pid": other.pid, "starting": True}))
        monkeypatch.setenv(STATE_FILE_VARIABLE, str(path))
        assert local_cli.main(["up", "--aws-port", "0"]) == ExitStatus.ALREADY_RUNNING
    finally:
        other.kill()
        other.wait()
    assert "still starting" in capsys.readouterr().err


def test_up_on_a_port_another_program_holds_exits_7(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(STATE_FILE_VARIABLE, str(tmp_path / "none.json"))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert local_cli.main(["up", "--aws-port", str(port)]) == ExitStatus.ALREADY_RUNNING
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"port {port} on 127.0.0.1 is in use" in err, err


def test_fault_without_a_running_stack_is_exit_3(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(STATE_FILE_VARIABLE, str(tmp_path / "none.json"))
    assert local_cli.main(["fault", "401"]) == ExitStatus.NO_STACK
    assert capsys.readouterr().err.count("\n") == 1


def test_a_state_file_of_another_version_is_one_line_exit_3(running_stack_state, capsys):
    path, _ = running_stack_state  # names an endpoint, and none of the stack's resources
    assert main(["--local", "status"]) == ExitStatus.NO_STACK
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"the state file {path} lacks 'inbox_bucket'" in err, err
