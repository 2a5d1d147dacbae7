"""Running the real handlers in this process the way Lambda runs them.

A function's module is loaded from the path its template Handler names, once per stack (so each
stack gets fresh module-level clients), and invoked with a Lambda-like context.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import uuid
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from local.template import TEMPLATE_PATH, FunctionSpec

LAYER_PATH = TEMPLATE_PATH.parent / "layers" / "common"


def ensure_layer_on_path() -> None:
    """Lambda puts a Python layer's content on sys.path; locally the layer's source folder is it."""
    if str(LAYER_PATH) not in sys.path:
        sys.path.insert(0, str(LAYER_PATH))


@dataclass
class LocalContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    timeout_seconds: int
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


class LocalFunction:
    def __init__(self, spec: FunctionSpec, name: str) -> None:
        self.spec = spec
        self.name = name
        self.module = self._load(spec)
        self.handler = getattr(self.module, spec.handler_name)
        self.invocations = 0
        self.errors = 0

    @staticmethod
    def _load(spec: FunctionSpec) -> ModuleType:
        ensure_layer_on_path()
        module_name = f"local_function_{spec.logical_id}_{uuid.uuid4().hex[:8]}"
        loader_spec = importlib.util.spec_from_file_location(module_name, spec.module_file)
        if loader_spec is None or loader_spec.loader is None:
            raise ImportError(f"cannot load {spec.module_file}")
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
        return module

    def invoke(self, event: dict[str, Any]) -> Any:
        self.invocations += 1
        context = LocalContext(function_name=self.name, timeout_seconds=self.spec.timeout_seconds)
        try:
            return self.handler(event, context)
        except Exception:
            self.errors += 1
            raise
