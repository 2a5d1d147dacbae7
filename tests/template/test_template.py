"""Checks on template.yaml: what the SAM transform makes of it (wiring, IAM, environment) and the
security and operations settings the deployment promises.

Each rule is a `check_*` function that raises AssertionError on a template that breaks it. The tests
run every check on template.yaml, and `test_checks_catch_regressions` runs them on deliberately
broken copies, so a check that stops detecting its regression fails too.

`load_template(path)` reads a CloudFormation/SAM YAML file, turning the short-form intrinsic tags
(!Ref, !Sub, !GetAtt, !If, ...) into their long JSON forms ({"Ref": ...}, {"Fn::Sub": ...}), which
is what CloudFormation and the SAM translator work on; `translate(template)` applies the
AWS::Serverless transform offline (aws-sam-translator).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"


class _CloudFormationLoader(yaml.SafeLoader):
    """A safe YAML loader that also understands CloudFormation's short-form tags."""


def _construct_node(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value = _construct_node(loader, node)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        # !GetAtt Resource.Attribute (the attribute itself may contain dots).
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template (YAML or JSON) into plain dicts and lists."""
    # A SafeLoader subclass: Python object tags (!!python/...) are still refused.
    with open(path, encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=_CloudFormationLoader)
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a template (top level is not a mapping)")
    return document


# Managed policies the translator may be asked to resolve by name. The template gives every function
# an explicit role, so none is needed today; the map keeps the translation offline if that changes.
_MANAGED_POLICIES = {
    name: f"arn:aws:iam::aws:policy/{path}{name}"
    for path, name in (
        ("service-role/", "AWSLambdaBasicExecutionRole"),
        ("", "AWSXrayWriteOnlyAccess"),
        ("", "AWSXRayDaemonWriteAccess"),
    )
}


def _with_placeholder_code_locations(template: dict[str, Any]) -> dict[str, Any]:
    """The translator accepts only s3:// code locations; `sam build`/`sam package` fill them in. Put
    placeholders in, as `sam validate` does, keeping the local path in the key for the assertions."""
    document = copy.deepcopy(template)
    for resource in document.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            location = properties.get(key)
            if isinstance(location, str) and not location.startswith("s3://"):
                properties[key] = f"s3://local-build/{location.strip('/')}"
    return document


def translate(template: dict[str, Any], parameter_values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The CloudFormation that the AWS::Serverless transform makes of a SAM template (offline)."""
    session = boto3.session.Session(region_name="us-east-1")
    translator = Translator(_MANAGED_POLICIES, Parser(), boto_session=session)
    return translator.translate(
        _with_placeholder_code_locations(template),
        parameter_values=dict(parameter_values or {}),
        get_managed_policy_map=lambda: _MANAGED_POLICIES,
    )


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """template.yaml as written (short-form tags in their long form)."""
    return load_template(TEMPLATE_PATH)


@pytest.fixture(scope="session")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    """template.yaml after the SAM transform: the CloudFormation that is deployed."""
    return translate(template)


FUNCTIONS = ("SubmitFunction", "WebhookFunction", "ReconcileFunction", "RecoverFunction")

CONTRACT_RESOURCES = {
    "InboxBucket": "AWS::S3::Bucket",
    "OutputBucket": "AWS::S3::Bucket",
    "JobsTable": "AWS::DynamoDB::Table",
    "CommonLayer": "AWS::Serverless::LayerVersion",
    "SubmitFunction": "AWS::Serverless::Function",
    "WebhookFunction": "AWS::Serverless::Function",
    "ReconcileFunction": "AWS::Serverless::Function",
    "WebhookApi": "AWS::Serverless::HttpApi",
    "RunwareApiKeySecret": "AWS::SecretsManager::Secret",
    "WebhookTokenSecret": "AWS::SecretsManager::Secret",
    "SubmitDeadLetterQueue": "AWS::SQS::Queue",
    "IngestQueue": "AWS::SQS::Queue",
    "IngestQueuePolicy": "AWS::SQS::QueuePolicy",
    "ExistingBucketUploadRule": "AWS::Events::Rule",
}

FUNCTION_SETTINGS = {
    "SubmitFunction": {"CodeUri": "functions/submit/", "Timeout": 60, "service": "upscale-submit"},
    "WebhookFunction": {"CodeUri": "functions/webhook/", "Timeout": 15, "service": "upscale-webhook"},
    "ReconcileFunction": {"CodeUri": "functions/reconcile/", "Timeout": 120, "service": "upscale-reconcile"},
    "RecoverFunction": {"CodeUri": "functions/recover/", "Timeout": 60, "service": "upscale-recover"},
}

COMMON_ENVIRONMENT = {
    "JOBS_TABLE",
    "OUTPUT_BUCKET",
    "RUNWARE_API_URL",
    "RUNWARE_API_KEY_SECRET",
    "WEBHOOK_TOKEN_SECRET",
    "COMPLETION_EVENT_BUS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
FUNCTION_ENVIRONMENT = {
    "SubmitFunction": COMMON_ENVIRONMENT
    | {
        "INBOX_PREFIX",
        "OUTPUT_PREFIX",
        "WEBHOOK_URL",
        "DEFAULT_TARGET_MEGAPIXELS",
        "DEFAULT_ENHANCE_DETAILS",
        "DEFAULT_REALISM",
        "DEFAULT_OUTPUT_FORMAT",
        "DEFAULT_OUTPUT_QUALITY",
        "MAX_INPUT_BYTES",
        "PRESIGNED_URL_EXPIRY_SECONDS",
        "RUNWARE_RESULT_TTL_SECONDS",
        "JOB_RETENTION_DAYS",
        "SUBMIT_PARALLELISM",
        "INGEST_QUEUE_URL",
        "DEAD_LETTER_QUEUE_URL",
        "RECOVERY_QUEUE_URL",
        "RECONCILE_AFTER_SECONDS",
        "JOB_MAX_AGE_SECONDS",
    },
    "WebhookFunction": COMMON_ENVIRONMENT,
    "ReconcileFunction": COMMON_ENVIRONMENT
    | {
        "JOB_MAX_AGE_SECONDS",
        "RECONCILE_MAX_JOBS",
        "RECOVERY_QUEUE_URL",
        "LEGACY_STATUS_INDEX",
        "SUBMIT_FUNCTION_NAME",
        "INGEST_QUEUE_ARN",
    },
    "RecoverFunction": COMMON_ENVIRONMENT
    | {
        "RECOVERY_QUEUE_URL",
        "RECONCILE_AFTER_SECONDS",
        "JOB_MAX_AGE_SECONDS",
        "PRESIGNED_URL_EXPIRY_SECONDS",
        "WEBHOOK_URL",
        "RUNWARE_RESULT_TTL_SECONDS",
    },
}

# Every IAM action each function is granted. docs/security.md explains each one; a change here is a
# change to what the functions may do, so it is spelt out rather than derived.
GRANTED_ACTIONS = {
    "SubmitFunction": {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:ListBucket",
        "sts:AssumeRole",  # UrlSigningRole: the presigned URLs are signed by its sessions
        "s3:PutObject",  # only the output prefix: the server-side copy of a prior output to a new job's key
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",  # only the prior outputs table: a batch's pointers in one read
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "secretsmanager:GetSecretValue",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",
        "dynamodb:DeleteItem",
        "lambda:ListEventSourceMappings",
        "lambda:UpdateEventSourceMapping",
        "events:PutEvents",
        "kms:Decrypt",  # only the keys named in SourceKmsKeyArns, only when it names any
    },
    "WebhookFunction": {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",  # a result copied from Runware's URL into staging/
        "s3:ListBucket",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "secretsmanager:GetSecretValue",
        "events:PutEvents",
    },
    "ReconcileFunction": {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",  # a result copied from Runware's URL into staging/
        "s3:ListBucket",
        "sts:AssumeRole",  # UrlSigningRole: a job sent again gets fresh presigned URLs
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
        "dynamodb:UpdateItem",
        "dynamodb:GetItem",
        "lambda:ListEventSourceMappings",
        "lambda:UpdateEventSourceMapping",
        "sqs:SendMessage",
        "secretsmanager:GetSecretValue",
        "events:PutEvents",
    },
    "RecoverFunction": {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",  # a result copied from Runware's URL into staging/
        "s3:ListBucket",
        "sts:AssumeRole",  # UrlSigningRole: a job sent again gets fresh presigned URLs
        "dynamodb:BatchGetItem",
        "dynamodb:UpdateItem",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",
        "secretsmanager:GetSecretValue",
        "events:PutEvents",
    },
}

SECRET_READERS = {
    "RunwareApiKeySecret": {"SubmitFunction", "ReconcileFunction", "RecoverFunction"},
    # Reconcile and recover send a job again when its result was lost, with a webhook URL anew.
    "WebhookTokenSecret": {"SubmitFunction", "WebhookFunction", "ReconcileFunction", "RecoverFunction"},
}

# Actions that cannot be limited to a resource; the only statements allowed Resource "*" (Service
# Authorization Reference: X-Ray's actions, and Lambda's List* actions, have no resource types).
RESOURCE_LESS_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "lambda:ListEventSourceMappings"}
# The key of the intake pause item (upscaler.intake_pause), the only item some statements may touch.
INTAKE_PAUSE_ONLY = {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["#intake-pause"]}}

