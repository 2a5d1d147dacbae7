"""What a command asked for cannot be done (upscale_cli/errors.py): one line on stderr, exit status 2."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from tests.conftest import JOBS_TABLE, REGION
from tests.unit.cli_target import STACK_OUTPUTS, deploy_stack
from upscale_cli.errors import ExitStatus, UsageError, describe_failure, one_line
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


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDeniedException", ExitStatus.AWS_DENIED),
        ("AccessDenied", ExitStatus.AWS_DENIED),
        ("ExpiredTokenException", ExitStatus.AWS_DENIED),
        ("UnrecognizedClientException", ExitStatus.AWS_DENIED),
        ("NoSuchBucket", ExitStatus.NO_STACK),
        ("ResourceNotFoundException", ExitStatus.NO_STACK),
        ("AWS.SimpleQueueService.NonExistentQueue", ExitStatus.NO_STACK),
        ("ThrottlingException", ExitStatus.AWS_ERROR),
    ],
)
def test_aws_error_codes_map_to_their_exit_status(code, status):
    error = ClientError({"Error": {"Code": code, "Message": "the message\nover two lines"}}, "Query")
    failure = describe_failure(error)
    assert failure is not None and failure.status == status
    assert code in str(failure) and "Query" in str(failure)
    assert "\n" not in one_line(str(failure))


def test_connection_failures_and_unknown_exceptions():
    unreachable = describe_failure(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert unreachable is not None and unreachable.status == ExitStatus.UNREACHABLE
    assert describe_failure(ValueError("a bug")) is None, "left to main: exit 70, one line"


def test_an_unexpected_failure_is_one_line_and_exit_70(aws, capsys, monkeypatch):
    deploy_stack("my-stack", STACK_OUTPUTS)
    # A job item whose status no version of this tool knows: reading it fails in a way nobody planned.
    aws.dynamodb.put_item(TableName=JOBS_TABLE, Item={"jobId": {"S": "8d3e4f9a-1b2c-4d5e-8f6a-7b8c9d0e1f2a"},
                                                  "status": {"S": "NO_SUCH_STATUS"}})  # fmt: skip
    status = main(["--stack", "my-stack", "--region", REGION, "job", "8d3e4f9a-1b2c-4d5e-8f6a-7b8c9d0e1f2a"])
    captured = capsys.readouterr()
    assert status == ExitStatus.INTERNAL == 70, captured.err
    assert captured.err.count("\n") == 1 and "S3_UPSCALE_DEBUG=1" in captured.err
