"""The AWS and Runware side of the benchmarks, and the probes that run handlers against it.

`Services` is the local stack (moto server, Runware emulator, webhook gateway) with its own submit
path switched off: the inbox's event notification is removed and the ingestion queue's event source
mapping stopped, so an upload reaches no function in this process. Each benchmark instead starts a
probe, a fresh process that invokes a handler with the event Lambda would deliver: for the submit
function the ingestion queue's SQS batch (each message a real one, sent to and received from the
stack's queue), for the baseline the S3 event S3 sends a function it invokes directly. The probe's
memory, CPU and bytes are its own; Runware's webhooks still reach the stack's webhook function here
unless a probe routes them to itself.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from benchmarks.inputs import s3_event, s3_record
from benchmarks.probe import RESULT_PREFIX
from local.event_source_mapping import SQS_RECEIVE_MAX, sqs_event
from local.runware_emulator import FaultConfig
from local.stack import LocalStack, StackConfig

ROOT = Path(__file__).resolve().parent.parent


class ProbeFailed(RuntimeError):
    pass


def run_child(
    module: str,
    spec: dict[str, Any] | None = None,
    *,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    python_options: tuple[str, ...] = (),
    timeout: float = 900,
) -> dict[str, Any]:
    """Run `python -m <module> <args>` with the spec on stdin; its result, with its stderr added."""
    command = [sys.executable, *python_options, "-m", module, *args]
    completed = subprocess.run(
        command,
        input=json.dumps(spec) if spec is not None else "",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        raise ProbeFailed(f"{' '.join(command[1:])} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_PREFIX) :])
    result["stderr"] = completed.stderr
    return result


def run_probe(kind: str, spec: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    return run_child("benchmarks.probe", spec, args=(kind, *options.pop("args", ())), **options)


class Services:
    def __init__(self, faults: FaultConfig | None = None, seed: int = 7) -> None:
        self.stack = LocalStack(
            StackConfig(
                faults=faults or FaultConfig(),
                reconcile_interval_seconds=0,
                # No recovery checks either: a probe's jobs are settled by its webhooks alone, and a check
                # coming due during a slow run would end jobs a measurement expects still SUBMITTED.
                recover_on_start=False,
                function_log_level="ERROR",
                seed=seed,
            )
        )
        self._sequence = itertools.count(1)

    def start(self) -> Services:
        self.stack.start()
        self.s3 = self.stack.client("s3")
        self.inbox = self.stack.names["inbox_bucket"]
        self.inbox_prefix = self.stack.names["inbox_prefix"]
        self.s3.put_bucket_notification_configuration(Bucket=self.inbox, NotificationConfiguration={})
        assert self.stack.ingestion is not None
        self.stack.ingestion.stop()  # the probes receive the queue's messages, not the stack's submit
        self.queue = self.stack.ingestion.settings
        self.sqs = self.stack.client("sqs")
        return self

    def stop(self) -> None:
        self.stack.stop()

    @property
    def emulator(self) -> Any:
        return self.stack.emulator

    def set_faults(self, **knobs: Any) -> None:
        self.emulator.faults = FaultConfig(**knobs)

    def settle(self, timeout: float = 300) -> None:
        """Wait until Runware's background work (processing, uploads, webhooks) is done."""
        if not self.emulator.wait_idle(timeout):
            raise TimeoutError("the Runware emulator did not become idle")

    def put(self, name: str, body: bytes) -> dict[str, Any]:
        """Upload an object to the inbox; returns the S3 event record for it."""
        key = self.inbox_prefix + name
        response = self.s3.put_object(Bucket=self.inbox, Key=key, Body=body)
        return s3_record(self.inbox, key, len(body), response["ETag"], response.get("VersionId"), next(self._sequence))

    def copy(self, source: dict[str, Any], name: str) -> dict[str, Any]:
        """A new object with the content of an earlier one (server-side, no bytes through here)."""
        key = self.inbox_prefix + name
        source_key = source["s3"]["object"]["key"]  # the benchmark's own keys need no decoding
        response = self.s3.copy_object(Bucket=self.inbox, Key=key, CopySource={"Bucket": self.inbox, "Key": source_key})
        size = source["s3"]["object"]["size"]
        etag = response["CopyObjectResult"]["ETag"]
        return s3_record(self.inbox, key, size, etag, response.get("VersionId"), next(self._sequence))

    def remove(self, record: dict[str, Any]) -> None:
        """Delete one version of an inbox object for good (keeps the stand-in's memory small)."""
        obj = record["s3"]["object"]
        self.s3.delete_object(Bucket=self.inbox, Key=obj["key"], VersionId=obj["versionId"])

    def environment(self, **overrides: str) -> dict[str, str]:
        """The environment of the stack's functions (AWS endpoint, credentials, settings) for a probe."""
        return {**os.environ, **self.stack.environment, **overrides}

    def queue_event(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """The SQS event the ingestion queue's event source mapping delivers for these S3 records.

        Each record becomes one message whose body is an S3 notification of that record alone, as S3
        sends them; the messages are sent to the stack's ingestion queue and received from it, so
        ids, receipt handles, attributes and MD5s are the queue's own.
        """
        sent: list[str] = []
        for start in range(0, len(records), SQS_RECEIVE_MAX):
            chunk = records[start : start + SQS_RECEIVE_MAX]
            entries = [{"Id": str(i), "MessageBody": json.dumps(s3_event([r]))} for i, r in enumerate(chunk)]
            response = self.sqs.send_message_batch(QueueUrl=self.queue.queue_url, Entries=entries)
            if response.get("Failed"):
                raise RuntimeError(f"sending to the ingestion queue failed: {response['Failed']}")
            sent += [entry["MessageId"] for entry in sorted(response["Successful"], key=lambda e: int(e["Id"]))]
        received: dict[str, dict[str, Any]] = {}
        while len(received) < len(sent):
            response = self.sqs.receive_message(
                QueueUrl=self.queue.queue_url,
                MaxNumberOfMessages=SQS_RECEIVE_MAX,
                WaitTimeSeconds=1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            if not messages:
                raise RuntimeError(f"{len(sent) - len(received)} sent messages did not arrive in the ingestion queue")
            for message in messages:
                if message["MessageId"] not in sent:
                    raise RuntimeError(f"the ingestion queue holds a message the benchmark did not send: {message}")
                received[message["MessageId"]] = message
        batch = [received[message_id] for message_id in sent]
        return sqs_event(batch, queue_arn=self.queue.queue_arn, region=self.queue.region)

    def delete_messages(self, event: dict[str, Any]) -> None:
        """Delete a delivered batch's messages, as the event source mapping does after a success."""
        records = event["Records"]
        for start in range(0, len(records), SQS_RECEIVE_MAX):
            entries = [
                {"Id": str(i), "ReceiptHandle": record["receiptHandle"]}
                for i, record in enumerate(records[start : start + SQS_RECEIVE_MAX])
            ]
            self.sqs.delete_message_batch(QueueUrl=self.queue.queue_url, Entries=entries)

    def job_statuses(self, records: list[dict[str, Any]]) -> list[str | None]:
        """The status of the job of each S3 record in the jobs table (None: no job)."""
        from upscaler.job_record import job_id_for
        from upscaler.jobs import JobStore

        store = JobStore(self.stack.client("dynamodb"), self.stack.names["jobs_table"])
        statuses: list[str | None] = []
        for record in records:
            obj = record["s3"]["object"]
            job_id = job_id_for(record["s3"]["bucket"]["name"], unquote_plus(obj["key"]), obj["versionId"])
            job = store.get(job_id)
            statuses.append(str(job.status) if job else None)
        return statuses
