"""A Target for s3-upscale's commands on the `aws` fixture's moto world, and jobs seeded into its table."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import boto3

from tests.conftest import INBOX_BUCKET, JOBS_TABLE, OUTPUT_BUCKET, REGION
from tests.job_records import seed_job
from upscale_cli.errors import CliError
from upscale_cli.target import Target
from upscaler.job_record import JobStatus, job_id_for
from upscaler.jobs import JobStore


def moto_target(**names: Any) -> Target:
    """The conftest resources as a deployed stack's outputs would name them (reached through moto)."""
    defaults: dict[str, Any] = {
        "description": "stack test (moto)",
        "inbox_bucket": INBOX_BUCKET,
        "inbox_prefix": "inbox/",
        "output_bucket": OUTPUT_BUCKET,
        "jobs_table": JOBS_TABLE,
        "runware_secret": "runware-api-key",
        "region": REGION,
    }
    return Target(**{**defaults, **names})


def add_job(
    target: Target, key: str, status: JobStatus | str, created: datetime, version: str = "v1", **fields: Any
) -> str:
    """A job of one inbox key version, created at `created`, brought to `status` by the store's transitions."""
    job_id = job_id_for(target.inbox_bucket, key, version)
    record = {"jobId": job_id, "sourceBucket": target.inbox_bucket, "sourceKey": key, **fields}
    seed_job(JobStore(target.client("dynamodb"), target.jobs_table), record, status, now=created)
    return job_id


def deploy_stack(name: str, outputs: dict[str, str]) -> None:
    """A CloudFormation stack in moto whose outputs are `outputs` (what deployed_target reads)."""
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(StackName=name, TemplateBody=json.dumps(template))


STACK_OUTPUTS = {
    "InboxBucketName": INBOX_BUCKET,
    "InboxPrefix": "inbox/",
    "OutputBucketName": OUTPUT_BUCKET,
    "JobsTableName": JOBS_TABLE,
    "RunwareApiKeySecretArn": "runware-api-key",
}


def run_command(command: Callable[[], int], stream: io.StringIO) -> tuple[int, str]:
    """A command's exit status and what it wrote, with the one line main() prints for a CliError it
    raises (here after the output, without the `s3-upscale: ` prefix)."""
    try:
        code = command()
    except CliError as error:
        return int(error.status), stream.getvalue() + f"{error}\n"
    return code, stream.getvalue()
