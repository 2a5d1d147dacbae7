"""`set-key` (upscale_cli/set_key.py): the Runware key from stdin into the stack's secret, never echoed."""

from __future__ import annotations

import io
import json

from tests.unit.cli_target import moto_target, run_command
from upscale_cli import set_key
from upscale_cli.main import build_parser
from upscale_cli.output import Output


def run(monkeypatch, stdin: str, as_json: bool = False, **names: str) -> tuple[int, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    stream = io.StringIO()
    args = build_parser().parse_args(["set-key"])
    output = Output(as_json=as_json, stream=stream)
    return run_command(lambda: set_key.run(args, moto_target(**names), output), stream)


def test_the_key_read_from_stdin_becomes_the_secret_and_is_not_printed(aws, monkeypatch):
    code, text = run(monkeypatch, "  new-runware-key  \nsecond line\n")
    assert code == 0
    assert aws.secrets.get_secret_value(SecretId="runware-api-key")["SecretString"] == "new-runware-key"
    assert (
        text
        == "stored a new version of runware-api-key; the functions use it within 5 minutes (SECRET_CACHE_SECONDS)\n"
    )
    assert "new-runware-key" not in text


def test_as_json_the_new_version_is_named(aws, monkeypatch):
    code, text = run(monkeypatch, "another-key\n", as_json=True)
    report = json.loads(text)
    current = aws.secrets.describe_secret(SecretId="runware-api-key")["VersionIdsToStages"]
    assert code == 0 and report["secret"] == "runware-api-key"
    assert "AWSCURRENT" in current[report["versionId"]]


def test_an_empty_key_leaves_the_secret_unchanged(aws, monkeypatch):
    code, text = run(monkeypatch, "\n")
    assert (code, text) == (2, "no key given (an empty line): the secret is unchanged\n")
    assert aws.secrets.get_secret_value(SecretId="runware-api-key")["SecretString"] == "test-runware-key"


def test_a_stack_that_names_no_secret_is_exit_status_3(aws, monkeypatch):
    code, text = run(monkeypatch, "a-key\n", runware_secret="")
    assert (code, text) == (3, "stack test (moto) names no Runware key secret (RunwareApiKeySecretArn)\n")
