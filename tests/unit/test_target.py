"""Which stack a command talks to (upscale_cli/target.py): a deployed one by its outputs, or the local one."""

from __future__ import annotations

import json
import socket

import boto3
import pytest

from local.state_file import STATE_FILE_VARIABLE
from tests.conftest import INBOX_BUCKET, JOBS_TABLE, REGION
from tests.unit.cli_target import STACK_OUTPUTS, deploy_stack, moto_target
from upscale_cli.target import LOCAL_REGION, TargetError, deployed_target, local_target_from_state, resolve_target

LOCAL_STATE = {
    "pid": 0,
    "aws_endpoint": "http://127.0.0.1:4599",
    "runware_url": "http://127.0.0.1:4600",
    "environment": {"RUNWARE_API_KEY_SECRET": "local-runware-key"},
    "inbox_bucket": "local-inbox",
    "inbox_prefix": "inbox/",
    "output_bucket": "local-output",
    "jobs_table": "local-jobs",
    "dlq_url": "http://127.0.0.1:4599/queue/dlq",
    "ingest_queue_url": "http://127.0.0.1:4599/queue/ingest",
    "completion_events_url": "http://127.0.0.1:4599/queue/events",
    "submit_function": "local-submit",
}


def test_a_deployed_stack_is_found_by_its_outputs(aws):
    deploy_stack("my-stack", {**STACK_OUTPUTS, "IngestQueueUrl": "https://sqs/ingest", "SubmitFunctionName": "submit"})
    target = deployed_target("my-stack", REGION)
    assert (target.inbox_bucket, target.inbox_prefix, target.jobs_table) == (INBOX_BUCKET, "inbox/", JOBS_TABLE)
    assert (target.ingest_queue_url, target.submit_function, target.dlq_url) == ("https://sqs/ingest", "submit", "")
    assert target.description == f"stack my-stack ({REGION})"
    assert (target.region, target.local, target.endpoint_url) == (REGION, False, None)
    assert target.client("s3").head_bucket(Bucket=INBOX_BUCKET)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_a_stack_without_the_pipeline_outputs_is_refused_by_name(aws):
    deploy_stack("other-stack", {"InboxBucketName": INBOX_BUCKET, "InboxPrefix": "inbox/"})
    with pytest.raises(TargetError, match=r"stack 'other-stack' has no output OutputBucketName, JobsTableName, "
                                          r"RunwareApiKeySecretArn: is it this pipeline\?"):  # fmt: skip
        deployed_target("other-stack", REGION)


def test_a_stack_that_does_not_exist_is_a_target_error(aws):
    with pytest.raises(TargetError, match=r"no stack 'missing' in eu-west-1: check the name"):
        deployed_target("missing", REGION)


def test_the_local_target_reads_the_state_file_names():
    target = local_target_from_state(LOCAL_STATE)
    assert target.local and target.region == LOCAL_REGION
    assert target.endpoint_url == "http://127.0.0.1:4599"
    assert target.description == "local stack at http://127.0.0.1:4599"
    assert (target.inbox_bucket, target.output_bucket) == ("local-inbox", "local-output")
    assert target.jobs_table == "local-jobs"
    assert target.runware_secret == "local-runware-key"
    assert target.completion_events_queue_url == "http://127.0.0.1:4599/queue/events"
    assert (target.dlq_url, target.submit_function, target.dlq_arn) == (LOCAL_STATE["dlq_url"], "local-submit", "")
    s3 = target.client("s3")
    assert (s3.meta.endpoint_url, s3.meta.region_name) == ("http://127.0.0.1:4599", LOCAL_REGION)


def test_a_queue_arn_is_read_from_its_url(aws):
    url = boto3.client("sqs", region_name=REGION).create_queue(QueueName="dead-letters")["QueueUrl"]
    assert moto_target().queue_arn(url) == f"arn:aws:sqs:{REGION}:123456789012:dead-letters"


def test_without_a_stack_name_the_command_is_told_how_to_name_one(monkeypatch):
    monkeypatch.delenv("S3_UPSCALE_STACK", raising=False)
    with (
        pytest.raises(TargetError, match=r"--stack NAME \(or S3_UPSCALE_STACK\), or use --local"),
        resolve_target(stack=None, local=False),
    ):
        pass


def test_the_stack_name_can_come_from_the_environment(aws, monkeypatch):
    deploy_stack("env-stack", STACK_OUTPUTS)
    monkeypatch.setenv("S3_UPSCALE_STACK", "env-stack")
    with resolve_target(stack=None, local=False, region=REGION) as target:
        assert target.description == f"stack env-stack ({REGION})"


def test_local_uses_the_running_stack_of_the_state_file(tmp_path, monkeypatch):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        state = {**LOCAL_STATE, "pid": None, "aws_endpoint": f"http://127.0.0.1:{port}"}
        path = tmp_path / "state.json"
        path.write_text(json.dumps(state))
        monkeypatch.setenv(STATE_FILE_VARIABLE, str(path))
        with resolve_target(stack="ignored", local=True) as target:
            assert target.local
            assert target.endpoint_url == f"http://127.0.0.1:{port}"
            assert target.inbox_bucket == "local-inbox"
