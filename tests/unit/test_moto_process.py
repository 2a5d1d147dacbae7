"""local.moto_process: the local stack's moto server in a process of its own, with the stack's changes
to moto installed there, and moto's own invoker never left on a mapped queue."""

from __future__ import annotations

import io
import json
import os
import zipfile

import boto3
import pytest
from botocore.exceptions import ClientError

from local.moto_process import MotoServerProcess, _no_moto_invokers
from tests.conftest import REGION

GRANTED_KEY = "arn:aws:kms:us-east-1:123456789012:key/granted"
OTHER_KEY = "arn:aws:kms:us-east-1:123456789012:key/other"


def _client(service: str, endpoint: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",  # the local stack's region: buckets need no location constraint
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=boto3.session.Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture(scope="module")
def moto_process():
    server = MotoServerProcess()
    yield server
    server.stop()


def test_the_server_answers_on_loopback_from_another_process(moto_process):
    assert moto_process.endpoint.startswith("http://127.0.0.1:")
    assert moto_process.pid not in (None, os.getpid())
    sqs = _client("sqs", moto_process.endpoint)
    url = sqs.create_queue(QueueName="in-the-child")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hello")

    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]

    assert message["Body"] == "hello"
    assert moto_process.cpu_seconds() > 0


def test_the_stacks_changes_are_installed_where_moto_runs(moto_process):
    """Message move tasks (which moto lacks) answer, and the KMS grant applied through `call` refuses
    a read of an inbox object encrypted with a key it does not name, in the child's moto."""
    sqs = _client("sqs", moto_process.endpoint)
    url = sqs.create_queue(QueueName="dead-letters")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert sqs.list_message_move_tasks(SourceArn=arn)["Results"] == []

    s3 = _client("s3", moto_process.endpoint)
    s3.create_bucket(Bucket="granted-inbox")
    moto_process.call("local.s3_encrypted_sources:refuse_ungranted_reads", "granted-inbox", [GRANTED_KEY])
    for name, key in (("granted.png", GRANTED_KEY), ("other.png", OTHER_KEY)):
        s3.put_object(Bucket="granted-inbox", Key=name, Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=key)

    assert s3.get_object(Bucket="granted-inbox", Key="granted.png")["Body"].read() == b"x"
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket="granted-inbox", Key="other.png")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"


def test_only_the_stacks_own_changes_can_be_called(moto_process):
    with pytest.raises(RuntimeError, match="not one of the stack's moto changes"):
        moto_process.call("os:getpid")


def test_stopping_ends_the_process():
    server = MotoServerProcess()
    server.stop()
    assert not server._process.is_alive()


def test_a_mapping_made_in_moto_leaves_no_invoker_on_its_queue(aws):
    _no_moto_invokers()
    from moto.sqs.models import sqs_backends

    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="mapped")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    iam = boto3.client("iam", region_name=REGION)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName="mapped-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("app.py", "")
    lambda_client = boto3.client("lambda", region_name=REGION)
    lambda_client.create_function(
        FunctionName="mapped", Runtime="python3.13", Role=role, Handler="app.h", Code={"ZipFile": package.getvalue()}
    )

    lambda_client.create_event_source_mapping(FunctionName="mapped", EventSourceArn=arn, BatchSize=10)

    assert lambda_client.list_event_source_mappings(FunctionName="mapped")["EventSourceMappings"], "the mapping exists"
    assert sqs_backends["123456789012"][REGION].queues["mapped"].lambda_event_source_mappings == {}