OUTPUT_OBJECTS = {"Fn::Sub": "${OutputBucket.Arn}/${OutputPrefix}*"}
# Where Runware's presigned PUT lands; the results are published from there to OUTPUT_OBJECTS.
STAGED_OBJECTS = {"Fn::Sub": "${OutputBucket.Arn}/staging/*"}
OUTPUT_BUCKET = {"Fn::GetAtt": ["OutputBucket", "Arn"]}
COMPLETION_BUS = {
    "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${CompletionEventBusName}"
}
INBOX_NAME = {
    "Fn::If": [
        "UseExistingBucket",
        {"Ref": "ExistingBucketName"},
        {
            "Fn::Sub": [
                "upscale-inbox-${AWS::AccountId}-${AWS::Region}-${StackSuffix}",
                {
                    "StackSuffix": {
                        "Fn::Select": [
                            0,
                            {"Fn::Split": ["-", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]},
                        ]
                    }
                },
            ]
        },
    ]
}


# ---------------------------------------------------------------- helpers


def resources_of_type(cfn: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in cfn["Resources"].items() if r.get("Type") == resource_type}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def mentions(value: Any, text: str) -> bool:
    """True if `text` occurs anywhere in a (nested) template value: a name, a Ref, a Sub string."""
    return text in json.dumps(value)


def role_of(cfn: dict[str, Any], function: str) -> str:
    role = cfn["Resources"][function]["Properties"]["Role"]
    assert isinstance(role, dict) and "Fn::GetAtt" in role, f"{function} must use a role from this template"
    return role["Fn::GetAtt"][0]


def role_statements(cfn: dict[str, Any], role: str) -> Iterator[dict[str, Any]]:
    """Every statement of every identity policy attached to `role` (inline or AWS::IAM::Policy)."""
    properties = cfn["Resources"][role]["Properties"]
    for policy in properties.get("Policies", []):
        yield from _both_branches(as_list(policy["PolicyDocument"]["Statement"]))
    for policy_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for policy in resources_of_type(cfn, policy_type).values():
            attached = policy["Properties"].get("Roles", [])
            if any(mentions(entry, role) for entry in attached):
                yield from as_list(policy["Properties"]["PolicyDocument"]["Statement"])


def function_statements(cfn: dict[str, Any], function: str) -> list[dict[str, Any]]:
    return list(role_statements(cfn, role_of(cfn, function)))


def allows(statement: dict[str, Any], action: str) -> bool:
    return statement.get("Effect") == "Allow" and action in as_list(statement.get("Action", []))


def lambda_function(cfn: dict[str, Any], function: str) -> dict[str, Any]:
    resource = cfn["Resources"][function]
    assert resource["Type"] == "AWS::Lambda::Function"
    return resource["Properties"]


def environment(cfn: dict[str, Any], function: str) -> dict[str, Any]:
    return lambda_function(cfn, function).get("Environment", {}).get("Variables", {})


# ---------------------------------------------------------------- checks on the SAM template


def check_contract_resources(sam: dict[str, Any]) -> None:
    for name, resource_type in CONTRACT_RESOURCES.items():
        assert name in sam["Resources"], f"missing resource {name}"
        assert sam["Resources"][name]["Type"] == resource_type, f"{name} must be a {resource_type}"


def check_function_code_and_layer(sam: dict[str, Any]) -> None:
    for function, settings in FUNCTION_SETTINGS.items():
        properties = sam["Resources"][function]["Properties"]
        assert properties["CodeUri"] == settings["CodeUri"], function
    layer = sam["Resources"]["CommonLayer"]
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["ContentUri"] == "layers/common/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]


