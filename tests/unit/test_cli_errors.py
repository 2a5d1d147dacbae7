"""s3-upscale's answers to what it cannot do: one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import pytest

from upscale_cli.errors import UsageError
from upscale_cli.jobs_query import source_key
from upscale_cli.main import main
from upscale_cli.target import Target

AWS_SETTINGS = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL")


def test_a_deployed_stack_without_any_aws_region_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    for name in AWS_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))

    assert main(["--stack", "my-stack", "status"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("s3-upscale: no AWS region for stack 'my-stack': pass --region")


def test_a_key_in_another_bucket_is_a_usage_error_naming_the_inbox():
    target = Target("stack test", "inbox-bucket", "inbox/", "output-bucket", "jobs", "secret-arn")
    with pytest.raises(UsageError, match=r"s3://wrong-bucket/a.jpg is not in the inbox bucket s3://inbox-bucket/"):
        source_key(target, "s3://wrong-bucket/a.jpg")
