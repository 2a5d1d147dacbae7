"""template.yaml deploys in every partition: no hard-coded `arn:aws:` or `amazonaws.com`.

ARNs take `${AWS::Partition}` and hosts `${AWS::URLSuffix}`. The one exception is a service
principal (`Principal: {Service: lambda.amazonaws.com}`): service principals keep `amazonaws.com`
in China and GovCloud too (IAM refuses a `<service>.amazonaws.com.cn` principal as invalid).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"
SERVICE_PRINCIPAL = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*\.amazonaws\.com")


def _strings(node: yaml.Node, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str, int]]:
    """Every scalar of the document with the mapping keys above it and its line."""
    if isinstance(node, yaml.ScalarNode):
        yield path, str(node.value), node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _strings(item, path)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _strings(value, (*path, str(key.value)))


def check_partition_neutral(text: str) -> None:
    # compose() builds the node tree without constructing CloudFormation's !Sub/!Ref tags.
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    assert root is not None, "empty template"
    for path, value, line in _strings(root):
        assert "arn:aws:" not in value, f"line {line}: hard-coded partition in {value!r}; use arn:${{AWS::Partition}}:"
        if "amazonaws.com" in value:
            principal = path[-2:] == ("Principal", "Service") and SERVICE_PRINCIPAL.fullmatch(value)
            assert principal, f"line {line}: hard-coded domain in {value!r}; use ${{AWS::URLSuffix}}"


def test_template_is_partition_neutral() -> None:
    check_partition_neutral(TEMPLATE_PATH.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("original", "broken"),
    [
        ("arn:${AWS::Partition}:s3:::", "arn:aws:s3:::"),
        (".${AWS::URLSuffix}/webhook", ".amazonaws.com/webhook"),
        ("Principal: {Service: lambda.amazonaws.com}", "Principal: {Service: lambda.amazonaws.com.cn}"),
    ],
)
def test_check_catches_a_fixed_partition(original: str, broken: str) -> None:
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    assert original in text, f"the template no longer contains {original!r}; pick another regression"
    with pytest.raises(AssertionError, match="hard-coded"):
        check_partition_neutral(text.replace(original, broken, 1))
