"""Which stack a command talks to: a deployed one, from its CloudFormation outputs, or the local one.

The local stack is the one `python -m local up` (`make up`) is running, found through the state
file it writes (local/state_file.py); when none runs, `smoke` starts one for the command's duration
and every other command stops with one line (exit 3): a stack that vanishes when the command ends
would take what the command did with it.
The `local` package is imported only for --local: against a deployed stack, this command needs
boto3 alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import NoRegionError

from upscale_cli.errors import StackNotFound, describe_failure

LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}


class TargetError(StackNotFound):
    """The stack cannot be found or is not what this tool expects (exit 3)."""


@dataclass
class Target:
    description: str
    inbox_bucket: str
    inbox_prefix: str
    output_bucket: str
    jobs_table: str
    runware_secret: str
    dlq_url: str = ""
    dlq_arn: str = ""
    ingest_queue_url: str = ""
    ingest_queue_arn: str = ""
    completion_events_queue_url: str = ""  # locally, a rule routes the completion events to this queue
    submit_function: str = ""
    # The submit function's environment, when known without asking Lambda (the local stack's).
    submit_environment: dict[str, str] | None = None
    region: str | None = None
    endpoint_url: str | None = None
    local: bool = False
    _session: Any = field(default=None, repr=False)

    def client(self, service: str) -> Any:
        if self.endpoint_url:
            return boto3.client(
                service,
                endpoint_url=self.endpoint_url,
                region_name=LOCAL_REGION,
                config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
                **LOCAL_CREDENTIALS,
            )
        session = self._session or boto3.session.Session(region_name=self.region)
        return session.client(service, config=Config(retries={"mode": "standard"}))

    def queue_arn(self, url: str) -> str:
        """A queue's ARN from its URL (the local state names queues by URL only)."""
        attributes = self.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
        return str(attributes["QueueArn"])


# ---- deployed --------------------------------------------------------------------------------

_OUTPUTS = {
    "InboxBucketName": "inbox_bucket",
    "InboxPrefix": "inbox_prefix",
    "OutputBucketName": "output_bucket",
    "JobsTableName": "jobs_table",
    "RunwareApiKeySecretArn": "runware_secret",
    "SubmitDeadLetterQueueUrl": "dlq_url",
    "SubmitDeadLetterQueueArn": "dlq_arn",
    "IngestQueueUrl": "ingest_queue_url",
    "IngestQueueArn": "ingest_queue_arn",
    "SubmitFunctionName": "submit_function",
}
_REQUIRED = ("inbox_bucket", "inbox_prefix", "output_bucket", "jobs_table", "runware_secret")


def deployed_target(stack_name: str, region: str | None = None, session: Any = None) -> Target:
    """The stack's names from its outputs; region and credentials from the usual AWS settings."""
    session = session or boto3.session.Session(region_name=region)
    try:
        cloudformation = session.client("cloudformation")
    except NoRegionError:
        raise TargetError(
            f"no AWS region for stack {stack_name!r}: pass --region, or set AWS_REGION (or a profile's region)"
        ) from None
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except Exception as error:
        if _is_missing_stack(error):
            raise TargetError(
                f"no stack {stack_name!r} in {session.region_name}: check the name (aws cloudformation "
                "describe-stacks) and the region (--region)"
            ) from None
        failure = describe_failure(error)
        if failure is None:
            raise TargetError(f"cannot read stack {stack_name!r}: {error}") from None
        raise failure from None
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}
    values = {attribute: outputs[name] for name, attribute in _OUTPUTS.items() if name in outputs}
    missing = [name for name, attribute in _OUTPUTS.items() if attribute in _REQUIRED and attribute not in values]
    if missing:
        raise TargetError(f"stack {stack_name!r} has no output {', '.join(missing)}: is it this pipeline?")
    return Target(
        description=f"stack {stack_name} ({session.region_name})",
        region=session.region_name,
        _session=session,
        **values,
    )


def _is_missing_stack(error: Exception) -> bool:
    # CloudFormation answers DescribeStacks for an unknown name with ValidationError "Stack with id X
    # does not exist" (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html).
    response = getattr(error, "response", {}) or {}
    details = response.get("Error", {})
    return details.get("Code") == "ValidationError" and "does not exist" in str(details.get("Message", ""))


# ---- local -----------------------------------------------------------------------------------


def local_target_from_state(state: dict[str, Any]) -> Target:
    environment = state.get("environment", {})
    return Target(
        description=f"local stack at {state['aws_endpoint']}",
        inbox_bucket=state["inbox_bucket"],
        inbox_prefix=state["inbox_prefix"],
        output_bucket=state["output_bucket"],
        jobs_table=state["jobs_table"],
        runware_secret=environment.get("RUNWARE_API_KEY_SECRET", ""),
        dlq_url=state.get("dlq_url", ""),
        ingest_queue_url=state.get("ingest_queue_url", ""),
        completion_events_queue_url=state.get("completion_events_url", ""),
        submit_function=state.get("submit_function", ""),
        submit_environment=environment or None,
        region=LOCAL_REGION,
        endpoint_url=state["aws_endpoint"],
        local=True,
    )


@contextmanager
def started_local_stack() -> Iterator[Target]:
    """A local stack for this command only (needs the development environment: moto, Pillow)."""
    try:
        from local.stack import LocalStack, StackConfig
        from local.state_file import stack_state
    except ImportError as error:
        raise TargetError(
            f"the local stack needs the development environment (make .venv/.installed): {error}"
        ) from None
    with LocalStack(StackConfig()) as stack:
        target = local_target_from_state(stack_state(stack))
        target.description = f"local stack started for this command at {stack.aws_endpoint}"
        yield target


@contextmanager
def resolve_target(
    *, stack: str | None, local: bool, region: str | None = None, start_if_none: bool = False
) -> Iterator[Target]:
    """The stack to talk to; with `local` and no local stack running, one started for this command
    if `start_if_none`, else TargetError."""
    if local:
        try:
            from local.state_file import running_stack_state, state_file_path
        except ImportError as error:
            raise TargetError(f"--local needs the development environment (make .venv/.installed): {error}") from None

        state = running_stack_state()
        if state is not None:
            try:
                target = local_target_from_state(state)
            except (KeyError, TypeError) as error:
                raise TargetError(
                    f"the state file {state_file_path()} lacks {error}: it was written by another version; "
                    "restart `make up`"
                ) from None
            yield target
            return
        if not start_if_none:
            raise TargetError(
                f"no local stack is running (no live one in {state_file_path()}): start one with `make up` "
                "(python -m local up) in another shell"
            )
        with started_local_stack() as target:
            yield target
        return
    name = stack or os.environ.get("S3_UPSCALE_STACK")
    if not name:
        raise TargetError("name the stack with --stack NAME (or S3_UPSCALE_STACK), or use --local")
    yield deployed_target(name, region)
