"""What a command asked for cannot be done (upscale_cli/errors.py): one line on stderr, exit status 2."""

from __future__ import annotations

from tests.conftest import REGION
from tests.unit.cli_target import STACK_OUTPUTS, deploy_stack
from upscale_cli.errors import UsageError
from upscale_cli.main import main


def test_a_usage_error_is_an_exception_that_carries_its_message():
    error = UsageError("s3://other/a.jpg is not in the inbox bucket")
    assert isinstance(error, Exception)
    assert str(error) == "s3://other/a.jpg is not in the inbox bucket"


def test_a_usage_error_of_a_command_is_one_line_on_stderr_and_exit_status_2(aws, capsys):
    deploy_stack("my-stack", STACK_OUTPUTS)
    assert main(["--stack", "my-stack", "--region", REGION, "job", "s3://another-bucket/inbox/a.jpg"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "s3-upscale: s3://another-bucket/inbox/a.jpg is not in the inbox bucket s3://test-inbox/ "
        f"of stack my-stack ({REGION})\n"
    )
