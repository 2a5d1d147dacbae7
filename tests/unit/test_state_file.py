"""The local stack's state file (local/state_file.py): where it is, what it holds, and when it is stale."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from local.state_file import (
    DEFAULT_STATE_FILE,
    STATE_FILE_VARIABLE,
    running_stack_state,
    stack_state,
    state_file_path,
    write_state,
)


@dataclass
class Emulator:
    url: str


@dataclass
class StartedStack:
    """What write_state reads of a started LocalStack: its endpoint, emulator, environment and names."""

    aws_endpoint: str
    emulator: Emulator | None = None
    environment: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def state_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "nested" / "state.json"
    monkeypatch.setenv(STATE_FILE_VARIABLE, str(path))
    return path


@pytest.fixture
def listening() -> Iterator[str]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_the_path_is_the_repository_default_unless_the_variable_names_another(monkeypatch, tmp_path):
    monkeypatch.delenv(STATE_FILE_VARIABLE, raising=False)
    assert state_file_path() == DEFAULT_STATE_FILE
    assert Path(__file__).resolve().parents[2] / ".local-stack" / "state.json" == DEFAULT_STATE_FILE
    monkeypatch.setenv(STATE_FILE_VARIABLE, "")
    assert state_file_path() == DEFAULT_STATE_FILE, "an empty variable is no path"
    monkeypatch.setenv(STATE_FILE_VARIABLE, str(tmp_path / "elsewhere.json"))
    assert state_file_path() == tmp_path / "elsewhere.json"


def test_the_state_names_endpoints_environment_and_resources():
    stack = StartedStack("http://127.0.0.1:1", Emulator("http://127.0.0.1:2"), {"A": "1"}, {"jobs_table": "jobs"})
    assert stack_state(stack) == {
        "aws_endpoint": "http://127.0.0.1:1",
        "runware_url": "http://127.0.0.1:2",
        "environment": {"A": "1"},
        "jobs_table": "jobs",
    }
    assert stack_state(StartedStack("http://127.0.0.1:1"))["runware_url"] == ""


def test_a_written_state_is_read_back_while_its_stack_answers(state_path, listening):
    stack = StartedStack(listening, Emulator("http://127.0.0.1:9"), {"JOBS_TABLE": "jobs"}, {"inbox_bucket": "in"})
    assert write_state(stack) == state_path
    written = json.loads(state_path.read_text())
    assert written["pid"] == os.getpid()
    assert running_stack_state() == written
    assert written["inbox_bucket"] == "in" and written["aws_endpoint"] == listening


def test_a_stack_that_no_longer_answers_has_no_state(state_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"  # bound, never listening: refused
        write_state(StartedStack(endpoint))
        assert state_path.exists()
        assert running_stack_state() is None


def test_a_state_whose_process_has_ended_is_stale_even_if_the_port_answers(state_path, listening):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    state_path.parent.mkdir(parents=True)
    state_path.write_text(json.dumps({"pid": int(ended.stdout), "aws_endpoint": listening}))
    assert running_stack_state() is None


def test_no_file_or_an_unreadable_one_is_no_state(state_path):
    assert running_stack_state() is None
    state_path.parent.mkdir(parents=True)
    state_path.write_text("{not json")
    assert running_stack_state() is None


def test_a_starting_up_claims_the_file_and_a_second_sees_it_until_its_process_ends(state_path):
    from local.state_file import claim

    assert claim() is None, "nothing held: this process claims it"
    assert json.loads(state_path.read_text()) == {"pid": os.getpid(), "starting": True}
    assert running_stack_state() is None, "a claim is no stack to reach yet"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        state_path.write_text(json.dumps({"pid": other.pid, "starting": True}))
        assert claim() == {"pid": other.pid, "starting": True}, "a live claim is held"
    finally:
        other.kill()
        other.wait()
    assert claim() is None, "the claim of an ended process is replaced"