def check_submit_event_source(sam: dict[str, Any]) -> None:
    events = sam["Resources"]["SubmitFunction"]["Properties"]["Events"]
    assert [event["Type"] for event in events.values()] == ["SQS"], "submit is fed by the ingestion queue only"
    [event] = events.values()
    properties = event["Properties"]
    assert properties["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert properties["BatchSize"] == {"Ref": "SubmitBatchSize"}
    assert properties["MaximumBatchingWindowInSeconds"] == {"Ref": "SubmitBatchingWindowSeconds"}
    assert properties["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "SubmitMaximumConcurrency"}}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "EventInvokeConfig" not in sam["Resources"]["SubmitFunction"]["Properties"], "no async destination left"


def check_parameters(sam: dict[str, Any]) -> None:
    parameters = sam["Parameters"]
    for name, parameter in parameters.items():
        assert parameter.get("Description", "").strip(), f"parameter {name} has no Description"
        if parameter["Type"] == "Number":
            bounded = "AllowedValues" in parameter or {"MinValue", "MaxValue"} <= parameter.keys()
            assert bounded, f"Number parameter {name} needs MinValue/MaxValue or AllowedValues"
        elif parameter["Type"] == "String":
            constrained = "AllowedValues" in parameter or "AllowedPattern" in parameter
            assert constrained, f"String parameter {name} needs AllowedValues or AllowedPattern"
    expected_defaults = {
        "InboxPrefix": "inbox/",
        "OutputPrefix": "upscaled/",
        "RunwareApiUrl": "https://api.runware.ai/v1",
        "TargetMegapixels": 4,
        "EnhanceDetails": "false",
        "Realism": "false",
        "OutputFormat": "JPG",
        "OutputQuality": 95,
        "MaxInputBytes": 52428800,
        "PresignedUrlExpirySeconds": 2700,
        "RunwareResultTtlSeconds": 3600,
        "JobRetentionDays": 90,
        "ReconcileSchedule": "rate(5 minutes)",
        "ReconcileAfterSeconds": 600,
        "JobMaxAgeSeconds": 14400,
        "ReconcileMaxJobs": 200,
        "LogLevel": "INFO",
        "AlarmEmail": "",
        "ExistingBucketName": "",
        "SubmitBatchSize": 10,
        "SubmitMaxReceiveCount": 5,
        "CompletionEventBusName": "default",
    }
    for name, default in expected_defaults.items():
        assert name in parameters, f"missing parameter {name}"
        assert parameters[name]["Default"] == default, f"{name} default"
    assert (parameters["TargetMegapixels"]["MinValue"], parameters["TargetMegapixels"]["MaxValue"]) == (1, 8)
    assert (parameters["OutputQuality"]["MinValue"], parameters["OutputQuality"]["MaxValue"]) == (20, 99)
    assert parameters["RunwareResultTtlSeconds"]["MinValue"] >= 60
    assert parameters["OutputFormat"]["AllowedValues"] == ["JPG", "PNG", "WEBP"]
    for flag in ("EnhanceDetails", "Realism"):
        assert sorted(parameters[flag]["AllowedValues"]) == ["false", "true"]
    for name in ("InboxExpirationDays", "OutputExpirationDays", "LogRetentionDays"):
        assert name in parameters, f"missing parameter {name}"
    assert (parameters["SubmitBatchSize"]["MinValue"], parameters["SubmitBatchSize"]["MaxValue"]) == (1, 10)
    # Lambda's own bounds for ScalingConfig.MaximumConcurrency; "small by default".
    concurrency = parameters["SubmitMaximumConcurrency"]
    assert (concurrency["MinValue"], concurrency["MaxValue"]) == (2, 1000) and concurrency["Default"] <= 10
    assert parameters["SubmitMaxReceiveCount"]["Default"] >= 5, "AWS advises at least 5 for Lambda consumers"


def check_outputs(sam: dict[str, Any]) -> None:
    expected = {
        "InboxBucketName",
        "InboxPrefix",
        "OutputBucketName",
        "JobsTableName",
        "WebhookUrl",
        "RunwareApiKeySecretArn",
        "SubmitDeadLetterQueueUrl",
        "SubmitDeadLetterQueueArn",
        "IngestQueueUrl",
        "IngestQueueArn",
        "SubmitFunctionName",
        "CompletionEventBusName",
    }
    assert expected <= sam["Outputs"].keys(), f"missing outputs {expected - sam['Outputs'].keys()}"


# ---------------------------------------------------------------- checks on the deployed CloudFormation


def check_functions(cfn: dict[str, Any]) -> None:
    layers = [name for name in resources_of_type(cfn, "AWS::Lambda::LayerVersion") if name.startswith("CommonLayer")]
    assert len(layers) == 1, "expected exactly one CommonLayer version"
    for function, settings in FUNCTION_SETTINGS.items():
        properties = lambda_function(cfn, function)
        assert properties["Runtime"] == "python3.13", function
        assert properties["Architectures"] == ["arm64"], function
        assert properties["Handler"] == "app.lambda_handler", function
        assert properties["Layers"] == [{"Ref": layers[0]}], function
        assert properties["TracingConfig"] == {"Mode": "Active"}, function
        assert properties["Timeout"] == settings["Timeout"], function
        assert 128 <= properties["MemorySize"] <= 1024, function
        log_group = properties["LoggingConfig"]["LogGroup"]["Ref"]
        retention = cfn["Resources"][log_group]["Properties"]["RetentionInDays"]
        assert retention == {"Ref": "LogRetentionDays"}, f"{function} logs must follow LogRetentionDays"


def check_s3_notification(cfn: dict[str, Any]) -> None:
    inbox = cfn["Resources"]["InboxBucket"]
    assert inbox["Condition"] == "CreateInboxBucket", "no inbox bucket when an existing bucket is used"
    assert "IngestQueuePolicy" in as_list(inbox.get("DependsOn", [])), "S3 checks the queue policy on creation"
    notifications = inbox["Properties"]["NotificationConfiguration"]
    assert set(notifications) == {"QueueConfigurations"}, "the inbox notifies only the ingestion queue"
    [config] = notifications["QueueConfigurations"]
    assert config["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert config["Event"] == "s3:ObjectCreated:*"
    rules = config.get("Filter", {}).get("S3Key", {}).get("Rules")
    assert rules == [{"Name": "prefix", "Value": {"Ref": "InboxPrefix"}}], "only uploads under InboxPrefix"
    # Results must never trigger the pipeline again.
    assert "NotificationConfiguration" not in cfn["Resources"]["OutputBucket"]["Properties"]
    permissions = [
        p["Properties"]
        for p in resources_of_type(cfn, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "s3.amazonaws.com"
    ]
    assert permissions == [], "S3 no longer invokes a function directly"


def check_queue_policy(cfn: dict[str, Any]) -> None:
    [policy] = [
        policy
        for policy in resources_of_type(cfn, "AWS::SQS::QueuePolicy").values()
        if policy["Properties"]["Queues"] == [{"Ref": "IngestQueue"}]
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    senders = {}
    for entry in statements:
        if "Fn::If" in entry:
            condition, statement, otherwise = entry["Fn::If"]
            assert otherwise == {"Ref": "AWS::NoValue"}
            senders[condition] = statement
    s3, events = senders["CreateInboxBucket"], senders["UseExistingBucket"]
    for statement, service in ((s3, "s3.amazonaws.com"), (events, "events.amazonaws.com")):
        assert statement["Principal"] == {"Service": service}
        assert statement["Action"] == "sqs:SendMessage"
        assert statement["Resource"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
        assert statement["Condition"].get("StringEquals") == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert mentions(s3["Condition"]["ArnEquals"]["aws:SourceArn"], ":s3:::upscale-inbox-")
    assert events["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": ["ExistingBucketUploadRule", "Arn"]}


def check_existing_bucket_rule(cfn: dict[str, Any]) -> None:
    rule = cfn["Resources"]["ExistingBucketUploadRule"]
    assert rule["Condition"] == "UseExistingBucket"
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [{"Ref": "ExistingBucketName"}]},
            "object": {"key": [{"prefix": {"Ref": "InboxPrefix"}}]},
        },
    }
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert cfn["Conditions"]["UseExistingBucket"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ExistingBucketName"}, ""]}]}


def check_webhook_route(cfn: dict[str, Any]) -> None:
    api = cfn["Resources"]["WebhookApi"]
    assert api["Type"] == "AWS::ApiGatewayV2::Api"
    paths = api["Properties"]["Body"]["paths"]
    assert set(paths) == {"/webhook"}, "the webhook API exposes /webhook only"
    assert set(paths["/webhook"]) == {"post"}, "the webhook route accepts POST only"
    integration = paths["/webhook"]["post"]["x-amazon-apigateway-integration"]
    assert mentions(integration["uri"], "${WebhookFunction.Arn}")
    permissions = [
        p["Properties"]
        for p in resources_of_type(cfn, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert len(permissions) == 1, "only the webhook function is invocable through API Gateway"
    assert permissions[0]["FunctionName"] == {"Ref": "WebhookFunction"}
    assert mentions(permissions[0]["SourceArn"], "/POST/webhook")
    [stage] = [
        s["Properties"]
        for s in resources_of_type(cfn, "AWS::ApiGatewayV2::Stage").values()
        if s["Properties"]["ApiId"] == {"Ref": "WebhookApi"}
    ]
    throttling = stage["DefaultRouteSettings"]
    assert throttling["ThrottlingBurstLimit"] == {"Ref": "WebhookThrottlingBurstLimit"}
    assert throttling["ThrottlingRateLimit"] == {"Ref": "WebhookThrottlingRateLimit"}
    access_log_format = stage["AccessLogSettings"]["Format"]
    assert "querystring" not in access_log_format.lower(), "access logs must not record the token"


# The webhook route's throttle, from the submit capacity (docs/scale.md, "The webhook route"): a
# batch of SubmitBatchSize jobs takes at least this long to submit, every job is answered by one
# webhook, and the route keeps this factor to spare; ten rounds of batches may finish at once.
SECONDS_PER_BATCH = 0.5
WEBHOOK_SAFETY_FACTOR = 2
WEBHOOK_BURST_ROUNDS = 10
# API Gateway's account-level throttle per Region ("Amazon API Gateway quotas"): a route cannot exceed it.
ACCOUNT_RATE, ACCOUNT_BURST = 10_000, 5_000


def webhook_throttle_needed(concurrency: int, batch_size: int) -> tuple[float, int]:
    rate = concurrency * batch_size / SECONDS_PER_BATCH * WEBHOOK_SAFETY_FACTOR
    return rate, concurrency * batch_size * WEBHOOK_BURST_ROUNDS


def test_the_webhook_route_admits_what_submit_can_start_at_the_defaults(template):
    parameters = {name: spec["Default"] for name, spec in template["Parameters"].items()}
    rate, burst = webhook_throttle_needed(parameters["SubmitMaximumConcurrency"], parameters["SubmitBatchSize"])
    assert parameters["WebhookThrottlingRateLimit"] >= rate
    assert parameters["WebhookThrottlingBurstLimit"] >= burst
    assert parameters["WebhookThrottlingRateLimit"] <= ACCOUNT_RATE
    assert parameters["WebhookThrottlingBurstLimit"] <= ACCOUNT_BURST
    assert template["Parameters"]["WebhookThrottlingRateLimit"]["MaxValue"] <= ACCOUNT_RATE
    assert template["Parameters"]["WebhookThrottlingBurstLimit"]["MaxValue"] <= ACCOUNT_BURST


def test_recovery_can_settle_at_least_as_many_jobs_at_once_as_submit_starts_at_the_defaults(template):
    parameters = {name: spec["Default"] for name, spec in template["Parameters"].items()}
    assert parameters["RecoveryMaximumConcurrency"] >= parameters["SubmitMaximumConcurrency"]


def test_the_throttle_formula_refuses_the_old_defaults():
    rate, burst = webhook_throttle_needed(5, 10)
    assert rate > 20 and burst > 50, "20 requests/s (burst 50) refused webhooks of jobs submit had started"


def check_schedule(cfn: dict[str, Any]) -> None:
    rules = {
        k: r for k, r in resources_of_type(cfn, "AWS::Events::Rule").items() if "ScheduleExpression" in r["Properties"]
    }
    by_expression = {json.dumps(rule["Properties"]["ScheduleExpression"]): rule for rule in rules.values()}
    # The reconcile pass, and the one-minute resumer of intake after a pause (docs/intake-pauses.md).
    assert set(by_expression) == {json.dumps({"Ref": "ReconcileSchedule"}), json.dumps("rate(1 minute)")}
    for rule in rules.values():
        [target] = rule["Properties"]["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": ["ReconcileFunction", "Arn"]}
    [resumer] = by_expression[json.dumps("rate(1 minute)")]["Properties"]["Targets"]
    assert json.loads(resumer["Input"]) == {"run": "resume-intake"}, "the one-minute run resumes intake only"


def _mapping_of(cfn: dict[str, Any], function: str) -> dict[str, Any]:
    mappings = resources_of_type(cfn, "AWS::Lambda::EventSourceMapping").values()
    [properties] = [m["Properties"] for m in mappings if m["Properties"]["FunctionName"] == {"Ref": function}]
    return properties


def check_event_source_mapping(cfn: dict[str, Any]) -> None:
    assert len(resources_of_type(cfn, "AWS::Lambda::EventSourceMapping")) == 2, "ingestion and recovery checks"
    properties = _mapping_of(cfn, "SubmitFunction")
    assert properties["FunctionName"] == {"Ref": "SubmitFunction"}
    assert properties["EventSourceArn"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert properties.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], "one bad record must fail alone"
    assert properties["BatchSize"] == {"Ref": "SubmitBatchSize"}
    assert properties["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "SubmitMaximumConcurrency"}}
    configs = [
        c["Properties"]["FunctionName"]["Ref"]
        for c in resources_of_type(cfn, "AWS::Lambda::EventInvokeConfig").values()
    ]
    assert "SubmitFunction" not in configs, "submit is no longer invoked asynchronously"
    queue = cfn["Resources"]["IngestQueue"]["Properties"]
    assert queue.get("RedrivePolicy") == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["SubmitDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "SubmitMaxReceiveCount"},
    }, "what keeps failing goes to the DLQ"
    # AWS's guidance: visibility timeout at least 6x the function timeout, plus the batching window.
    assert queue["VisibilityTimeout"] >= 6 * lambda_function(cfn, "SubmitFunction")["Timeout"] + 60
    assert queue.get("SqsManagedSseEnabled") is True
    statements = function_statements(cfn, "SubmitFunction")
    consume = [s for s in statements if allows(s, "sqs:ReceiveMessage")]
    assert [s["Resource"] for s in consume] == [{"Fn::GetAtt": ["IngestQueue", "Arn"]}]
    send = [s for s in statements if allows(s, "sqs:SendMessage")]
    # Copies back to the ingestion queue while intake waits; unreadable messages to the DLQ.
    recovery_queue = {"Fn::GetAtt": ["RecoveryQueue", "Arn"]}
    assert [s["Resource"] for s in send] == [
        [{"Fn::GetAtt": ["IngestQueue", "Arn"]}, {"Fn::GetAtt": ["SubmitDeadLetterQueue", "Arn"]}],
        recovery_queue,
    ], "submit sends only to its own queue, its dead-letter queue, and recovery checks"

    # Recovery checks: their own mapping, batches for one getResponse request each, partial failures.
    recover = _mapping_of(cfn, "RecoverFunction")
    assert recover["EventSourceArn"] == recovery_queue
    assert recover.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], "one job's fault fails alone"
    assert recover["BatchSize"] > 10 and recover["MaximumBatchingWindowInSeconds"] >= 1, "SQS: >10 needs a window"
    assert recover["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "RecoveryMaximumConcurrency"}}
    checks = cfn["Resources"]["RecoveryQueue"]["Properties"]
    assert checks["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["RecoveryDeadLetterQueue", "Arn"]}
    window = recover["MaximumBatchingWindowInSeconds"]
    assert checks["VisibilityTimeout"] >= 6 * lambda_function(cfn, "RecoverFunction")["Timeout"] + window
    assert checks.get("SqsManagedSseEnabled") is True


def check_intake_pause(cfn: dict[str, Any]) -> None:
    """Switching the ingestion mapping names the one mapping; pause-item statements touch only that item."""
    mappings = set(resources_of_type(cfn, "AWS::Lambda::EventSourceMapping"))
    assert mappings == {"SubmitFunctionIngestQueue", "RecoverFunctionRecoveryQueue"}
    for function in ("SubmitFunction", "ReconcileFunction"):
        statements = function_statements(cfn, function)
        [switch] = [s for s in statements if allows(s, "lambda:UpdateEventSourceMapping")]
        assert as_list(switch["Action"]) == ["lambda:UpdateEventSourceMapping"]
        assert mentions(switch["Resource"], "event-source-mapping:${SubmitFunctionIngestQueue}"), function
    for function, action in (("SubmitFunction", "dynamodb:DeleteItem"), ("ReconcileFunction", "dynamodb:GetItem")):
        [statement] = [s for s in function_statements(cfn, function) if allows(s, action)]
        assert statement.get("Condition") == INTAKE_PAUSE_ONLY, f"{function}: {action} on the pause item only"
    queue = cfn["Resources"]["IngestQueue"]["Properties"]
    assert queue["MessageRetentionPeriod"] == 1209600, "uploads wait out a pause for up to 14 days (SQS's most)"


def check_completion_event_permissions(cfn: dict[str, Any]) -> None:
    for function in FUNCTIONS:
        put = [s for s in function_statements(cfn, function) if allows(s, "events:PutEvents")]
        assert [s["Resource"] for s in put] == [COMPLETION_BUS], f"{function}: PutEvents on the completion bus only"
        assert environment(cfn, function)["COMPLETION_EVENT_BUS"] == {"Ref": "CompletionEventBusName"}


def check_no_wildcard_actions(cfn: dict[str, Any]) -> None:
    roles = resources_of_type(cfn, "AWS::IAM::Role")
    assert roles, "expected the functions' roles in the template"
    for role in roles:
        assert not cfn["Resources"][role]["Properties"].get("ManagedPolicyArns"), (
            f"{role}: managed policies grant more than the functions use; write the statements out"
        )
        for statement in role_statements(cfn, role):
            assert "NotAction" not in statement, f"{role}: NotAction grants everything else"
            for action in as_list(statement["Action"]):
                assert "*" not in action, f"{role}: wildcard action {action!r}"
            if statement["Resource"] == "*":
                assert set(as_list(statement["Action"])) <= RESOURCE_LESS_ACTIONS, (
                    f"{role}: Resource '*' for {statement['Action']}"
                )


def check_granted_actions(cfn: dict[str, Any]) -> None:
    for function, expected in GRANTED_ACTIONS.items():
        granted = {
            action
            for statement in function_statements(cfn, function)
            if statement["Effect"] == "Allow"
            for action in as_list(statement["Action"])
        }
        assert granted == expected, f"{function}: unexpected {granted - expected}, missing {expected - granted}"


def check_s3_scopes(cfn: dict[str, Any]) -> None:
    for function in ("WebhookFunction", "ReconcileFunction", "RecoverFunction"):
        for statement in function_statements(cfn, function):
            assert not mentions(statement, "InboxBucket"), f"{function} must not touch the inbox"
            assert not mentions(statement, "upscale-inbox"), f"{function} must not touch the inbox"
            actions = set(as_list(statement["Action"]))
            if actions == {"s3:ListBucket"}:
                assert statement["Resource"] == OUTPUT_BUCKET, f"{function}: ListBucket on the output bucket only"
            elif actions == {"s3:GetObject", "s3:DeleteObject", "s3:PutObject", "s3:AbortMultipartUpload"}:
                # PutObject: a result whose upload failed is copied into its staging key.
                assert statement["Resource"] == STAGED_OBJECTS, f"{function}: writes and deletes staged results only"
            elif any(action.startswith("s3:") for action in actions):
                assert actions == {"s3:GetObject", "s3:PutObject"}, f"{function}: S3 {actions}"
                assert statement["Resource"] == OUTPUT_OBJECTS, f"{function}: S3 only on output objects"
    for statement in function_statements(cfn, "SubmitFunction"):
        actions = set(as_list(statement["Action"]))
        if statement["Resource"] in (OUTPUT_OBJECTS, OUTPUT_BUCKET):
            # An output that exists already: checked, and copied to a new job's output key.
            expected = (
                {"s3:GetObject", "s3:PutObject"} if statement["Resource"] == OUTPUT_OBJECTS else {"s3:ListBucket"}
            )
            assert actions == expected, f"SubmitFunction: {actions} on {statement['Resource']}"
            continue
        if actions & {"s3:GetObject", "s3:GetObjectVersion"}:
            assert actions == {"s3:GetObject", "s3:GetObjectVersion"}
            arn, variables = statement["Resource"]["Fn::Sub"]
            assert variables == {"Bucket": INBOX_NAME}, "submit reads the inbox (or the existing) bucket"
            assert arn == "arn:${AWS::Partition}:s3:::${Bucket}/${InboxPrefix}*", "only objects under the prefix"
        if "s3:ListBucket" in actions:
            assert actions == {"s3:ListBucket"}
            arn, variables = statement["Resource"]["Fn::Sub"]
            assert variables == {"Bucket": INBOX_NAME}
            assert arn == "arn:${AWS::Partition}:s3:::${Bucket}", "the inbox bucket itself"
        assert "s3:PutObject" not in actions, "submit writes nothing: UrlSigningRole signs the uploads"
    signing = [s for s in role_statements(cfn, "UrlSigningRole") if "s3:PutObject" in as_list(s["Action"])]
    assert [s["Resource"] for s in signing] == [STAGED_OBJECTS], "the signing role signs uploads to staged objects only"


def check_table_access(cfn: dict[str, Any]) -> None:
    table = {"Fn::GetAtt": ["JobsTable", "Arn"]}
    open_jobs = {"Fn::Sub": "${JobsTable.Arn}/index/openJobs"}
    pointers = {"Fn::GetAtt": ["PriorOutputsTable", "Arn"]}
    # The old status index only while a deployment migrates from it.
    index = {
        "Fn::If": [
            "KeepStatusIndex",
            [open_jobs, {"Fn::Sub": "${JobsTable.Arn}/index/jobsByStatus"}],
            open_jobs,
        ]
    }
    assert not any(
        allows(s, "dynamodb:Query") for f in FUNCTIONS if f != "ReconcileFunction" for s in function_statements(cfn, f)
    ), "only the safety net reads an index; recovery reads jobs by key"
    for function in FUNCTIONS:
        for statement in function_statements(cfn, function):
            actions = as_list(statement["Action"])
            if statement["Resource"] == pointers:
                # Every function keeps the pointer to a completed job's output; only submit reads it.
                reads = {"dynamodb:BatchGetItem"} if function == "SubmitFunction" else set()
                allowed = {"dynamodb:UpdateItem"} | reads
                assert set(actions) <= allowed, f"{function}: {actions} on the prior outputs table"
                continue
            if any(action.startswith("dynamodb:") for action in actions):
                expected = index if actions == ["dynamodb:Query"] else table
                assert statement["Resource"] == expected, f"{function}: {actions} on {statement['Resource']}"
    # Only the submit function creates jobs.
    assert not any(allows(s, "dynamodb:PutItem") for f in FUNCTIONS[1:] for s in function_statements(cfn, f))


def check_secret_readers(cfn: dict[str, Any]) -> None:
    for secret, readers in SECRET_READERS.items():
        granted_to = {
            function
            for function in FUNCTIONS
            for statement in function_statements(cfn, function)
            if allows(statement, "secretsmanager:GetSecretValue") and {"Ref": secret} in as_list(statement["Resource"])
        }
        assert granted_to == readers, f"{secret} readable by {granted_to}, expected {readers}"
        [policy] = [
            p["Properties"]
            for p in resources_of_type(cfn, "AWS::SecretsManager::ResourcePolicy").values()
            if p["Properties"]["SecretId"] == {"Ref": secret}
        ]
        [deny] = as_list(policy["ResourcePolicy"]["Statement"])
        assert deny["Effect"] == "Deny" and deny["Action"] == "secretsmanager:GetSecretValue"
        allowed_roles = {arn["Fn::GetAtt"][0] for arn in deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]}
        assert allowed_roles == {role_of(cfn, f) for f in readers}, f"{secret} resource policy"


def check_environment(cfn: dict[str, Any]) -> None:
    for function, names in FUNCTION_ENVIRONMENT.items():
        variables = environment(cfn, function)
        missing = names - variables.keys()
        assert not missing, f"{function} lacks environment variables {sorted(missing)}"
        assert variables["POWERTOOLS_SERVICE_NAME"] == FUNCTION_SETTINGS[function]["service"]
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "S3Upscale"
        assert variables["JOBS_TABLE"] == {"Ref": "JobsTable"}
        assert variables["OUTPUT_BUCKET"] == {"Ref": "OutputBucket"}
        assert variables["RUNWARE_API_URL"] == {"Ref": "RunwareApiUrl"}
        assert variables["RUNWARE_API_KEY_SECRET"] == {"Ref": "RunwareApiKeySecret"}
        assert variables["WEBHOOK_TOKEN_SECRET"] == {"Ref": "WebhookTokenSecret"}
        assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
        assert not mentions(variables, "resolve:secretsmanager"), "secret values never go into the environment"
    submit = environment(cfn, "SubmitFunction")
    assert submit["INBOX_PREFIX"] == {"Ref": "InboxPrefix"}
    assert submit["INBOX_BUCKET"] == INBOX_NAME, "sources come from the inbox, or the existing bucket"
    assert submit["OUTPUT_PREFIX"] == {"Ref": "OutputPrefix"}
    assert submit["WEBHOOK_URL"] == {
        "Fn::Sub": "https://${WebhookApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/webhook"
    }
    parameters = {
        "DEFAULT_TARGET_MEGAPIXELS": "TargetMegapixels",
        "DEFAULT_ENHANCE_DETAILS": "EnhanceDetails",
        "DEFAULT_REALISM": "Realism",
        "DEFAULT_OUTPUT_FORMAT": "OutputFormat",
        "DEFAULT_OUTPUT_QUALITY": "OutputQuality",
        "MAX_INPUT_BYTES": "MaxInputBytes",
        "PRESIGNED_URL_EXPIRY_SECONDS": "PresignedUrlExpirySeconds",
        "RUNWARE_RESULT_TTL_SECONDS": "RunwareResultTtlSeconds",
        "JOB_RETENTION_DAYS": "JobRetentionDays",
        "SUBMIT_PARALLELISM": "SubmitParallelism",
    }
    for variable, parameter in parameters.items():
        assert submit[variable] == {"Ref": parameter}, variable
    reconcile = environment(cfn, "ReconcileFunction")
    for variable, parameter in {
        "RECONCILE_AFTER_SECONDS": "ReconcileAfterSeconds",
        "JOB_MAX_AGE_SECONDS": "JobMaxAgeSeconds",
        "RECONCILE_MAX_JOBS": "ReconcileMaxJobs",
    }.items():
        assert reconcile[variable] == {"Ref": parameter}, variable


def check_buckets(cfn: dict[str, Any]) -> None:
    for bucket in ("InboxBucket", "OutputBucket"):
        properties = cfn["Resources"][bucket]["Properties"]
        assert properties["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, bucket
        [rule] = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms"), bucket
        [policy] = [
            p["Properties"]["PolicyDocument"]
            for p in resources_of_type(cfn, "AWS::S3::BucketPolicy").values()
            if p["Properties"]["Bucket"] == {"Ref": bucket}
        ]
        tls_only = [
            s
            for s in policy["Statement"]
            if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert tls_only, f"{bucket} must refuse requests without TLS"
        assert {"Fn::GetAtt": [bucket, "Arn"]} in tls_only[0]["Resource"]
        assert {"Fn::Sub": f"${{{bucket}.Arn}}/*"} in tls_only[0]["Resource"]
    inbox = cfn["Resources"]["InboxBucket"]["Properties"]
    assert inbox.get("VersioningConfiguration") == {"Status": "Enabled"}, "jobs are keyed by object version"


def check_table(cfn: dict[str, Any]) -> None:
    table = cfn["Resources"]["JobsTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "jobId", "KeyType": "HASH"}]
    plain = [a for a in table["AttributeDefinitions"] if "AttributeName" in a]
    types = {a["AttributeName"]: a["AttributeType"] for a in plain}
    assert types == {"jobId": "S", "openShard": "N", "openSince": "S"}
    [index, legacy] = table["GlobalSecondaryIndexes"]
    # Open jobs only (sparse), write-sharded, projecting what the safety net reads (upscaler.open_jobs).
    assert index["IndexName"] == "openJobs"
    assert index["KeySchema"] == [
        {"AttributeName": "openShard", "KeyType": "HASH"},
        {"AttributeName": "openSince", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status"]}
    # The status index of earlier versions exists only while migrating, with its attribute definitions.
    condition, kept, gone = legacy["Fn::If"]
    assert condition == "KeepStatusIndex" and gone == {"Ref": "AWS::NoValue"}
    assert kept["IndexName"] == "jobsByStatus"
    conditional = [a["Fn::If"] for a in table["AttributeDefinitions"] if "Fn::If" in a]
    assert {branch[1]["AttributeName"] for branch in conditional} == {"status", "createdAt"}
    assert all(branch[0] == "KeepStatusIndex" and branch[2] == {"Ref": "AWS::NoValue"} for branch in conditional)
    assert table.get("TimeToLiveSpecification") == {"AttributeName": "expiresAt", "Enabled": True}
    assert table.get("PointInTimeRecoverySpecification") == {"PointInTimeRecoveryEnabled": True}
    assert table.get("SSESpecification", {}).get("SSEEnabled") is True
    resource = cfn["Resources"]["JobsTable"]
    assert resource.get("DeletionPolicy") == "Retain", "the job records survive sam delete"
    assert resource.get("UpdateReplacePolicy") == "Retain", "the job records survive a replacement"


def _both_branches(statements: list[Any]) -> list[dict[str, Any]]:
    """Statements with each Fn::If expanded into both of its branches (AWS::NoValue dropped)."""
    expanded: list[dict[str, Any]] = []
    for statement in statements:
        branches = statement["Fn::If"][1:] if "Fn::If" in statement else [statement]
        expanded.extend(branch for branch in branches if branch != {"Ref": "AWS::NoValue"})
    return expanded


def check_senders_name_their_source(cfn: dict[str, Any]) -> None:
    """Whatever an AWS service may send to names the sending resource (aws:SourceArn), not only the
    account: every function permission, and every queue or topic policy statement for a service."""
    for name, resource in resources_of_type(cfn, "AWS::Lambda::Permission").items():
        properties = resource["Properties"]
        assert properties.get("SourceArn"), f"{name}: {properties['Principal']} may invoke without a SourceArn"
    for kind in ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
        for name, resource in resources_of_type(cfn, kind).items():
            for statement in _both_branches(as_list(resource["Properties"]["PolicyDocument"]["Statement"])):
                principal = statement.get("Principal", {})
                if statement["Effect"] == "Allow" and isinstance(principal, dict) and "Service" in principal:
                    assert mentions(statement.get("Condition", {}), "aws:SourceArn"), f"{name}: no aws:SourceArn"


def check_dead_letter_queue(cfn: dict[str, Any]) -> None:
    queue = cfn["Resources"]["SubmitDeadLetterQueue"]["Properties"]
    assert queue.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue
    assert queue["MessageRetentionPeriod"] == 1209600


def check_upload_events_dead_letter_queue(cfn: dict[str, Any]) -> None:
    """An upload event EventBridge cannot deliver lands in the submit DLQ (re-driven the same way:
    SQS re-drives only from another SQS queue's DLQ), which lets the rule, and only it, send there."""
    [target] = cfn["Resources"]["ExistingBucketUploadRule"]["Properties"]["Targets"]
    assert target.get("DeadLetterConfig") == {"Arn": {"Fn::GetAtt": ["SubmitDeadLetterQueue", "Arn"]}}
    [policy] = [
        resource
        for resource in resources_of_type(cfn, "AWS::SQS::QueuePolicy").values()
        if resource["Properties"]["Queues"] == [{"Ref": "SubmitDeadLetterQueue"}]
    ]
    assert policy["Condition"] == "UseExistingBucket"
    [sender] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert sender["Principal"] == {"Service": "events.amazonaws.com"}
    assert sender["Action"] == "sqs:SendMessage"
    assert sender["Resource"] == {"Fn::GetAtt": ["SubmitDeadLetterQueue", "Arn"]}
    assert sender["Condition"]["ArnEquals"] == {"aws:SourceArn": {"Fn::GetAtt": ["ExistingBucketUploadRule", "Arn"]}}
    assert sender["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


def check_source_kms_grant(cfn: dict[str, Any]) -> None:
    """kms:Decrypt only on the keys SourceKmsKeyArns names, only through S3, only when it names any."""
    [policy] = cfn["Resources"]["SubmitFunctionRole"]["Properties"]["Policies"]
    [granted] = [
        entry["Fn::If"]
        for entry in policy["PolicyDocument"]["Statement"]
        if "Fn::If" in entry and mentions(entry, "kms:Decrypt")
    ]
    condition, statement, otherwise = granted
    assert (condition, otherwise) == ("GrantSourceKmsKeys", {"Ref": "AWS::NoValue"})
    assert statement["Action"] == "kms:Decrypt" and statement["Resource"] == {"Ref": "SourceKmsKeyArns"}
    assert statement.get("Condition") == {
        "StringEquals": {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.${AWS::URLSuffix}"}}
    }
    assert cfn["Conditions"]["GrantSourceKmsKeys"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "SourceKmsKeyArns"}]}, ""]}]
    }
    for function in ("WebhookFunction", "ReconcileFunction"):
        assert not any(allows(s, "kms:Decrypt") for s in function_statements(cfn, function)), function


def check_secrets(cfn: dict[str, Any]) -> None:
    runware = cfn["Resources"]["RunwareApiKeySecret"]["Properties"]
    assert runware["SecretString"].strip(), "the Runware key secret starts with a placeholder value"
    assert "GenerateSecretString" not in runware
    token = cfn["Resources"]["WebhookTokenSecret"]["Properties"]["GenerateSecretString"]
    assert token["PasswordLength"] >= 48
    assert "SecretStringTemplate" not in token, "the token key is a plain string"


def check_alarms(cfn: dict[str, Any]) -> None:
    alarms = [a["Properties"] for a in resources_of_type(cfn, "AWS::CloudWatch::Alarm").values()]

    def watching(namespace: str, metric: str, dimension: Any) -> dict[str, Any]:
        found = [
            a
            for a in alarms
            if a.get("Namespace") == namespace
            and a.get("MetricName") == metric
            and mentions(a["Dimensions"], dimension)
        ]
        assert found, f"no alarm on {namespace} {metric} {dimension}"
        alarm = found[0]
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == 0
        assert alarm["AlarmActions"] == {"Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]}
        return alarm

    watching("AWS/SQS", "ApproximateNumberOfMessagesVisible", "SubmitDeadLetterQueue")
    backlog = [a for a in alarms if a.get("MetricName") == "ApproximateAgeOfOldestMessage"]
    assert backlog and mentions(backlog[0]["Dimensions"], "IngestQueue"), "an alarm on the ingestion backlog"
    for function in FUNCTIONS:
        watching("AWS/Lambda", "Errors", function)
    for metric in ("InvocationsSentToDlq", "InvocationsFailedToBeSentToDlq"):
        assert watching("AWS/Events", metric, "ExistingBucketUploadRule")["Dimensions"] == [
            {"Name": "RuleName", "Value": {"Ref": "ExistingBucketUploadRule"}}
        ]
    for metric in ("IntakePaused", "SpendLimitReached"):  # published by the resume schedule every minute
        paused = watching("S3Upscale", metric, "upscale-reconcile")
        assert paused["Period"] == 60 and paused["Statistic"] == "Maximum", "in ALARM for every minute of a pause"
        assert (paused["EvaluationPeriods"], paused["DatapointsToAlarm"]) == (3, 1), "one late run does not flap it"
    watching("AWS/SQS", "ApproximateNumberOfMessagesVisible", "RecoveryDeadLetterQueue")
    # Timeouts come from recovery checks and from the safety net: one alarm on their sum.
    found = [a for a in alarms if mentions(a.get("Metrics", []), "JobsTimedOut")]
    assert len(found) == 1, "one alarm on jobs timed out"
    [timed_out] = found
    stats = [query["MetricStat"] for query in timed_out["Metrics"] if "MetricStat" in query]
    services = {stat["Metric"]["Dimensions"][0]["Value"] for stat in stats}
    assert services == {"upscale-recover", "upscale-reconcile"}
    assert timed_out["ComparisonOperator"] == "GreaterThanThreshold" and timed_out["Threshold"] == 0
    # The oldest open job: a metric of the safety net, whose absence means the net stopped.
    [oldest] = [a for a in alarms if a.get("MetricName") == "OldestOpenJobAgeSeconds"]
    assert oldest["Threshold"] == {"Ref": "JobMaxAgeSeconds"} and oldest["TreatMissingData"] == "breaching"
    topic = cfn["Resources"]["AlarmTopic"]
    assert topic["Condition"] == "HasAlarmEmail"
    [subscription] = resources_of_type(cfn, "AWS::SNS::Subscription").values()
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }
    assert cfn["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}


SAM_CHECKS: list[Callable[[dict[str, Any]], None]] = [
    check_contract_resources,
    check_function_code_and_layer,
    check_submit_event_source,
    check_parameters,
    check_outputs,
]
CFN_CHECKS: list[Callable[[dict[str, Any]], None]] = [
    check_functions,
    check_s3_notification,
    check_queue_policy,
    check_existing_bucket_rule,
    check_webhook_route,
    check_schedule,
    check_event_source_mapping,
    check_intake_pause,
    check_completion_event_permissions,
    check_no_wildcard_actions,
    check_granted_actions,
    check_s3_scopes,
    check_table_access,
    check_secret_readers,
    check_environment,
    check_buckets,
    check_table,
    check_senders_name_their_source,
    check_dead_letter_queue,
    check_upload_events_dead_letter_queue,
    check_source_kms_grant,
    check_secrets,
    check_alarms,
]


@pytest.mark.parametrize("check", SAM_CHECKS, ids=lambda c: c.__name__)
def test_sam_template(template, check):
    check(template)


@pytest.mark.parametrize("check", CFN_CHECKS, ids=lambda c: c.__name__)
def test_transformed_template(translated, check):
    check(translated)


# ---------------------------------------------------------------- the checks catch regressions


def _statement(sam: dict[str, Any], role: str, sid: str) -> dict[str, Any]:
    [policy] = sam["Resources"][role]["Properties"]["Policies"]
    [statement] = [s for s in policy["PolicyDocument"]["Statement"] if s.get("Sid") == sid]
    return statement


def _props(sam: dict[str, Any], name: str) -> dict[str, Any]:
    return sam["Resources"][name]["Properties"]


def _webhook_reads_inbox(sam):
    _statement(sam, "WebhookFunctionRole", "PublishResults")["Resource"] = [
        {"Fn::Sub": "${OutputBucket.Arn}/${OutputPrefix}*"},
        {"Fn::Sub": "arn:${AWS::Partition}:s3:::upscale-inbox-x/*"},
    ]


def _route_accepts_any_method(sam):
    _props(sam, "WebhookFunction")["Events"]["ResultWebhook"]["Properties"]["Method"] = "ANY"


def _s3_wildcard(sam):
    _statement(sam, "ReconcileFunctionRole", "PublishResults")["Action"] = "s3:*"


def _webhook_reads_runware_key(sam):
    _statement(sam, "WebhookFunctionRole", "ReadWebhookTokenKey")["Resource"] = [
        {"Ref": "WebhookTokenSecret"},
        {"Ref": "RunwareApiKeySecret"},
    ]


def _notification_without_prefix(sam):
    del _props(sam, "InboxBucket")["NotificationConfiguration"]["QueueConfigurations"][0]["Filter"]


def _no_dead_letter_queue(sam):
    del _props(sam, "IngestQueue")["RedrivePolicy"]


def _batch_failures_not_reported(sam):
    del _props(sam, "SubmitFunction")["Events"]["IngestQueue"]["Properties"]["FunctionResponseTypes"]


def _queue_open_to_any_bucket(sam):
    [s3_sender, *_] = _props(sam, "IngestQueuePolicy")["PolicyDocument"]["Statement"]
    del s3_sender["Fn::If"][1]["Condition"]["StringEquals"]


def _events_on_any_bus(sam):
    _statement(sam, "WebhookFunctionRole", "PublishCompletionEvents")["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/*"
    }


def _missing_environment_variable(sam):
    del _props(sam, "SubmitFunction")["Environment"]["Variables"]["WEBHOOK_URL"]


def _managed_policy_on_role(sam):
    _props(sam, "WebhookFunctionRole")["ManagedPolicyArns"] = ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]


def _inbox_not_versioned(sam):
    del _props(sam, "InboxBucket")["VersioningConfiguration"]


def _table_without_pitr(sam):
    del _props(sam, "JobsTable")["PointInTimeRecoverySpecification"]


def _short_dlq_retention(sam):
    _props(sam, "SubmitDeadLetterQueue")["MessageRetentionPeriod"] = 345600


def _layer_built_for_x86(sam):
    sam["Resources"]["CommonLayer"]["Metadata"]["BuildArchitecture"] = "x86_64"


def _no_timeout_alarm(sam):
    del sam["Resources"]["JobsTimedOutAlarm"]


def _table_deleted_with_the_stack(sam):
    del sam["Resources"]["JobsTable"]["DeletionPolicy"]


def _eventbridge_permission_without_source(sam):
    sam["Resources"]["AnyRuleMayInvoke"] = {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Ref": "ReconcileFunction"},
            "Principal": "events.amazonaws.com",
            "SourceAccount": {"Ref": "AWS::AccountId"},
        },
    }


def _queue_policy_without_source(sam):
    sam["Resources"]["OpenQueuePolicy"] = {
        "Type": "AWS::SQS::QueuePolicy",
        "Properties": {
            "Queues": [{"Ref": "SubmitDeadLetterQueue"}],
            "PolicyDocument": {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "s3.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": {"Fn::GetAtt": ["SubmitDeadLetterQueue", "Arn"]},
                        "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
                    }
                ]
            },
        },
    }


def _upload_rule_without_dead_letter_queue(sam):
    del _props(sam, "ExistingBucketUploadRule")["Targets"][0]["DeadLetterConfig"]


def _kms_decrypt_outside_s3(sam):
    [policy] = _props(sam, "SubmitFunctionRole")["Policies"]
    for entry in policy["PolicyDocument"]["Statement"]:
        if "Fn::If" in entry and mentions(entry, "kms:Decrypt"):
            del entry["Fn::If"][1]["Condition"]


def _pause_switch_on_every_mapping(sam):
    policy = sam["Resources"]["IngestMappingSwitchPolicy"]["Properties"]["PolicyDocument"]
    policy["Statement"][0]["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:event-source-mapping:*"
    }


def _pause_delete_on_any_item(sam):
    del _statement(sam, "SubmitFunctionRole", "ClearIntakePause")["Condition"]


def _extra_table_write(sam):
    _statement(sam, "WebhookFunctionRole", "AdvanceJobs")["Action"].append("dynamodb:PutItem")


REGRESSIONS = {
    "webhook reads the inbox": (_webhook_reads_inbox, check_s3_scopes),
    "webhook route accepts any method": (_route_accepts_any_method, check_webhook_route),
    "s3:* granted": (_s3_wildcard, check_no_wildcard_actions),
    "webhook reads the Runware key": (_webhook_reads_runware_key, check_secret_readers),
    "inbox notification without prefix": (_notification_without_prefix, check_s3_notification),
    "no dead-letter queue": (_no_dead_letter_queue, check_event_source_mapping),
    "batch item failures not reported": (_batch_failures_not_reported, check_event_source_mapping),
    "queue open to any account's bucket": (_queue_open_to_any_bucket, check_queue_policy),
    "completion events on any bus": (_events_on_any_bus, check_completion_event_permissions),
    "WEBHOOK_URL missing": (_missing_environment_variable, check_environment),
    "managed policy on a role": (_managed_policy_on_role, check_no_wildcard_actions),
    "inbox not versioned": (_inbox_not_versioned, check_buckets),
    "table without PITR": (_table_without_pitr, check_table),
    "DLQ keeps 4 days": (_short_dlq_retention, check_dead_letter_queue),
    "layer built for x86_64": (_layer_built_for_x86, check_function_code_and_layer),
    "no timed-out jobs alarm": (_no_timeout_alarm, check_alarms),
    "webhook may create jobs": (_extra_table_write, check_granted_actions),
    "intake pause switches any mapping": (_pause_switch_on_every_mapping, check_intake_pause),
    "submit may delete any job": (_pause_delete_on_any_item, check_intake_pause),
    "jobs table deleted with the stack": (_table_deleted_with_the_stack, check_table),
    "any EventBridge rule may invoke": (_eventbridge_permission_without_source, check_senders_name_their_source),
    "queue policy names only the account": (_queue_policy_without_source, check_senders_name_their_source),
    "upload events dropped when undeliverable": (
        _upload_rule_without_dead_letter_queue,
        check_upload_events_dead_letter_queue,
    ),
    "kms:Decrypt outside S3": (_kms_decrypt_outside_s3, check_source_kms_grant),
}


@pytest.mark.parametrize("regression", REGRESSIONS, ids=list(REGRESSIONS))
def test_checks_catch_regressions(template, regression):
    mutate, check = REGRESSIONS[regression]
    broken = copy.deepcopy(template)
    mutate(broken)
    subject = broken if check in SAM_CHECKS else translate(broken)
    with pytest.raises(AssertionError):
        check(subject)


# ---------------------------------------------------------------- the loader


def test_loader_understands_short_form_tags(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(
        "Resources:\n"
        "  A:\n"
        "    Properties:\n"
        "      Ref: !Ref B\n"
        "      Att: !GetAtt B.Arn\n"
        "      Sub: !Sub ['${X}', {X: !Select [0, !Split ['-', !Ref AWS::StackId]]}]\n"
        "      If: !If [C, !Ref AWS::NoValue, 1]\n"
        "      Not: !Not [!Equals [!Ref P, '']]\n"
        "      Cond: !Condition C\n",
        encoding="utf-8",
    )
    properties = load_template(path)["Resources"]["A"]["Properties"]
    assert properties["Ref"] == {"Ref": "B"}
    assert properties["Att"] == {"Fn::GetAtt": ["B", "Arn"]}
    assert properties["Sub"] == {
        "Fn::Sub": ["${X}", {"X": {"Fn::Select": [0, {"Fn::Split": ["-", {"Ref": "AWS::StackId"}]}]}}]
    }
    assert properties["If"] == {"Fn::If": ["C", {"Ref": "AWS::NoValue"}, 1]}
    assert properties["Not"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "P"}, ""]}]}
    assert properties["Cond"] == {"Condition": "C"}


# ---------------------------------------------------------------- the deployment guide


DEPLOYING = ROOT / "docs" / "deploy.md"
SECURITY = ROOT / "docs" / "security.md"


def _guide_section(title: str, page: Path = DEPLOYING) -> str:
    text = page.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_guide_lists_every_parameter_with_its_default(template):
    table = _guide_section("Configuration parameters")
    for name, parameter in template["Parameters"].items():
        row = next((line for line in table.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"docs/deploy.md does not describe parameter {name}"
        default = str(parameter["Default"])
        assert (f"`{default}`" in row) if default else "(empty)" in row, f"{name}: default {default!r}"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_guide_lists_every_granted_action(function):
    text = _guide_section("IAM: every action each function is granted", SECURITY)
    start = text.index(f"### {function}\n")
    end = text.find("\n### ", start + 1)
    section = text[start:end]
    for action in GRANTED_ACTIONS[function]:
        assert f"`{action}`" in section, f"docs/security.md does not explain {action} for {function}"
    listed = {
        action
        for line in section.splitlines()
        if line.startswith("| `")
        for action in re.findall(r"`([a-z0-9]+:[A-Za-z]+)`", line.split(" | ")[0])
    }
    assert listed == GRANTED_ACTIONS[function], (
        f"docs/security.md lists {listed - GRANTED_ACTIONS[function]} not granted"
    )


def test_template_points_only_at_files_that_exist():
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    for path in re.findall(r"[\w./-]+\.md\b", text):
        assert (ROOT / path).exists(), f"template.yaml refers to {path}, which does not exist"
