"""s3-upscale's entry point (upscale_cli/main.py): options before or after the command, errors as one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.conftest import REGION
from tests.unit.cli_target import STACK_OUTPUTS, add_job, deploy_stack, moto_target
from upscale_cli.main import build_parser, main

AWS_SETTINGS = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL")


def test_a_deployed_stack_without_any_aws_region_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    for name in AWS_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))

    assert main(["--stack", "my-stack", "status"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("s3-upscale: no AWS region for stack 'my-stack': pass --region")


def test_the_target_options_go_before_or_after_the_command():
    parser = build_parser()
    before = parser.parse_args(["--json", "--stack", "s", "--region", "r", "status"])
    after = parser.parse_args(["status", "--json", "--stack", "s", "--region", "r"])
    for args in (before, after):
        assert (args.command, args.json, args.stack, args.region, args.local) == ("status", True, "s", "r", None)
    local = parser.parse_args(["job", "--local", "a.jpg"])
    assert (local.command, local.local, local.reference, local.stack, local.json) == ("job", True, "a.jpg", None, None)


def test_an_option_given_before_the_command_is_not_undone_after_it():
    args = build_parser().parse_args(["--json", "--stack", "s", "watch", "--once"])
    assert (args.json, args.stack, args.once) == (True, "s", True)


def test_a_stack_and_local_together_or_no_command_are_usage_errors(capsys):
    for argv in (["--stack", "s", "--local", "status"], ["status", "--stack", "s", "--local"], ["--stack", "s"]):
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args(argv)
        assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_every_command_is_offered():
    text = build_parser().format_help()
    for command in ("status", "job", "watch", "smoke", "redrive", "backfill", "set-key"):
        assert command in text


def test_no_stack_named_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.delenv("S3_UPSCALE_STACK", raising=False)
    assert main(["status"]) == 3
    captured = capsys.readouterr()
    assert captured.err == "s3-upscale: name the stack with --stack NAME (or S3_UPSCALE_STACK), or use --local\n"


def test_a_command_runs_against_the_named_stack_and_returns_its_exit_status(aws, capsys):
    deploy_stack("my-stack", STACK_OUTPUTS)
    add_job(moto_target(), "inbox/a.png", "SUBMITTED", datetime(2024, 3, 1, tzinfo=UTC))
    assert main(["--stack", "my-stack", "--region", REGION, "--json", "status", "--limit", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stack"] == f"stack my-stack ({REGION})"
    assert (report["total"], report["counts"]["SUBMITTED"]) == (1, 1)
    assert main(["--stack", "my-stack", "--region", REGION, "job", "never-uploaded.png"]) == 1
