"""local.cli: the lines `python -m local up` prints for another shell."""

from __future__ import annotations

import shlex
import subprocess

from local.cli import shell_setup

STATE = {
    "aws_endpoint": "http://127.0.0.1:4566",
    "inbox_bucket": "upscale-inbox-123456789012-us-east-1-10ca1000",
    "inbox_prefix": "inbox/",
    "output_bucket": "upscale-output-123456789012-us-east-1-10ca1000",
    "jobs_table": "s3-upscale-local-JobsTable",
    "ingest_queue_url": "http://127.0.0.1:4566/123456789012/s3-upscale-local-IngestQueue",
    "dlq_url": "http://127.0.0.1:4566/123456789012/s3-upscale-local-SubmitDeadLetterQueue",
    "environment": {"RUNWARE_API_KEY_SECRET": "arn:aws:secretsmanager:us-east-1:123456789012:secret:key-AbC"},
}
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:s3-upscale-local-SubmitDeadLetterQueue"


def exported_by(lines: list[str]) -> dict[str, str]:
    """What a bash that runs the lines has in its environment afterwards, for the names they export."""
    names = [word.split("=", 1)[0] for line in lines if line.startswith("export ") for word in shlex.split(line)[1:]]
    script = "\n".join(lines) + "\n" + "".join(f'printf "%s=%s\\n" {name} "${name}"\n' for name in names)
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, env={})
    return dict(line.split("=", 1) for line in result.stdout.splitlines())


def test_the_setup_exports_every_name_the_examples_use_with_the_stacks_values():
    assert exported_by(shell_setup(STATE, DLQ_ARN)) == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "INBOX_BUCKET": STATE["inbox_bucket"],
        "INBOX_PREFIX": "inbox/",
        "OUTPUT_BUCKET": STATE["output_bucket"],
        "JOBS_TABLE": "s3-upscale-local-JobsTable",
        "INGEST_QUEUE_URL": STATE["ingest_queue_url"],
        "DLQ_URL": STATE["dlq_url"],
        "DLQ_ARN": DLQ_ARN,
        "RUNWARE_SECRET_ARN": STATE["environment"]["RUNWARE_API_KEY_SECRET"],
    }


def test_a_value_with_shell_characters_survives_pasting():
    state = {**STATE, "inbox_bucket": "my photos", "inbox_prefix": "it's $HOME/"}
    exported = exported_by(shell_setup(state, DLQ_ARN))
    assert (exported["INBOX_BUCKET"], exported["INBOX_PREFIX"]) == ("my photos", "it's $HOME/")


def test_the_aws_wrapper_sends_every_call_to_the_local_endpoint():
    lines = shell_setup(STATE, DLQ_ARN)
    script = "\n".join(lines) + '\ncommand() { shift; printf "%s\\n" "$@"; }\naws sqs list-queues\n'
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, env={})
    assert result.stdout.split() == ["--endpoint-url", "http://127.0.0.1:4566", "sqs", "list-queues"]
