"""The embedded local stack: everything the pipeline needs, on loopback, in one process.

- AWS: a moto server (S3, DynamoDB, SQS, EventBridge, Secrets Manager) with the resources
  template.yaml declares, named the way the template names them; in threads of this process, or
  on request in a process of its own (local/moto_process.py).
- Ingestion: the inbox bucket notifies the ingestion queue (or, with ExistingBucketName, the bucket
  sends EventBridge events that the template's rule routes to it); the queue's event source mapping
  is played by local/event_source_mapping.py for the real submit handler, and the queue's redrive
  policy dead-letters what keeps failing. Message move tasks (re-drive) come from
  local/message_move.py.
- moto made as strict as AWS where the pipeline depends on it: queue and table changes atomic
  (local/moto_atomic_queues.py, local/moto_atomic_tables.py), reads of encrypted sources refused as
  the template's grant would (local/s3_encrypted_sources.py), rule targets' dead-letter queues used
  (local/event_dead_letters.py).
- Completion events: the functions put them on the template's bus in moto; a local rule routes
  them to a queue that `s3-upscale --local watch --events` reads.
- Runware: the emulator in local/runware_emulator/.
- The HTTP API: a webhook gateway that turns HTTP requests into API Gateway HTTP API (v2) events for
  the real webhook handler.
- Recovery: each submitted job's check waits in the recovery checks queue (its delay honoured by
  moto) and the queue's event source mapping runs the real recover handler, as in AWS.
- The schedules: the real reconcile handler (the safety net) on a timer, and on a second, shorter one the resumer
  of intake after a pause (the template's one-minute IntakeResumeSchedule). The ingestion mapping
  exists in moto's Lambda too, so a paused intake disables it and the resumer enables it again
  through the Lambda API, as in AWS (local/event_source_mapping.py).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config

from local.custom_resources import create_all, custom_resources, service_function
from local.event_source_mapping import EventSourceMapping, MappingSettings, MappingState, register_mapping
from local.function_processes import FunctionProcesses
from local.lambda_runtime import LocalFunction, ensure_layer_on_path
from local.moto_process import MotoServer
from local.runware_emulator import FaultConfig, RunwareEmulator
from local.template import (
    FunctionSpec,
    TemplateResolver,
    function_specs,
    load_template,
    resources_of_type,
)
from local.webhook_gateway import WebhookGateway
from upscaler.job_record import TERMINAL_STATUSES, record_from_item

logger = logging.getLogger("local.stack")

LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
LOCAL_RUNWARE_KEY = "local-emulator-key"
LOCAL_SECRET_CACHE_SECONDS = "5"
HTTP_API_ID = "local-http-api"

# Template defaults are sized for production; locally a run lasts seconds, so the reconciler
# looks sooner and gives up sooner. Anything here can be overridden per stack.
LOCAL_PARAMETER_OVERRIDES = {
    "ReconcileAfterSeconds": "20",
    "JobMaxAgeSeconds": "180",
}


@dataclass
class StackConfig:
    faults: FaultConfig = field(default_factory=FaultConfig)
    emulator_workers: int = 4
    reconcile_interval_seconds: float = 5.0
    # A message the function failed on is received again after this many seconds (not the queue's
    # visibility timeout of minutes): the same steps as in AWS, faster.
    redelivery_seconds: int = 1
    # Intake pauses, on the same faster clock: the resumer's schedule (one minute in AWS) and the
    # back-off between attempts (one minute doubling to 30 in AWS).
    resume_intake_interval_seconds: float = 0.5
    intake_pause_first_wait_seconds: int = 1
    intake_pause_longest_wait_seconds: int = 4
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    function_log_level: str = "WARNING"
    # False: the recovery checks queue's mapping waits for start_recovery() (a backlog built first).
    recover_on_start: bool = True
    # More than 0: the recover function's invocations run in that many processes of their own
    # (local.function_processes), as Lambda runs concurrent invocations in separate environments.
    recover_processes: int = 0
    # True: the moto server runs in a process of its own (local.moto_process), not in threads of the
    # stack's; tests that reach moto's state need it here (the default).
    moto_in_own_process: bool = False
    seed: int | None = None
    aws_port: int = 0  # 0 picks a free port


class LocalStack:
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.template = load_template()
        self.functions_spec: dict[str, FunctionSpec] = function_specs(self.template)
        self.resolver = TemplateResolver(
            self.template,
            region=LOCAL_REGION,
            parameter_overrides={**LOCAL_PARAMETER_OVERRIDES, **self.config.parameter_overrides},
        )
        self.functions: dict[str, LocalFunction] = {}
        self.names: dict[str, str] = {}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.moto_server: MotoServer | None = None
        self.emulator: RunwareEmulator | None = None
        self.gateway: WebhookGateway | None = None
        self.ingestion: EventSourceMapping | None = None
        # The recovery checks queue's mapping, for the real recover function (each job's own check).
        self.recovery: EventSourceMapping | None = None
        self.recover_processes: FunctionProcesses | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalStack:
        """Start every part; a part that fails to start (a refused custom resource) stops those started."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> LocalStack:
        self._start_moto()
        self._create_resources()
        self.emulator = RunwareEmulator(
            host="127.0.0.1",
            port=0,
            workers=self.config.emulator_workers,
            faults=self.config.faults,
            seed=self.config.seed,
            api_key=LOCAL_RUNWARE_KEY,  # the key the stack's secret holds: any other is refused, as Runware does
        )
        self.emulator.start()
        self.gateway = WebhookGateway(host="127.0.0.1", port=0)
        self.gateway.start()
        self._configure_functions()
        self.gateway.route("POST", self._http_api_path(), self.functions["WebhookFunction"])
        mapping = self._mapping_settings()
        self.names["ingest_mapping_uuid"] = register_mapping(
            self.client("lambda"), self.client("iam"), self.functions["SubmitFunction"].name, mapping
        )
        self.ingestion = EventSourceMapping(
            mapping,
            lambda: self.client("sqs"),
            lambda event: self.functions["SubmitFunction"].invoke(event),
            redelivery_seconds=self.config.redelivery_seconds,
            delivering=MappingState(lambda: self.client("lambda"), self.names["ingest_mapping_uuid"]),
        )
        self.ingestion.start()
        if self.config.recover_on_start:
            self.start_recovery()
        if self.config.reconcile_interval_seconds > 0:
            self._spawn(self._reconcile_loop, "reconcile")
        if self.config.resume_intake_interval_seconds > 0:
            self._spawn(self._resume_intake_loop, "resume-intake")
        return self

    def start_recovery(self) -> None:
        """Start the recovery checks queue's event source mapping (at start, unless the config says not)."""
        if self.recovery is not None:
            return
        invoke: Callable[[dict[str, Any]], Any] = lambda event: self.functions["RecoverFunction"].invoke(event)  # noqa: E731
        if self.config.recover_processes > 0:
            function = self.functions["RecoverFunction"]
            self.recover_processes = FunctionProcesses(
                function.spec, function.name, self.config.recover_processes, self.environment
            )
            invoke = self.recover_processes.invoke
        self.recovery = EventSourceMapping(
            self._mapping_settings("RecoverFunction"),
            lambda: self.client("sqs"),
            invoke,
            redelivery_seconds=self.config.redelivery_seconds,
        )
        self.recovery.start()

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.ingestion:
            self.ingestion.stop()
        if self.recovery:
            self.recovery.stop()
        if self.recover_processes:
            self.recover_processes.stop()
        if self.gateway:
            self.gateway.stop()
        if self.emulator:
            self.emulator.stop()
        if self.moto_server:
            self.moto_server.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- AWS (moto) ------------------------------------------------------------------------

    def _start_moto(self) -> None:
        from local.moto_process import MotoInProcess, MotoServerProcess

        server = MotoServerProcess if self.config.moto_in_own_process else MotoInProcess
        self.moto_server = server(port=self.config.aws_port)
        self.aws_endpoint = self.moto_server.endpoint
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.aws_endpoint,
                "AWS_REGION": LOCAL_REGION,
                "AWS_DEFAULT_REGION": LOCAL_REGION,
                **LOCAL_CREDENTIALS,
            }
        )
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
            os.environ.pop(name, None)

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name=LOCAL_REGION,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
        )

    def _exists(self, resource: dict[str, Any]) -> bool:
        """False for a resource whose Condition is false with the stack's parameters."""
        condition = resource.get("Condition")
        return condition is None or self.resolver.condition(condition)

    def _declared(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in resources_of_type(self.template, resource_type).items() if self._exists(v)}

    def _create_resources(self) -> None:
        resolve = self.resolver.resolve
        resources = self.resolver.resources
        sqs = self.client("sqs")
        queues = self._declared("AWS::SQS::Queue")
        for logical_id, resource in queues.items():
            name = (
                resolve(resource.get("Properties", {}).get("QueueName")) or f"{self.resolver.stack_name}-{logical_id}"
            )
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            resources[logical_id] = {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}
        # Attributes once every queue exists: a redrive policy names another queue's ARN.
        for logical_id, resource in queues.items():
            properties = resolve(resource.get("Properties", {}))
            attributes = {
                name: str(properties[name])
                for name in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds")
                if name in properties
            }
            if "RedrivePolicy" in properties:
                attributes["RedrivePolicy"] = json.dumps(properties["RedrivePolicy"])
            if attributes:
                sqs.set_queue_attributes(QueueUrl=resources[logical_id]["QueueUrl"], Attributes=attributes)

        secretsmanager = self.client("secretsmanager")
        for logical_id, resource in resources_of_type(self.template, "AWS::SecretsManager::Secret").items():
            properties = resource.get("Properties", {})
            name = resolve(properties.get("Name")) or f"{self.resolver.stack_name}-{logical_id}"
            if "GenerateSecretString" in properties:
                value = secrets.token_urlsafe(48)
            else:
                value = str(resolve(properties.get("SecretString", "")))
            if "runware" in logical_id.lower():
                value = LOCAL_RUNWARE_KEY  # the one key the stack's emulator accepts
            arn = secretsmanager.create_secret(Name=name, SecretString=value)["ARN"]
            resources[logical_id] = {"Ref": arn, "Arn": arn, "Id": arn}

        dynamodb = self.client("dynamodb")
        for logical_id, resource in resources_of_type(self.template, "AWS::DynamoDB::Table").items():
            properties = resolve(resource["Properties"])
            name = properties.get("TableName") or f"{self.resolver.stack_name}-{logical_id}"
            table: dict[str, Any] = {
                "TableName": name,
                "AttributeDefinitions": properties["AttributeDefinitions"],
                "KeySchema": properties["KeySchema"],
                "BillingMode": "PAY_PER_REQUEST",
            }
            if properties.get("GlobalSecondaryIndexes"):
                table["GlobalSecondaryIndexes"] = [
                    {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
                    for index in properties["GlobalSecondaryIndexes"]
                ]
            dynamodb.create_table(**table)
            ttl = properties.get("TimeToLiveSpecification")
            if ttl:
                dynamodb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])},
                )
            arn = f"arn:aws:dynamodb:{LOCAL_REGION}:{self.resolver.account_id}:table/{name}"
            resources[logical_id] = {"Ref": name, "Arn": arn}

        for logical_id in resources_of_type(self.template, "AWS::Serverless::HttpApi"):
            resources[logical_id] = {"Ref": HTTP_API_ID, "ApiEndpoint": "", "ApiId": HTTP_API_ID}
        for logical_id in resources_of_type(self.template, "AWS::Serverless::LayerVersion"):
            resources[logical_id] = {
                "Ref": f"arn:aws:lambda:{LOCAL_REGION}:{self.resolver.account_id}:layer:{logical_id}:1"
            }
        # Roles are not created: moto checks no policy, and its STS assumes any role ARN it is given.
        for logical_id in resources_of_type(self.template, "AWS::IAM::Role"):
            name = f"{self.resolver.stack_name}-{logical_id}"
            resources[logical_id] = {"Ref": name, "Arn": f"arn:aws:iam::{self.resolver.account_id}:role/{name}"}
        for logical_id in self.functions_spec:
            resources[logical_id] = {
                "Ref": f"{self.resolver.stack_name}-{logical_id}",
                "Arn": f"arn:aws:lambda:{LOCAL_REGION}:{self.resolver.account_id}:function:{logical_id}",
            }
        self._create_event_rules()
        self._create_buckets()
        self._route_completion_events()

    def _create_event_rules(self) -> None:
        """The template's event-pattern rules (not the schedule, which the reconcile loop plays)."""
        events = self.client("events")
        for logical_id, resource in self._declared("AWS::Events::Rule").items():
            properties = self.resolver.resolve(resource["Properties"])
            if "EventPattern" not in properties:
                continue
            name = f"{self.resolver.stack_name}-{logical_id}"
            arn = events.put_rule(
                Name=name, EventPattern=json.dumps(properties["EventPattern"]), EventBusName="default"
            )["RuleArn"]
            events.put_targets(Rule=name, Targets=[_rule_target(target) for target in properties.get("Targets", [])])
            self.resolver.resources[logical_id] = {"Ref": name, "Arn": arn}

    def _create_buckets(self) -> None:
        resolve = self.resolver.resolve
        s3 = self.client("s3")
        for logical_id, resource in self._declared("AWS::S3::Bucket").items():
            properties = resolve(resource.get("Properties", {}))
            name = str(properties.get("BucketName") or f"{self.resolver.stack_name}-{logical_id}".lower())
            s3.create_bucket(Bucket=name)
            if properties.get("VersioningConfiguration", {}).get("Status") == "Enabled":
                s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            self.resolver.resources[logical_id] = {
                "Ref": name,
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
            }
            queues = properties.get("NotificationConfiguration", {}).get("QueueConfigurations", [])
            if queues:
                s3.put_bucket_notification_configuration(
                    Bucket=name,
                    NotificationConfiguration={"QueueConfigurations": [_queue_notification(q) for q in queues]},
                )
        existing = str(self.resolver.parameter("ExistingBucketName"))
        if existing:
            # Locally the "existing" bucket is made here, versioned, with EventBridge turned on as the
            # README's put-bucket-notification-configuration command does for a real one.
            s3.create_bucket(Bucket=existing)
            s3.put_bucket_versioning(Bucket=existing, VersioningConfiguration={"Status": "Enabled"})
            s3.put_bucket_notification_configuration(
                Bucket=existing, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
            self.names["inbox_bucket"] = existing
        else:
            self.names["inbox_bucket"] = self.resolver.resources["InboxBucket"]["Ref"]
        self.names["inbox_prefix"] = str(self.resolver.parameter("InboxPrefix"))
        self._apply_source_kms_grant()
        self._drain_test_events()

    def _apply_source_kms_grant(self) -> None:
        """moto has no IAM: inbox reads are refused as the template's KMS grant would refuse them."""
        assert self.moto_server is not None
        self.moto_server.call(
            "local.s3_encrypted_sources:refuse_ungranted_reads",
            self.names["inbox_bucket"],
            str(self.resolver.parameter("SourceKmsKeyArns")).split(","),
        )

    def _route_completion_events(self) -> None:
        """A local rule sends the completion events on the template's bus to a queue the CLI reads."""
        from upscaler.completion_events import EVENT_SOURCE

        sqs, events = self.client("sqs"), self.client("events")
        bus = str(self.resolver.parameter("CompletionEventBusName"))
        if bus != "default":
            events.create_event_bus(Name=bus)
        url = sqs.create_queue(QueueName=f"{self.resolver.stack_name}-completion-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule = f"{self.resolver.stack_name}-completion-events"
        events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps({"source": [EVENT_SOURCE]}))
        events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "local-queue", "Arn": arn}])
        self.names["completion_events_url"] = url

    def _ingest_queue(self) -> tuple[str, dict[str, Any]]:
        return self._sqs_source("SubmitFunction")

    def _sqs_source(self, function: str) -> tuple[str, dict[str, Any]]:
        """The queue a function's SQS event reads (its logical id) and the event's properties."""
        for event in self.functions_spec[function].events.values():
            if event.get("Type") == "SQS":
                properties = self.resolver.resolve(event["Properties"])
                for logical_id, resource in self.resolver.resources.items():
                    if resource.get("Arn") == properties["Queue"] and "QueueUrl" in resource:
                        return logical_id, properties
        raise ValueError(f"{function} has no SQS event in template.yaml")

    def _mapping_settings(self, function: str = "SubmitFunction") -> MappingSettings:
        logical_id, properties = self._sqs_source(function)
        queue = self.resolver.resources[logical_id]
        return MappingSettings(
            queue_url=queue["QueueUrl"],
            queue_arn=queue["Arn"],
            batch_size=int(properties.get("BatchSize", 10)),
            batching_window_seconds=float(properties.get("MaximumBatchingWindowInSeconds", 0)),
            maximum_concurrency=int(properties.get("ScalingConfig", {}).get("MaximumConcurrency", 1000)),
            report_batch_item_failures="ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []),
            region=LOCAL_REGION,
        )

    def _drain_test_events(self) -> None:
        """Take away the s3:TestEvent that configuring a notification sends (the function would ignore it)."""
        sqs = self.client("sqs")
        url = self.resolver.resources[self._ingest_queue()[0]]["QueueUrl"]
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            if json.loads(message["Body"]).get("Event") == "s3:TestEvent":
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    # ---- functions -------------------------------------------------------------------------

    def _configure_functions(self) -> None:
        assert self.emulator is not None and self.gateway is not None
        # Metrics are not published locally, so Powertools' "nothing to publish" warning is noise.
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        self.resolver.parameter_overrides.setdefault("RunwareApiUrl", self.emulator.url)
        environment = self._load_functions()
        self.names.update(
            output_bucket=environment["OUTPUT_BUCKET"],
            output_prefix=environment.get("OUTPUT_PREFIX", ""),
            jobs_table=environment["JOBS_TABLE"],
            ingest_queue_url=self.resolver.resources[self._ingest_queue()[0]]["QueueUrl"],
            dlq_url=self._dead_letter_queue_url(),
            webhook_url=environment.get("WEBHOOK_URL", ""),
        )

    def _load_functions(self) -> dict[str, str]:
        """The functions' environment from the template and its parameters, and a new container of
        each function that reads it (as Lambda starts new ones after a configuration change)."""
        environment: dict[str, str] = {}
        for logical_id in self.functions_spec:
            for name, value in self._own_environment(logical_id).items():
                environment.setdefault(name, value)
        # All functions share this process, so they share one environment: the union of theirs.
        environment.update(self._local_environment())
        # Custom resources first, each answered by its function with that function's own environment,
        # as in AWS: what a check refuses reaches no function.
        self._create_custom_resources(environment)
        os.environ.update(environment)
        self.environment = environment
        self._reset_container_caches()
        for logical_id in self.functions_spec:
            self._load_function(logical_id)
        return environment

    def update_parameters(self, overrides: dict[str, str]) -> None:
        """What `sam deploy --parameter-overrides` does to the functions: their environment is resolved
        again with these parameters and the next invocations run in new containers that read it. Only
        parameters that reach the functions' environment take effect (resources are not changed)."""
        self.resolver.parameter_overrides.update(overrides)
        self._load_functions()
        if self.gateway is not None:
            self.gateway.route("POST", self._http_api_path(), self.functions["WebhookFunction"])

    def _load_function(self, logical_id: str) -> None:
        self.functions[logical_id] = LocalFunction(
            self.functions_spec[logical_id], f"{self.resolver.stack_name}-{logical_id}"
        )

    def _own_environment(self, logical_id: str) -> dict[str, str]:
        spec = self.functions_spec[logical_id]
        return {name: self._local_value(str(self.resolver.resolve(value))) for name, value in spec.environment.items()}

    def _local_environment(self) -> dict[str, str]:
        """What every function gets locally beyond the template's environment."""
        return {
            "POWERTOOLS_SERVICE_NAME": "upscale-local",
            "POWERTOOLS_LOG_LEVEL": self.config.function_log_level,
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "INTAKE_PAUSE_FIRST_WAIT_SECONDS": str(self.config.intake_pause_first_wait_seconds),
            "INTAKE_PAUSE_LONGEST_WAIT_SECONDS": str(self.config.intake_pause_longest_wait_seconds),
            # A key stored with `s3-upscale --local set-key` is used within seconds, not minutes.
            "SECRET_CACHE_SECONDS": LOCAL_SECRET_CACHE_SECONDS,
        }

    def _create_custom_resources(self, stack_environment: dict[str, str]) -> None:
        """Each custom resource's Create, answered by its function loaded with its own environment only
        (CustomResourceFailed stops the start); the functions are loaded again for the running stack."""
        declared = custom_resources(self.template)
        if not declared:
            return
        s3 = self.client("s3")
        answers_bucket = f"{self.resolver.stack_name}-cloudformation-answers"
        s3.create_bucket(Bucket=answers_bucket)
        answering: dict[str, LocalFunction] = {}
        for logical_id in {service_function(resource) for resource in declared.values()}:
            own = {**self._own_environment(logical_id), **self._local_environment()}
            with _only_for_loading(own, others=stack_environment.keys() - own.keys()):
                self._reset_container_caches()
                answering[logical_id] = LocalFunction(
                    self.functions_spec[logical_id], f"{self.resolver.stack_name}-{logical_id}"
                )
        create_all(
            self.template,
            self.resolver,
            lambda logical_id, event: answering[logical_id].invoke(event),
            s3,
            answers_bucket,
        )

    def _local_value(self, value: str) -> str:
        """Point URLs of the stack's HTTP API at the local gateway."""
        assert self.gateway is not None
        prefix = f"https://{HTTP_API_ID}.execute-api.{LOCAL_REGION}.amazonaws.com"
        return self.gateway.url + value[len(prefix) :] if value.startswith(prefix) else value

    def _http_api_path(self) -> str:
        spec = self.functions_spec["WebhookFunction"]
        for event in spec.events.values():
            if event.get("Type") == "HttpApi":
                return str(self.resolver.resolve(event["Properties"]["Path"]))
        raise ValueError("WebhookFunction has no HttpApi event in template.yaml")

    def _dead_letter_queue_url(self) -> str:
        logical_id, _ = self._ingest_queue()
        properties = self.resolver.resolve(self.template["Resources"][logical_id]["Properties"])
        arn = properties.get("RedrivePolicy", {}).get("deadLetterTargetArn")
        for resource in self.resolver.resources.values():
            if arn and resource.get("Arn") == arn and "QueueUrl" in resource:
                return resource["QueueUrl"]
        raise ValueError(f"{logical_id} has no redrive policy to an SQS queue in template.yaml")

    @staticmethod
    def _reset_container_caches() -> None:
        """A new stack is a new set of containers: settings and secrets are read afresh."""
        from aws_lambda_powertools.utilities import parameters

        ensure_layer_on_path()
        from upscaler.settings import get_settings

        get_settings.cache_clear()
        parameters.clear_caches()

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def redrive(self) -> dict[str, Any]:
        """Move the DLQ's messages back to the ingestion queue with a message move task, as in AWS;
        the task as ListMessageMoveTasks reports it."""
        sqs = self.client("sqs")
        dlq_arn = sqs.get_queue_attributes(QueueUrl=self.names["dlq_url"], AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sqs.start_message_move_task(SourceArn=dlq_arn)
        tasks: list[dict[str, Any]] = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=1).get("Results", [])
        return tasks[0] if tasks else {}

    # ---- reconcile ---------------------------------------------------------------------------

    def _reconcile_loop(self) -> None:
        while not self._stopping.wait(self.config.reconcile_interval_seconds):
            self.reconcile_now()

    def _resume_intake_loop(self) -> None:
        while not self._stopping.wait(self.config.resume_intake_interval_seconds):
            self.resume_intake_now()

    def resume_intake_now(self) -> Any:
        """The one-minute schedule's invocation: EventBridge gives its Input as the whole event."""
        schedule = self.functions_spec["ReconcileFunction"].events["IntakeResumeSchedule"]["Properties"]
        try:
            return self.functions["ReconcileFunction"].invoke(json.loads(schedule["Input"]))
        except Exception:
            logger.exception("ReconcileFunction (resume intake) failed")
            return None

    def intake_mapping_state(self) -> str:
        """The ingestion mapping's State as Lambda reports it (Enabled, Disabled, ...)."""
        mapping = self.client("lambda").get_event_source_mapping(UUID=self.names["ingest_mapping_uuid"])
        return str(mapping["State"])

    def reconcile_now(self) -> Any:
        event = {
            "source": "aws.events",
            "detail-type": "Scheduled Event",
            "detail": {},
            "time": datetime.now(UTC).isoformat(),
        }
        try:
            return self.functions["ReconcileFunction"].invoke(event)
        except Exception:
            logger.exception("ReconcileFunction failed")
            return None

    # ---- observing -------------------------------------------------------------------------

    def jobs(self) -> list[dict[str, Any]]:
        """Every job item (a scan: fine for a local table, never done by the functions). Items without
        a status are not jobs (the intake pause item)."""
        dynamodb = self.client("dynamodb")
        items: list[dict[str, Any]] = []
        for page in dynamodb.get_paginator("scan").paginate(TableName=self.names["jobs_table"], ConsistentRead=True):
            items.extend(record_from_item(item) for item in page["Items"] if "status" in item)
        return items

    def dead_letter_count(self) -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.names["dlq_url"],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def invocations_pending(self) -> int:
        """Messages in the ingestion queue (waiting, in a batch, or waiting to be received again)."""
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.names["ingest_queue_url"],
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        in_flight = self.ingestion.in_flight if self.ingestion else 0
        return in_flight + sum(int(value) for value in attributes.values())

    def wait_for_jobs(self, expected: int, timeout: float = 120.0, poll: float = 0.3) -> Iterator[list[dict[str, Any]]]:
        """Yield the job list as it changes until `expected` jobs are terminal (or time runs out)."""
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.jobs()
            yield jobs
            done = sum(1 for job in jobs if job["status"] in TERMINAL_STATUSES)
            if done >= expected or time.monotonic() >= deadline:
                return
            time.sleep(poll)


@contextmanager
def _only_for_loading(environment: dict[str, str], others: Iterable[str]) -> Iterator[None]:
    """os.environ holding `environment` and none of `others` (another function's variables) for a while."""
    touched = {*environment, *others}
    saved = {name: os.environ.get(name) for name in touched}
    for name in others:
        os.environ.pop(name, None)
    os.environ.update(environment)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _rule_target(target: dict[str, Any]) -> dict[str, Any]:
    """A rule target as the template declares it; its dead-letter queue is used (local/event_dead_letters.py)."""
    return {key: target[key] for key in ("Id", "Arn", "DeadLetterConfig") if key in target}


def _queue_notification(configuration: dict[str, Any]) -> dict[str, Any]:
    """A QueueConfiguration as CloudFormation writes it, in the S3 API's shape."""
    rules = configuration.get("Filter", {}).get("S3Key", {}).get("Rules", [])
    return {
        "QueueArn": configuration["Queue"],
        "Events": [configuration["Event"]],
        **({"Filter": {"Key": {"FilterRules": rules}}} if rules else {}),
    }
