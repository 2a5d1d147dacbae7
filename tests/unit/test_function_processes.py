"""A function run in processes of its own (local.function_processes): each invocation in a worker
process that loaded the handler once with the stack's environment; answers and errors come back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from local.function_processes import FunctionProcesses
from local.template import FunctionSpec

HANDLER = """
import os

LOADED_IN = os.getpid()


def lambda_handler(event, context):
    if event.get("fail"):
        raise ValueError("the handler failed")
    return {"pid": os.getpid(), "loadedIn": LOADED_IN, "setting": os.environ.get("LOCAL_PROCESS_SETTING"),
            "timeout": context.get_remaining_time_in_millis() > 0}
"""


def test_invocations_run_in_worker_processes_with_the_stack_environment(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(HANDLER)
    spec = FunctionSpec("ProbeFunction", str(tmp_path), "app.lambda_handler", 30, {}, {})
    processes = FunctionProcesses(spec, "probe", 2, {"LOCAL_PROCESS_SETTING": "from-the-stack"})
    try:
        answers = [processes.invoke({"n": n}) for n in range(4)]
        with pytest.raises(ValueError, match="the handler failed"):
            processes.invoke({"fail": True})
    finally:
        processes.stop()

    assert {answer["setting"] for answer in answers} == {"from-the-stack"}
    assert all(answer["pid"] != os.getpid() for answer in answers), "not in this process"
    assert all(answer["pid"] == answer["loadedIn"] for answer in answers), "the module is loaded in its worker"
    assert len({answer["pid"] for answer in answers}) <= 2
    assert all(answer["timeout"] for answer in answers)
    assert (processes.invocations, processes.errors) == (5, 1)
