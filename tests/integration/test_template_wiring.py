"""The local stack must run what template.yaml deploys: these fail if the two drift apart."""

from __future__ import annotations

import json

import pytest

from local.stack import LocalStack
from local.template import function_specs, load_template
from upscaler.settings import Settings


class RecordingEnvironment(dict[str, str]):
    """A mapping that remembers every name looked up in it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)


def test_every_setting_the_library_reads_is_set_by_the_template(stack: LocalStack) -> None:
    template = load_template()
    declared: set[str] = set()
    for spec in function_specs(template).values():
        declared |= set(spec.environment)
    environment = RecordingEnvironment({name: stack.environment[name] for name in declared})
    Settings.from_environment(environment)
    missing = environment.read - declared - Settings.OPTIONAL_VARIABLES
    assert not missing, f"the library reads settings the template never sets: {sorted(missing)}"


def test_local_inbox_notification_matches_the_template(stack: LocalStack) -> None:
    template = load_template()
    [declared] = template["Resources"]["InboxBucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    configuration = stack.client("s3").get_bucket_notification_configuration(Bucket=stack.names["inbox_bucket"])
    (queue,) = configuration["QueueConfigurations"]
    rules = {rule["Name"].lower(): rule["Value"] for rule in queue["Filter"]["Key"]["FilterRules"]}
    expected_prefix = template["Parameters"]["InboxPrefix"]["Default"]
    assert rules == {"prefix": expected_prefix}
    assert stack.names["inbox_prefix"] == expected_prefix
    assert queue["Events"] == [declared["Event"]]
    assert queue["QueueArn"] == stack.resolver.resources["IngestQueue"]["Arn"]


def test_local_event_source_mapping_matches_the_template(stack: LocalStack) -> None:
    template = load_template()
    parameters = template["Parameters"]
    [event] = [e for e in function_specs(template)["SubmitFunction"].events.values() if e["Type"] == "SQS"]
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert stack.ingestion is not None
    mapping = stack.ingestion.settings
    assert mapping.queue_arn == stack.resolver.resources["IngestQueue"]["Arn"]
    assert mapping.batch_size == parameters["SubmitBatchSize"]["Default"] == 10
    assert mapping.batching_window_seconds == parameters["SubmitBatchingWindowSeconds"]["Default"]
    assert mapping.maximum_concurrency == parameters["SubmitMaximumConcurrency"]["Default"]
    assert mapping.report_batch_item_failures
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_ingestion_mapping_is_in_lambda_where_the_functions_look_for_it(stack: LocalStack) -> None:
    """The submit function finds its mapping by its own name and the queue ARN; the reconcile function
    by SUBMIT_FUNCTION_NAME and INGEST_QUEUE_ARN, which the template sets (intake pauses)."""
    lambda_client = stack.client("lambda")
    submit_name = stack.functions["SubmitFunction"].name
    assert stack.environment["SUBMIT_FUNCTION_NAME"] == submit_name
    assert stack.environment["INGEST_QUEUE_ARN"] == stack.resolver.resources["IngestQueue"]["Arn"]
    assert stack.environment["INGEST_QUEUE_URL"] == stack.names["ingest_queue_url"]
    assert stack.environment["DEAD_LETTER_QUEUE_URL"] == stack.names["dlq_url"]
    [mapping] = lambda_client.list_event_source_mappings(
        FunctionName=submit_name, EventSourceArn=stack.environment["INGEST_QUEUE_ARN"]
    )["EventSourceMappings"]
    assert mapping["UUID"] == stack.names["ingest_mapping_uuid"]
    assert stack.ingestion is not None and mapping["BatchSize"] == stack.ingestion.settings.batch_size


def test_local_recovery_checks_mapping_matches_the_template(stack: LocalStack) -> None:
    template = load_template()
    [event] = [e for e in function_specs(template)["RecoverFunction"].events.values() if e["Type"] == "SQS"]
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["RecoveryQueue", "Arn"]}
    assert stack.recovery is not None
    mapping = stack.recovery.settings
    assert mapping.queue_arn == stack.resolver.resources["RecoveryQueue"]["Arn"]
    assert mapping.batch_size == event["Properties"]["BatchSize"]
    assert mapping.batching_window_seconds == event["Properties"]["MaximumBatchingWindowInSeconds"]
    assert mapping.maximum_concurrency == template["Parameters"]["RecoveryMaximumConcurrency"]["Default"]
    assert mapping.report_batch_item_failures
    assert stack.environment["RECOVERY_QUEUE_URL"] == stack.resolver.resources["RecoveryQueue"]["QueueUrl"]


def test_local_queue_redrive_policy_matches_the_template(stack: LocalStack) -> None:
    template = load_template()
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.names["ingest_queue_url"], AttributeNames=["All"]
    )["Attributes"]
    policy = json.loads(attributes["RedrivePolicy"])
    assert policy["deadLetterTargetArn"] == stack.resolver.resources["SubmitDeadLetterQueue"]["Arn"]
    assert policy["maxReceiveCount"] == template["Parameters"]["SubmitMaxReceiveCount"]["Default"]
    declared = template["Resources"]["IngestQueue"]["Properties"]
    assert int(attributes["VisibilityTimeout"]) == declared["VisibilityTimeout"]
    assert stack.names["dlq_url"] == stack.resolver.resources["SubmitDeadLetterQueue"]["QueueUrl"]


def test_local_names_come_from_the_template(stack: LocalStack) -> None:
    template = load_template()
    resolved = stack.resolver.resolve
    inbox = resolved(template["Resources"]["InboxBucket"]["Properties"]["BucketName"])
    output = resolved(template["Resources"]["OutputBucket"]["Properties"]["BucketName"])
    assert stack.names["inbox_bucket"] == inbox
    assert stack.names["output_bucket"] == output != inbox
    buckets = {bucket["Name"] for bucket in stack.client("s3").list_buckets()["Buckets"]}
    assert {inbox, output} <= buckets
    assert stack.environment["OUTPUT_BUCKET"] == output
    assert stack.environment["OUTPUT_PREFIX"] == template["Parameters"]["OutputPrefix"]["Default"]
    table = stack.client("dynamodb").describe_table(TableName=stack.names["jobs_table"])["Table"]
    declared = template["Resources"]["JobsTable"]["Properties"]
    assert table["KeySchema"] == declared["KeySchema"]
    # The old status index is declared only while migrating (StatusIndexMigration), off by default.
    assert (
        [index["IndexName"] for index in table["GlobalSecondaryIndexes"]]
        == [index["IndexName"] for index in resolved(declared["GlobalSecondaryIndexes"])]
        == ["openJobs"]
    )


@pytest.mark.parametrize("logical_id", ["SubmitFunction", "WebhookFunction", "ReconcileFunction", "RecoverFunction"])
def test_each_handler_the_template_names_is_what_runs_locally(stack: LocalStack, logical_id: str) -> None:
    spec = function_specs(load_template())[logical_id]
    assert spec.module_file.is_file()
    assert spec.handler == "app.lambda_handler"
    local = stack.functions[logical_id]
    assert local.module.__file__ == str(spec.module_file)
    assert local.handler is local.module.lambda_handler
    for name in spec.environment:
        assert name in stack.environment, f"{logical_id} environment variable {name} not set locally"


def test_webhook_route_is_served_at_the_template_path(stack: LocalStack) -> None:
    spec = function_specs(load_template())["WebhookFunction"]
    (event,) = [e for e in spec.events.values() if e["Type"] == "HttpApi"]
    assert event["Properties"]["Method"].upper() == "POST"
    assert stack.names["webhook_url"].endswith(event["Properties"]["Path"])
    assert stack.names["webhook_url"].startswith("http://127.0.0.1:")
