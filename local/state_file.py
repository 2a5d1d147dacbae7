"""The running local stack's state file: where `python -m local up` writes its endpoints and resource
names, and how a command (`s3-upscale --local`) finds that stack again.

The one definition of the path: `.local-stack/state.json` at the repository root whatever the working
directory, or the file S3_UPSCALE_LOCAL_STATE names (tests point it elsewhere). Standard library only,
so reading it needs none of the local stack's own packages.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from local.stack import LocalStack

STATE_FILE_VARIABLE = "S3_UPSCALE_LOCAL_STATE"
DEFAULT_STATE_FILE = Path(__file__).resolve().parent.parent / ".local-stack" / "state.json"


def state_file_path() -> Path:
    return Path(os.environ.get(STATE_FILE_VARIABLE) or DEFAULT_STATE_FILE)


def stack_state(stack: LocalStack) -> dict[str, Any]:
    """What a command needs to reach a started stack: its endpoints, the functions' environment, its names."""
    return {
        "aws_endpoint": stack.aws_endpoint,
        "runware_url": stack.emulator.url if stack.emulator else "",
        "environment": stack.environment,
        **stack.names,
    }


def write_state(stack: LocalStack) -> Path:
    """Record the stack as this process's (the pid tells a reader whether it still runs)."""
    path = state_file_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getpid(), **stack_state(stack)}, indent=2))
    return path


def running_stack_state() -> dict[str, Any] | None:
    """The state `python -m local up` wrote, if that stack still answers; None otherwise."""
    try:
        state: dict[str, Any] = json.loads(state_file_path().read_text())
    except (OSError, ValueError):
        return None
    if state.get("starting") or not state.get("aws_endpoint"):
        return None  # an `up` still starting: nothing to reach yet
    pid = state.get("pid")
    if isinstance(pid, int):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
    endpoint = urlparse(state.get("aws_endpoint", ""))
    try:
        with socket.create_connection((endpoint.hostname or "127.0.0.1", endpoint.port or 80), timeout=1):
            return state
    except OSError:
        return None


def claim(stack_owner_pid: int | None = None) -> dict[str, Any] | None:
    """Claim the state file for a starting `up`: None if claimed, else the state of the live `up`
    that holds it (running, or still starting: its process lives though its endpoint may not answer
    yet). A state left by a process that has ended is replaced."""
    path = state_file_path()
    pid = stack_owner_pid or os.getpid()
    try:
        held: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        held = {}
    owner = held.get("pid")
    if isinstance(owner, int) and owner != pid and _alive(owner):
        return held
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "starting": True}))
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
