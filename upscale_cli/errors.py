"""How s3-upscale fails: one line on stderr and an exit status from one table (docs/cli.md).

Every failure a user can cause or meet (a missing region or credentials, a stack that is not this
pipeline, a key outside the inbox, a local stack that is not running, an endpoint that does not
answer, Ctrl-C) ends here as a `CliError` with its ExitStatus; `describe_failure` turns the
exceptions boto3 and botocore raise into one. Nothing reaches the user as a traceback: an
exception nobody expected is still one line (exit 70), with the way to see its traceback.
"""

from __future__ import annotations

from enum import IntEnum

DEBUG_VARIABLE = "S3_UPSCALE_DEBUG"


class ExitStatus(IntEnum):
    """The exit statuses of s3-upscale; docs/cli.md has the same table (a test holds them equal)."""

    OK = 0
    NOT_DONE = 1  # the command ran; what it checked is not there or not good (no job, smoke failed, timeout)
    USAGE = 2  # the arguments do not fit the command or the stack (argparse's own errors too)
    NO_STACK = 3  # the stack cannot be found: no name, no region, wrong name, not this pipeline, no local stack
    AWS_DENIED = 4  # no AWS credentials, or AWS refused them or the permission
    UNREACHABLE = 5  # the AWS endpoint (or the local stack) did not answer
    AWS_ERROR = 6  # AWS answered with another error
    ALREADY_RUNNING = 7  # a local stack is already running (`python -m local up` twice)
    INTERNAL = 70  # a failure nobody expected: a bug; S3_UPSCALE_DEBUG=1 shows its traceback
    INTERRUPTED = 130  # Ctrl-C (SIGINT), as shells report it (128 + 2)


class CliError(Exception):
    """A failure to report as one line with its exit status."""

    status: ExitStatus = ExitStatus.AWS_ERROR

    def __init__(self, message: str, status: ExitStatus | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class UsageError(CliError):
    """An argument that does not fit the stack (a key outside its inbox bucket, ...)."""

    status = ExitStatus.USAGE


class StackNotFound(CliError):
    """The stack cannot be found or is not what this tool expects."""

    status = ExitStatus.NO_STACK


class NotDone(CliError):
    """The command ran, and what it looked for is not there (reported as exit 1)."""

    status = ExitStatus.NOT_DONE


# AWS error codes meaning "these credentials, or this permission, are refused". Sources: the errors
# common to all AWS APIs (https://docs.aws.amazon.com/awsconsolehelpdocs/latest/gsg/common-errors.html:
# AccessDeniedException, ExpiredTokenException, IncompleteSignature, NotAuthorized,
# UnrecognizedClientException ...), and S3's own codes for the same
# (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html: AccessDenied,
# InvalidAccessKeyId, SignatureDoesNotMatch, ExpiredToken).
_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "NotAuthorized",
    }
)
# ... and "the resource this stack names is not there" (a deleted bucket, table, queue or secret).
_MISSING_CODES = frozenset(
    {
        "NoSuchBucket",
        "ResourceNotFoundException",
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
        "NonExistentQueue",
    }
)


def describe_failure(error: BaseException) -> CliError | None:
    """The CliError for an exception of boto3/botocore or the network; None for one not recognised."""
    if isinstance(error, CliError):
        return error
    from botocore import exceptions as botocore_errors

    if isinstance(error, botocore_errors.NoRegionError):
        return StackNotFound("no AWS region: pass --region, or set AWS_REGION (or a profile's region)")
    if isinstance(error, botocore_errors.NoCredentialsError | botocore_errors.PartialCredentialsError):
        return CliError(
            "no AWS credentials found: set AWS_PROFILE, or run `aws configure` / `aws sso login`",
            ExitStatus.AWS_DENIED,
        )
    if isinstance(error, botocore_errors.ProfileNotFound):
        return CliError(f"{error}: check AWS_PROFILE (aws configure list-profiles)", ExitStatus.AWS_DENIED)
    if isinstance(error, botocore_errors.TokenRetrievalError | botocore_errors.SSOError):
        return CliError(f"AWS credentials could not be refreshed: {error}", ExitStatus.AWS_DENIED)
    if isinstance(error, botocore_errors.EndpointConnectionError | botocore_errors.ConnectionError):
        return CliError(f"cannot reach AWS: {error}", ExitStatus.UNREACHABLE)
    if isinstance(error, botocore_errors.ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code", ""))
        message = str(details.get("Message", "")) or str(error)
        operation = getattr(error, "operation_name", "") or "the request"
        if code in _DENIED_CODES:
            return CliError(f"AWS refused {operation} ({code}): {message}", ExitStatus.AWS_DENIED)
        if code in _MISSING_CODES:
            return StackNotFound(f"the stack names a resource that does not exist ({operation}, {code}): {message}")
        return CliError(f"AWS answered {operation} with {code or 'an error'}: {message}", ExitStatus.AWS_ERROR)
    if isinstance(error, botocore_errors.BotoCoreError):
        return CliError(f"AWS call failed: {error}", ExitStatus.AWS_ERROR)
    if isinstance(error, ConnectionError | TimeoutError):
        return CliError(f"no answer: {error}", ExitStatus.UNREACHABLE)
    return None


def one_line(text: str) -> str:
    """A message as one line: AWS messages sometimes hold newlines."""
    return " ".join(text.split())
