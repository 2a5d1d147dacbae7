"""The embedded local stack: everything the pipeline needs, on loopback, in one process.

- AWS: a moto server (S3, DynamoDB, SQS, Secrets Manager) with the resources template.yaml
  declares, named the way the template names them.
- S3 notifications: the inbox bucket notifies an SQS queue that stands in for Lambda's internal
  async-invocation queue; workers invoke the real submit handler from it with Lambda's async
  semantics (retries with delays, then the on-failure destination: the template's DLQ).
- Runware: the emulator in local/runware_emulator/.
- The HTTP API: a webhook gateway that turns HTTP requests into API Gateway HTTP API (v2) events for
  the real webhook handler.
- The schedule: the real reconcile handler on a timer.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config

from local.lambda_runtime import LocalFunction, ensure_layer_on_path
from local.runware_emulator import FaultConfig, RunwareEmulator
from local.template import (
    FunctionSpec,
    TemplateResolver,
    function_specs,
    load_template,
    resources_of_type,
)
from local.webhook_gateway import WebhookGateway

logger = logging.getLogger("local.stack")

LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
LOCAL_RUNWARE_KEY = "local-emulator-key"
HTTP_API_ID = "local-http-api"
TERMINAL = {"COMPLETED", "FAILED", "REJECTED", "TIMED_OUT"}

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
    submit_concurrency: int = 4
    reconcile_interval_seconds: float = 5.0
    # Lambda waits about 1 and 2 minutes between async retries; locally the same steps are faster.
    retry_delays_seconds: tuple[int, ...] = (1, 2)
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    function_log_level: str = "WARNING"
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
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.moto_server: Any = None
        self.emulator: RunwareEmulator | None = None
        self.gateway: WebhookGateway | None = None
        self.invocations_dead_lettered = 0

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalStack:
        self._start_moto()
        self._create_resources()
        self.emulator = RunwareEmulator(
            host="127.0.0.1",
            port=0,
            workers=self.config.emulator_workers,
            faults=self.config.faults,
            seed=self.config.seed,
        )
        self.emulator.start()
        self.gateway = WebhookGateway(host="127.0.0.1", port=0)
        self.gateway.start()
        self._configure_functions()
        self.gateway.route("POST", self._http_api_path(), self.functions["WebhookFunction"])
        self._pool = ThreadPoolExecutor(self.config.submit_concurrency, thread_name_prefix="submit")
        for index in range(self.config.submit_concurrency):
            self._spawn(self._poll_invocations, f"invoke-{index}")
        if self.config.reconcile_interval_seconds > 0:
            self._spawn(self._reconcile_loop, "reconcile")
        return self

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=True)
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
        from moto.server import ThreadedMotoServer

        from local.s3_events import add_missing_event_fields

        add_missing_event_fields()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.config.aws_port, verbose=False)
        self.moto_server.start()
        host, port = self.moto_server.get_host_and_port()
        self.aws_endpoint = f"http://{host}:{port}"
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

    def _create_resources(self) -> None:
        resolve = self.resolver.resolve
        resources = self.resolver.resources
        sqs = self.client("sqs")
        for logical_id, resource in resources_of_type(self.template, "AWS::SQS::Queue").items():
            name = (
                resolve(resource.get("Properties", {}).get("QueueName")) or f"{self.resolver.stack_name}-{logical_id}"
            )
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            resources[logical_id] = {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}
        # Lambda's async-invocation queue has no resource of its own: this queue plays its part.
        self.invocation_queue_url = sqs.create_queue(
            QueueName=f"{self.resolver.stack_name}-submit-invocations", Attributes={"VisibilityTimeout": "300"}
        )["QueueUrl"]
        invocation_queue_arn = sqs.get_queue_attributes(
            QueueUrl=self.invocation_queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]

        secretsmanager = self.client("secretsmanager")
        for logical_id, resource in resources_of_type(self.template, "AWS::SecretsManager::Secret").items():
            properties = resource.get("Properties", {})
            name = resolve(properties.get("Name")) or f"{self.resolver.stack_name}-{logical_id}"
            if "GenerateSecretString" in properties:
                value = secrets.token_urlsafe(48)
            else:
                value = str(resolve(properties.get("SecretString", "")))
            if "runware" in logical_id.lower():
                value = LOCAL_RUNWARE_KEY  # the emulator takes any non-empty key
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

        s3 = self.client("s3")
        for logical_id, resource in resources_of_type(self.template, "AWS::S3::Bucket").items():
            properties = resource.get("Properties", {})
            name = str(resolve(properties.get("BucketName") or f"{self.resolver.stack_name}-{logical_id}".lower()))
            s3.create_bucket(Bucket=name)
            versioning = resolve(properties.get("VersioningConfiguration") or {})
            if versioning.get("Status") == "Enabled":
                s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            resources[logical_id] = {
                "Ref": name,
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
            }

        for logical_id in resources_of_type(self.template, "AWS::Serverless::HttpApi"):
            resources[logical_id] = {"Ref": HTTP_API_ID, "ApiEndpoint": "", "ApiId": HTTP_API_ID}
        for logical_id in resources_of_type(self.template, "AWS::Serverless::LayerVersion"):
            resources[logical_id] = {
                "Ref": f"arn:aws:lambda:{LOCAL_REGION}:{self.resolver.account_id}:layer:{logical_id}:1"
            }
        for logical_id in self.functions_spec:
            resources[logical_id] = {
                "Ref": f"{self.resolver.stack_name}-{logical_id}",
                "Arn": f"arn:aws:lambda:{LOCAL_REGION}:{self.resolver.account_id}:function:{logical_id}",
            }

        # The S3 event source of the submit function, wired as the template declares it.
        submit = self.functions_spec["SubmitFunction"]
        bucket_notifications: dict[str, list[dict[str, Any]]] = {}
        for event in submit.events.values():
            if event.get("Type") != "S3":
                continue
            properties = resolve(event["Properties"])
            rules = properties.get("Filter", {}).get("S3Key", {}).get("Rules", [])
            events = properties["Events"] if isinstance(properties["Events"], list) else [properties["Events"]]
            bucket_notifications.setdefault(properties["Bucket"], []).append(
                {
                    "QueueArn": invocation_queue_arn,
                    "Events": events,
                    **({"Filter": {"Key": {"FilterRules": rules}}} if rules else {}),
                }
            )
            self.names["inbox_prefix"] = next((r["Value"] for r in rules if r["Name"].lower() == "prefix"), "")
            self.names["inbox_bucket"] = properties["Bucket"]
        for bucket, configurations in bucket_notifications.items():
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"QueueConfigurations": configurations}
            )
        # Drain the s3:TestEvent that configuring a notification sends.
        self._drain_test_events()

    def _drain_test_events(self) -> None:
        sqs = self.client("sqs")
        messages = sqs.receive_message(QueueUrl=self.invocation_queue_url, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            if json.loads(message["Body"]).get("Event") == "s3:TestEvent":
                sqs.delete_message(QueueUrl=self.invocation_queue_url, ReceiptHandle=message["ReceiptHandle"])

    # ---- functions -------------------------------------------------------------------------

    def _configure_functions(self) -> None:
        assert self.emulator is not None and self.gateway is not None
        # Metrics are not published locally, so Powertools' "nothing to publish" warning is noise.
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        self.resolver.parameter_overrides.setdefault("RunwareApiUrl", self.emulator.url)
        environment: dict[str, str] = {}
        for spec in self.functions_spec.values():
            for name, value in spec.environment.items():
                environment.setdefault(name, self._local_value(str(self.resolver.resolve(value))))
        # All functions share this process, so they share one environment: the union of theirs.
        environment.update(
            {
                "POWERTOOLS_SERVICE_NAME": "upscale-local",
                "POWERTOOLS_LOG_LEVEL": self.config.function_log_level,
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
        )
        os.environ.update(environment)
        self.environment = environment
        self._reset_container_caches()
        for logical_id, spec in self.functions_spec.items():
            self.functions[logical_id] = LocalFunction(spec, f"{self.resolver.stack_name}-{logical_id}")
        self.names.update(
            output_bucket=environment["OUTPUT_BUCKET"],
            output_prefix=environment.get("OUTPUT_PREFIX", ""),
            jobs_table=environment["JOBS_TABLE"],
            dlq_url=self._dead_letter_queue_url(),
            webhook_url=environment.get("WEBHOOK_URL", ""),
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
        config = self.template["Resources"]["SubmitFunction"]["Properties"].get("EventInvokeConfig", {})
        destination = config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        arn = self.resolver.resolve(destination) if destination else ""
        for resource in self.resolver.resources.values():
            if resource.get("Arn") == arn and "QueueUrl" in resource:
                return resource["QueueUrl"]
        raise ValueError("SubmitFunction has no SQS on-failure destination in template.yaml")

    def _max_retry_attempts(self) -> int:
        config = self.template["Resources"]["SubmitFunction"]["Properties"].get("EventInvokeConfig", {})
        return int(self.resolver.resolve(config.get("MaximumRetryAttempts", 2)))

    @staticmethod
    def _reset_container_caches() -> None:
        """A new stack is a new set of containers: settings and secrets are read afresh."""
        from aws_lambda_powertools.utilities import parameters

        ensure_layer_on_path()
        from upscaler.settings import get_settings

        get_settings.cache_clear()
        parameters.clear_caches()

    # ---- S3 -> submit, with Lambda's async invocation semantics -----------------------------

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll_invocations(self) -> None:
        sqs = self.client("sqs")
        while not self._stopping.is_set():
            try:
                response = sqs.receive_message(
                    QueueUrl=self.invocation_queue_url,
                    MaxNumberOfMessages=1,
                    WaitTimeSeconds=1,
                    MessageAttributeNames=["All"],
                )
            except Exception:
                if self._stopping.is_set():
                    return
                logger.exception("polling the invocation queue failed")
                time.sleep(0.5)
                continue
            for message in response.get("Messages", []):
                with self._in_flight_lock:
                    self._in_flight += 1
                try:
                    self._invoke_submit(sqs, message)
                except Exception:
                    # The runner itself failed (not the function): leave the message to reappear after
                    # its visibility timeout, as Lambda's own queue would, and keep this poller alive.
                    logger.exception("handling invocation %s failed; it will be retried", message.get("MessageId"))
                else:
                    sqs.delete_message(QueueUrl=self.invocation_queue_url, ReceiptHandle=message["ReceiptHandle"])
                finally:
                    with self._in_flight_lock:
                        self._in_flight -= 1

    def _invoke_submit(self, sqs: Any, message: dict[str, Any]) -> None:
        event = json.loads(message["Body"])
        if event.get("Event") == "s3:TestEvent":
            return
        attempt = int(message.get("MessageAttributes", {}).get("attempt", {}).get("StringValue", "1"))
        try:
            self.functions["SubmitFunction"].invoke(event)
        except Exception as error:
            logger.warning("SubmitFunction failed (attempt %d): %s", attempt, error)
            if attempt <= self._max_retry_attempts():
                delays = self.config.retry_delays_seconds
                sqs.send_message(
                    QueueUrl=self.invocation_queue_url,
                    MessageBody=message["Body"],
                    DelaySeconds=delays[min(attempt - 1, len(delays) - 1)] if delays else 0,
                    MessageAttributes={"attempt": {"DataType": "Number", "StringValue": str(attempt + 1)}},
                )
            else:
                self._dead_letter(sqs, event, error, attempt)

    def _dead_letter(self, sqs: Any, event: dict[str, Any], error: Exception, attempts: int) -> None:
        """Send what Lambda's on-failure destination sends: the request, and why it failed."""
        record = {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "requestContext": {
                "requestId": f"local-{secrets.token_hex(8)}",
                "functionArn": self.resolver.resources["SubmitFunction"]["Arn"] + ":$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": str(error), "errorType": type(error).__name__},
        }
        sqs.send_message(QueueUrl=self.names["dlq_url"], MessageBody=json.dumps(record))
        self.invocations_dead_lettered += 1

    def redrive(self) -> dict[str, int]:
        """Replay the DLQ through the submit function; messages that fail again stay in the queue."""
        return redrive_dead_letters(self.client("sqs"), self.names["dlq_url"], self.functions["SubmitFunction"])

    # ---- reconcile ---------------------------------------------------------------------------

    def _reconcile_loop(self) -> None:
        while not self._stopping.wait(self.config.reconcile_interval_seconds):
            self.reconcile_now()

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
        """Every job item (a scan: fine for a local table, never done by the functions)."""
        from upscaler.jobs import from_dynamodb_item

        dynamodb = self.client("dynamodb")
        items: list[dict[str, Any]] = []
        for page in dynamodb.get_paginator("scan").paginate(TableName=self.names["jobs_table"], ConsistentRead=True):
            items.extend(from_dynamodb_item(item) for item in page["Items"])
        return items

    def dead_letter_count(self) -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.names["dlq_url"],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def invocations_pending(self) -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.invocation_queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        with self._in_flight_lock:
            in_flight = self._in_flight
        return in_flight + sum(int(value) for value in attributes.values())

    def wait_for_jobs(self, expected: int, timeout: float = 120.0, poll: float = 0.3) -> Iterator[list[dict[str, Any]]]:
        """Yield the job list as it changes until `expected` jobs are terminal (or time runs out)."""
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.jobs()
            yield jobs
            done = sum(1 for job in jobs if job["status"] in TERMINAL)
            if done >= expected or time.monotonic() >= deadline:
                return
            time.sleep(poll)


def redrive_dead_letters(sqs: Any, dlq_url: str, submit: LocalFunction) -> dict[str, int]:
    """Invoke the submit function with each DLQ message wrapped in an SQS event, as a re-drive does.

    A message is deleted only after the function succeeded with it; one that fails again stays.
    """
    replayed = failed = 0
    while True:
        messages = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
            "Messages", []
        )
        if not messages:
            return {"replayed": replayed, "failed": failed}
        for message in messages:
            wrapped = {
                "Records": [{"eventSource": "aws:sqs", "messageId": message["MessageId"], "body": message["Body"]}]
            }
            try:
                submit.invoke(wrapped)
            except Exception as error:
                logger.warning("re-drive failed for %s: %s", message["MessageId"], error)
                failed += 1
                continue
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            replayed += 1
