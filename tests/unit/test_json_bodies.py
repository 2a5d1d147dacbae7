"""Reading JSON so that one deeply nested value cannot make a whole Runware answer unreadable."""

from __future__ import annotations

import json

import pytest

from upscaler import json_bodies


def test_ordinary_json_reads_as_json_does():
    text = '{"data": [{"taskUUID": "a", "cost": 0.01, "tags": ["x", {"y": null}]}], "errors": []}'
    assert json_bodies.loads(text) == json.loads(text)


def test_a_value_nested_too_deep_reads_as_null_and_its_neighbours_survive():
    deep = '{"e":' * 5000 + "{}" + "}" * 5000
    text = f'{{"data": [{{"taskUUID": "a", "error": {deep}}}, {{"taskUUID": "b", "status": "success"}}]}}'
    with pytest.raises(RecursionError):
        json.loads(text)

    payload = json_bodies.loads(text.encode())

    first, second = payload["data"]
    assert second == {"taskUUID": "b", "status": "success"}
    assert first["taskUUID"] == "a"
    depth, value = 0, first["error"]
    while isinstance(value, dict):
        depth, value = depth + 1, value["e"]
    assert value is None and depth < json_bodies.MAX_DEPTH


def test_brackets_inside_strings_do_not_count_as_nesting():
    deep = "[" * 3000 + "]" * 3000
    text = '{"data": [{"message": "[[[{{{ \\" ]]]", "deep": ' + deep + "}]}"
    payload = json_bodies.loads(text)
    assert payload["data"][0]["message"] == '[[[{{{ " ]]]'
