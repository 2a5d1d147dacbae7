"""`env`: the stack's names as `export` lines, for a shell (`eval "$(s3-upscale --local env)"`) or the AWS CLI.

The same variable names for the local stack and a deployed one: INBOX_BUCKET, INBOX_PREFIX,
OUTPUT_BUCKET, JOBS_TABLE, INGEST_QUEUE_URL, DLQ_URL. For the local stack also AWS_ENDPOINT_URL and
the dummy credentials and region it accepts (the AWS CLI and SDKs read AWS_ENDPOINT_URL, see
https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html); for a deployed stack
AWS_REGION, and no credentials (the usual AWS settings supply them).
"""

from __future__ import annotations

import argparse
import shlex

from upscale_cli.output import Output
from upscale_cli.target import LOCAL_CREDENTIALS, LOCAL_REGION, Target

# variable -> (Target attribute, the stack output it comes from)
STACK_VARIABLES = {
    "INBOX_BUCKET": ("inbox_bucket", "InboxBucketName"),
    "INBOX_PREFIX": ("inbox_prefix", "InboxPrefix"),
    "OUTPUT_BUCKET": ("output_bucket", "OutputBucketName"),
    "JOBS_TABLE": ("jobs_table", "JobsTableName"),
    "INGEST_QUEUE_URL": ("ingest_queue_url", "IngestQueueUrl"),
    "DLQ_URL": ("dlq_url", "SubmitDeadLetterQueueUrl"),
}


def add_parser(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "env", parents=parents, help='the stack\'s names as export lines (eval "$(s3-upscale --local env)")'
    )
    parser.set_defaults(run=run)


def variables(target: Target) -> tuple[dict[str, str], list[str]]:
    """The variables to export, and the names the stack does not provide."""
    values: dict[str, str] = {}
    missing: list[str] = []
    for name, (attribute, _) in STACK_VARIABLES.items():
        value = getattr(target, attribute)
        if value or name == "INBOX_PREFIX":  # an empty prefix is a value: every key of the bucket
            values[name] = value
        else:
            missing.append(name)
    if target.local:
        values.update(
            AWS_ENDPOINT_URL=target.endpoint_url or "",
            AWS_ACCESS_KEY_ID=LOCAL_CREDENTIALS["aws_access_key_id"],
            AWS_SECRET_ACCESS_KEY=LOCAL_CREDENTIALS["aws_secret_access_key"],
            AWS_REGION=LOCAL_REGION,
            AWS_DEFAULT_REGION=LOCAL_REGION,
        )
    elif target.region:
        values["AWS_REGION"] = target.region
    return values, missing


def run(args: argparse.Namespace, target: Target, out: Output) -> int:
    values, missing = variables(target)
    if out.as_json:
        out.json(values)
        return 0
    out.line(f"# {target.description}")
    for name, value in values.items():
        out.line(f"export {name}={shlex.quote(value)}")
    for name in missing:
        out.line(f"# {name}: the stack has no {STACK_VARIABLES[name][1]} output")
    return 0
