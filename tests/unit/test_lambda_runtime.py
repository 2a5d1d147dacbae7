"""local.lambda_runtime: a handler module loaded from its template path and invoked like Lambda."""

from __future__ import annotations

import sys
import time

import pytest

from local.lambda_runtime import LAYER_PATH, LocalContext, LocalFunction, ensure_layer_on_path
from local.template import TEMPLATE_PATH, FunctionSpec, function_specs, load_template

HANDLER = """
import upscaler

loads = []
loads.append(1)


def handler(event, context):
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    return {"name": context.function_name, "arn": context.invoked_function_arn, "loads": len(loads),
            "remaining": context.get_remaining_time_in_millis(), "event": event}
"""


def spec(tmp_path, timeout: int = 30) -> FunctionSpec:
    (tmp_path / "fn").mkdir(exist_ok=True)
    (tmp_path / "fn" / "app.py").write_text(HANDLER, encoding="utf-8")
    return FunctionSpec("EchoFunction", str(tmp_path / "fn"), "app.handler", timeout, {}, {})


def test_the_layer_is_put_on_the_path_once(monkeypatch):
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry != str(LAYER_PATH)])
    ensure_layer_on_path()
    ensure_layer_on_path()
    assert sys.path.count(str(LAYER_PATH)) == 1 and sys.path[0] == str(LAYER_PATH)


def test_a_function_is_invoked_with_a_lambda_like_context(tmp_path):
    function = LocalFunction(spec(tmp_path), "s3-upscale-Echo")
    answer = function.invoke({"hello": "world"})
    assert answer["event"] == {"hello": "world"}
    assert answer["name"] == "s3-upscale-Echo"
    assert answer["arn"].endswith(":function:s3-upscale-Echo")
    assert 29_000 < answer["remaining"] <= 30_000
    assert (function.invocations, function.errors) == (1, 0)


def test_an_error_is_raised_and_counted(tmp_path):
    function = LocalFunction(spec(tmp_path), "Echo")
    with pytest.raises(RuntimeError, match="asked to fail"):
        function.invoke({"fail": True})
    function.invoke({})
    assert (function.invocations, function.errors) == (2, 1)


def test_each_local_function_loads_its_own_module(tmp_path):
    first, second = LocalFunction(spec(tmp_path), "A"), LocalFunction(spec(tmp_path), "B")
    assert first.module is not second.module
    assert first.invoke({})["loads"] == second.invoke({})["loads"] == 1


def test_the_remaining_time_runs_down_and_stops_at_zero():
    context = LocalContext(function_name="f", timeout_seconds=1)
    assert 900 < context.get_remaining_time_in_millis() <= 1000
    context._started = time.monotonic() - 5
    assert context.get_remaining_time_in_millis() == 0


def test_the_templates_functions_point_at_handlers_that_exist():
    specs = function_specs(load_template(TEMPLATE_PATH))
    assert {"SubmitFunction", "WebhookFunction", "ReconcileFunction"} <= set(specs)
    for function in specs.values():
        assert function.module_file.is_file(), function.logical_id
        assert f"def {function.handler_name}(" in function.module_file.read_text(encoding="utf-8")
