"""No second bill for the same content, against moto: the submit path with Runware answered at the
HTTP level, jobs completed through the real result recorder, pointers in their own table."""

from __future__ import annotations

import copy
import io
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote_plus

import boto3
import httpx
import pytest
from PIL import Image

from tests.conftest import INBOX_BUCKET, OUTPUT_BUCKET, REGION
from tests.unit.queue_events import queued
from upscaler.clock import iso, utc_now
from upscaler.ingestion import submit_batch
from upscaler.job_record import Job, JobStatus, job_id_for
from upscaler.outputs import OPTIONS_METADATA, options_signature
from upscaler.prior_outputs import REUSED_VIA, OutputPointers, PriorOutputs, reuse_key_for
from upscaler.results import ResultRecorder
from upscaler.runware import RunwareClient, RunwareUnavailable
from upscaler.runware_answers import TaskResult
from upscaler.settings import read_secret
from upscaler.submission import Submitter
from upscaler.wiring import build_reconciler, build_submitter, build_webhook_receiver

POINTERS_TABLE = "test-prior-outputs"
KEY = "inbox/holiday/cat.jpg"
SMALL = {"target-megapixels": "1"}  # 800x600 -> about 1155x866
_sequencer = itertools.count(0x65F1A2B3C4D5E700)
# An upload older than a job record lives (JOB_RETENTION_DAYS, 90 by default): a re-drive, a backfill.
LONG_AGO = iso(utc_now() - timedelta(days=91))


def jpeg(width: int, height: int, shade: int = 40) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, shade)).save(buffer, "JPEG")
    return buffer.getvalue()


SOURCE = jpeg(800, 600)
UPSCALED = jpeg(1155, 866)


@dataclass
class Runware:
    """Runware at the HTTP level: acknowledges every task and keeps what was sent (unless down)."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    down: bool = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503, json={"errors": [{"code": "serviceUnavailable", "message": "down"}]})
        tasks = json.loads(request.content)
        self.tasks.extend(tasks)
        return httpx.Response(
            200, json={"data": [{"taskType": t["taskType"], "taskUUID": t["taskUUID"]} for t in tasks]}
        )


@dataclass
class Pipeline:
    aws: Any
    submitter: Submitter
    recorder: ResultRecorder
    runware: Runware
    ended: list[Job]  # every job the store made terminal, as written (what completion events carry)

    def deliver(self, *records: dict[str, Any]) -> list[Any]:
        result = submit_batch(self.submitter, queued(*records))
        assert result.failed == {}, result.failed
        return result.outcomes

    def finish(self, job_id: str) -> Job:
        """Runware's result lands in the staging key and its webhook is recorded."""
        job = self.submitter.jobs.get(job_id)
        assert job is not None and job.status is JobStatus.SUBMITTED
        self.aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=str(job.staging_key), Body=UPSCALED)
        result = TaskResult(job_id, "2af4c8a9-5865-46b2-a4e3-b011d3dcd03e", None, Decimal("0.005"))
        return self.recorder.record_success(job, result, via="webhook").job

    def job(self, job_id: str) -> Job:
        job = self.submitter.jobs.get(job_id)
        assert job is not None
        return job


def create_pointers_table(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName=POINTERS_TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "reuseKey", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "reuseKey", "KeyType": "HASH"}],
    )


@pytest.fixture
def pipeline(aws) -> Iterator[Pipeline]:
    create_pointers_table(aws.dynamodb)
    settings = replace(aws.settings, prior_outputs_table=POINTERS_TABLE)
    submitter = build_submitter(settings)
    runware = Runware()
    submitter.runware = RunwareClient(
        settings.runware_api_url,
        lambda: read_secret(settings.runware_api_key_secret),
        http=httpx.Client(transport=httpx.MockTransport(runware)),
        max_attempts=1,
    )
    ended: list[Job] = []
    remember = submitter.jobs.on_terminal
    assert remember is not None, "the submit function's job store keeps pointers"

    def on_terminal(job: Job) -> None:
        ended.append(job)
        remember(job)

    submitter.jobs.on_terminal = on_terminal
    recorder = ResultRecorder(submitter.objects, submitter.jobs, settings.staging_prefix)
    yield Pipeline(aws, submitter, recorder, runware, ended)


def record_for(
    key: str, version_id: str, etag: str, size: int, event_name: str = "ObjectCreated:Put", uploaded: str = ""
) -> dict:
    """The S3 notification record of one object version (uploaded now unless said otherwise)."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "eu-west-1",
        "eventTime": uploaded or iso(utc_now()),
        "eventName": event_name,
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": INBOX_BUCKET, "arn": f"arn:aws:s3:::{INBOX_BUCKET}"},
            "object": {
                "key": quote_plus(key, safe="/"),
                "size": size,
                "eTag": etag,
                "versionId": version_id,
                "sequencer": f"{next(_sequencer):018X}",
            },
        },
    }


def upload(aws, key: str, body: bytes, metadata: dict[str, str], uploaded: str = "") -> dict:
    put = aws.s3.put_object(Bucket=INBOX_BUCKET, Key=key, Body=body, Metadata=metadata)
    return record_for(key, put["VersionId"], put["ETag"].strip('"'), len(body), uploaded=uploaded)


def copy_in_place(aws, key: str, metadata: dict[str, str]) -> dict:
    """`aws s3 cp s3://b/k s3://b/k --metadata-directive REPLACE`: a new version, the same bytes."""
    copied = aws.s3.copy_object(
        Bucket=INBOX_BUCKET,
        Key=key,
        CopySource={"Bucket": INBOX_BUCKET, "Key": key},
        Metadata=metadata,
        MetadataDirective="REPLACE",
    )
    size = aws.s3.head_object(Bucket=INBOX_BUCKET, Key=key)["ContentLength"]
    return record_for(
        key, copied["VersionId"], copied["CopyObjectResult"]["ETag"].strip('"'), size, "ObjectCreated:Copy"
    )


def job_id_of(record: dict) -> str:
    return job_id_for(INBOX_BUCKET, KEY, record["s3"]["object"]["versionId"])


def first_job(pipeline: Pipeline, metadata: dict[str, str] = SMALL, uploaded: str = "") -> tuple[dict, Job]:
    """An upload upscaled and completed the ordinary way: one Runware task."""
    record = upload(pipeline.aws, KEY, SOURCE, metadata, uploaded)
    pipeline.deliver(record)
    completed = pipeline.finish(job_id_of(record))
    assert completed.status is JobStatus.COMPLETED
    assert len(pipeline.runware.tasks) == 1
    return record, completed


# --- the rules -----------------------------------------------------------------------------------


def test_an_in_place_copy_that_keeps_the_options_completes_from_the_earlier_output_with_no_task(pipeline):
    _, first = first_job(pipeline)
    copied = copy_in_place(pipeline.aws, KEY, {**SMALL, "reviewed-by": "ana"})
    assert job_id_of(copied) != first.job_id

    [outcome] = pipeline.deliver(copied)

    assert len(pipeline.runware.tasks) == 1, "no Runware task for the copy"
    assert (outcome.status, outcome.code, outcome.message) == (JobStatus.COMPLETED, None, None)
    job = pipeline.job(job_id_of(copied))
    assert job.status is JobStatus.COMPLETED
    assert job.reused_output_of == first.job_id
    assert job.result_via == REUSED_VIA
    assert job.cost == 0
    assert job.source_version_id == copied["s3"]["object"]["versionId"]
    # Its own output, a server-side copy of the first, whose metadata names the new job.
    assert job.output_key != first.output_key
    assert job.output_key.endswith(f".{job.job_id[:8]}.jpg")
    output = pipeline.aws.s3.get_object(Bucket=OUTPUT_BUCKET, Key=job.output_key)
    assert output["Body"].read() == UPSCALED
    assert output["Metadata"]["job-id"] == job.job_id
    assert output["Metadata"]["source-version-id"] == job.source_version_id
    assert output["ContentType"] == "image/jpeg"
    assert (job.output_size, job.output_width, job.output_height) == (len(UPSCALED), 1155, 866)
    assert job.output_etag == output["ETag"].strip('"')
    # The earlier job's output is left as it was.
    earlier = pipeline.aws.s3.get_object(Bucket=OUTPUT_BUCKET, Key=first.output_key)
    assert earlier["Metadata"]["job-id"] == first.job_id
    # Its completion event went out like any other's.
    assert [(ended.job_id, ended.status) for ended in pipeline.ended][-1] == (job.job_id, JobStatus.COMPLETED)
    assert pipeline.ended[-1].reused_output_of == first.job_id


def test_a_copy_that_changes_an_option_is_a_new_job(pipeline):
    first_job(pipeline)
    copied = copy_in_place(pipeline.aws, KEY, {"target-megapixels": "2"})

    [outcome] = pipeline.deliver(copied)

    assert outcome.status == JobStatus.SUBMITTED
    assert [task["taskUUID"] for task in pipeline.runware.tasks][1:] == [job_id_of(copied)]
    assert pipeline.runware.tasks[1]["targetMegapixels"] == 2
    assert pipeline.job(job_id_of(copied)).reused_output_of is None


def test_a_copy_made_while_the_first_job_is_still_open_is_sent(pipeline):
    record = upload(pipeline.aws, KEY, SOURCE, SMALL)
    pipeline.deliver(record)
    copied = copy_in_place(pipeline.aws, KEY, SMALL)

    [outcome] = pipeline.deliver(copied)

    assert outcome.status == JobStatus.SUBMITTED, "nothing completed yet: no output to stand for it"
    assert len(pipeline.runware.tasks) == 2


def test_a_job_claimed_by_an_earlier_invocation_is_sent_again_not_completed_from_a_prior_output(pipeline):
    record = upload(pipeline.aws, KEY, SOURCE, SMALL)
    pipeline.deliver(record)
    copied = copy_in_place(pipeline.aws, KEY, SMALL)
    pipeline.runware.down = True
    with pytest.raises(RunwareUnavailable):  # the invocation fails: its message is received again
        submit_batch(pipeline.submitter, queued(copied))
    assert pipeline.job(job_id_of(copied)).status is JobStatus.CLAIMED
    pipeline.finish(job_id_of(record))  # now an output of the same content and options exists
    pipeline.runware.down = False

    [outcome] = pipeline.deliver(copied)

    # It may have reached Runware before: sent again under its own taskUUID, never completed from
    # another output while a result paid for could be on its way.
    assert outcome.status == JobStatus.SUBMITTED
    assert pipeline.runware.tasks[-1]["taskUUID"] == job_id_of(copied)
    assert pipeline.job(job_id_of(copied)).reused_output_of is None


def test_the_same_bytes_under_another_key_are_another_job(pipeline):
    first_job(pipeline)
    other = upload(pipeline.aws, "inbox/holiday/cat-again.jpg", SOURCE, SMALL)

    [outcome] = pipeline.deliver(other)

    assert outcome.status == JobStatus.SUBMITTED
    assert len(pipeline.runware.tasks) == 2


def test_new_content_under_the_same_key_is_a_new_job(pipeline):
    first_job(pipeline)
    replaced = upload(pipeline.aws, KEY, jpeg(800, 600, shade=41), SMALL)

    [outcome] = pipeline.deliver(replaced)

    assert outcome.status == JobStatus.SUBMITTED
    assert len(pipeline.runware.tasks) == 2


def test_an_earlier_output_removed_since_is_not_reused(pipeline):
    _, first = first_job(pipeline)
    pipeline.aws.s3.delete_object(Bucket=OUTPUT_BUCKET, Key=first.output_key)
    copied = copy_in_place(pipeline.aws, KEY, SMALL)

    [outcome] = pipeline.deliver(copied)

    assert outcome.status == JobStatus.SUBMITTED
    assert len(pipeline.runware.tasks) == 2


def test_an_earlier_output_written_over_since_is_not_reused(pipeline):
    _, first = first_job(pipeline)
    pipeline.aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=first.output_key, Body=jpeg(1155, 866, shade=99))
    copied = copy_in_place(pipeline.aws, KEY, SMALL)

    [outcome] = pipeline.deliver(copied)

    assert outcome.status == JobStatus.SUBMITTED
    assert len(pipeline.runware.tasks) == 2


def test_a_redelivery_after_only_the_record_was_removed_finds_the_output_through_the_pointer(pipeline):
    record, first = first_job(pipeline)
    pipeline.aws.dynamodb.delete_item(TableName=pipeline.aws.settings.jobs_table, Key={"jobId": {"S": first.job_id}})

    [outcome] = pipeline.deliver(record)

    assert len(pipeline.runware.tasks) == 1
    assert (outcome.job_id, outcome.status) == (first.job_id, JobStatus.COMPLETED)
    job = pipeline.job(first.job_id)
    assert (job.reused_output_of, job.output_key, job.output_etag) == (
        first.job_id,
        first.output_key,
        first.output_etag,
    )


def test_a_redelivery_after_the_record_expired_completes_from_the_jobs_own_output(pipeline):
    record, first = first_job(pipeline, uploaded=LONG_AGO)
    # The table's TTL removes the record; the pointer goes too, so only the output itself is left.
    pipeline.aws.dynamodb.delete_item(TableName=pipeline.aws.settings.jobs_table, Key={"jobId": {"S": first.job_id}})
    pipeline.aws.dynamodb.delete_item(TableName=POINTERS_TABLE, Key={"reuseKey": {"S": reuse_key_for(first) or ""}})

    [outcome] = pipeline.deliver(record)

    assert len(pipeline.runware.tasks) == 1, "no second task for the same version"
    assert (outcome.job_id, outcome.status) == (first.job_id, JobStatus.COMPLETED)
    job = pipeline.job(first.job_id)
    assert job.reused_output_of == first.job_id
    assert job.output_key == first.output_key
    assert (job.output_etag, job.output_size, job.output_width, job.output_height) == (
        first.output_etag,
        first.output_size,
        1155,
        866,
    )
    assert job.cost is None, "what the first record paid is not known any more"


def test_an_own_output_made_with_other_options_is_not_reused(pipeline):
    record, first = first_job(pipeline, uploaded=LONG_AGO)
    pipeline.aws.dynamodb.delete_item(TableName=pipeline.aws.settings.jobs_table, Key={"jobId": {"S": first.job_id}})
    head = pipeline.aws.s3.head_object(Bucket=OUTPUT_BUCKET, Key=first.output_key)
    assert head["Metadata"][OPTIONS_METADATA] == (
        "targetMegapixels=1;enhanceDetails=false;realism=false;outputFormat=JPG;outputQuality=95"
    )
    # As if the stack's default quality had changed since: the output says what it was made with.
    metadata = {**head["Metadata"], OPTIONS_METADATA: head["Metadata"][OPTIONS_METADATA].replace("95", "80")}
    pipeline.aws.s3.copy_object(
        Bucket=OUTPUT_BUCKET,
        Key=first.output_key,
        CopySource={"Bucket": OUTPUT_BUCKET, "Key": first.output_key},
        Metadata=metadata,
        MetadataDirective="REPLACE",
        ContentType="image/jpeg",
    )
    pipeline.aws.dynamodb.delete_item(TableName=POINTERS_TABLE, Key={"reuseKey": {"S": reuse_key_for(first) or ""}})

    [outcome] = pipeline.deliver(record)

    assert outcome.status == JobStatus.SUBMITTED
    assert len(pipeline.runware.tasks) == 2


def test_an_output_that_names_no_options_is_not_reused_after_its_record_expired(pipeline):
    record, first = first_job(pipeline, uploaded=LONG_AGO)
    pipeline.aws.dynamodb.delete_item(TableName=pipeline.aws.settings.jobs_table, Key={"jobId": {"S": first.job_id}})
    head = pipeline.aws.s3.head_object(Bucket=OUTPUT_BUCKET, Key=first.output_key)
    older = {name: value for name, value in head["Metadata"].items() if name != OPTIONS_METADATA}
    pipeline.aws.s3.copy_object(
        Bucket=OUTPUT_BUCKET,
        Key=first.output_key,
        CopySource={"Bucket": OUTPUT_BUCKET, "Key": first.output_key},
        Metadata=older,
        MetadataDirective="REPLACE",
    )
    pipeline.aws.dynamodb.delete_item(TableName=POINTERS_TABLE, Key={"reuseKey": {"S": reuse_key_for(first) or ""}})

    [outcome] = pipeline.deliver(record)

    assert outcome.status == JobStatus.SUBMITTED
    assert len(pipeline.runware.tasks) == 2


def test_a_failed_look_up_sends_the_job_as_before(pipeline):
    first_job(pipeline)
    pipeline.aws.dynamodb.delete_table(TableName=POINTERS_TABLE)
    copied = copy_in_place(pipeline.aws, KEY, SMALL)

    [outcome] = pipeline.deliver(copied)

    assert outcome.status == JobStatus.SUBMITTED
    assert len(pipeline.runware.tasks) == 2


def test_a_batch_reuses_what_it_can_and_sends_the_rest_in_one_request(pipeline):
    first_job(pipeline)
    copied = copy_in_place(pipeline.aws, KEY, SMALL)
    fresh = [upload(pipeline.aws, f"inbox/holiday/new-{index}.jpg", jpeg(800, 600, index), SMALL) for index in range(3)]

    outcomes = pipeline.deliver(copied, *fresh)

    assert sorted(str(outcome.status) for outcome in outcomes) == ["COMPLETED"] + ["SUBMITTED"] * 3
    assert len(pipeline.runware.tasks) == 4
    assert {task["taskUUID"] for task in pipeline.runware.tasks[1:]} == {
        job_id_for(INBOX_BUCKET, record["s3"]["object"]["key"], record["s3"]["object"]["versionId"]) for record in fresh
    }


def pointer_reads(pipeline: Pipeline) -> list[str]:
    """The DynamoDB operations the submit function makes on the pointers table, as sent."""
    reads: list[str] = []
    client = pipeline.submitter.prior_outputs.pointers._db

    def seen(params: dict[str, Any], model: Any, **_: Any) -> None:
        if POINTERS_TABLE in json.dumps(params.get("body", b"").decode() if params.get("body") else ""):
            reads.append(model.name)

    client.meta.events.register("before-call.dynamodb", seen)
    return reads


def test_a_batch_reads_its_pointers_in_one_request(pipeline):
    first_job(pipeline)
    copied = copy_in_place(pipeline.aws, KEY, SMALL)
    fresh = [upload(pipeline.aws, f"inbox/holiday/new-{index}.jpg", jpeg(800, 600, index), SMALL) for index in range(4)]
    reads = pointer_reads(pipeline)

    outcomes = pipeline.deliver(copied, *fresh)

    assert sorted(str(outcome.status) for outcome in outcomes) == ["COMPLETED"] + ["SUBMITTED"] * 4
    assert [name for name in reads if name != "UpdateItem"] == ["BatchGetItem"]


class LeavesKeysUnprocessed:
    """A DynamoDB client whose first BatchGetItem answers nothing and leaves every key unprocessed,
    as DynamoDB may when a request exceeds what it reads at once (API_BatchGetItem)."""

    def __init__(self, client: Any, times: int = 1) -> None:
        self._client = client
        self.times = times
        self.requests = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.requests += 1
        if self.requests <= self.times:
            return {"Responses": {}, "UnprocessedKeys": RequestItems}
        return self._client.batch_get_item(RequestItems=RequestItems)


@pytest.mark.parametrize(("unprocessed", "reused"), [(1, True), (10, False)], ids=["asked again", "given up"])
def test_keys_left_unprocessed_are_asked_again_and_then_the_job_is_sent(pipeline, unprocessed, reused):
    first_job(pipeline)
    pointers = pipeline.submitter.prior_outputs.pointers
    pointers._db = LeavesKeysUnprocessed(pointers._db, times=unprocessed)
    copied = copy_in_place(pipeline.aws, KEY, SMALL)

    [outcome] = pipeline.deliver(copied)

    assert (outcome.status == JobStatus.COMPLETED) is reused
    assert len(pipeline.runware.tasks) == (1 if reused else 2)


def test_a_repeat_delivery_of_a_reused_version_changes_nothing(pipeline):
    first_job(pipeline)
    copied = copy_in_place(pipeline.aws, KEY, SMALL)
    pipeline.deliver(copied)
    ended = len(pipeline.ended)

    [outcome] = pipeline.deliver(copy.deepcopy(copied))

    assert outcome.status == "DUPLICATE"
    assert len(pipeline.runware.tasks) == 1
    assert len(pipeline.ended) == ended, "no second completion event"


def test_a_copy_of_a_reused_version_reuses_again(pipeline):
    _, first = first_job(pipeline)
    second = copy_in_place(pipeline.aws, KEY, SMALL)
    pipeline.deliver(second)
    third = copy_in_place(pipeline.aws, KEY, {**SMALL, "note": "again"})

    pipeline.deliver(third)

    assert len(pipeline.runware.tasks) == 1
    # The pointer now names the newest completion, whose output is a copy of the first.
    assert pipeline.job(job_id_of(third)).reused_output_of == job_id_of(second)
    assert pipeline.job(job_id_of(second)).reused_output_of == first.job_id


# --- the pieces ----------------------------------------------------------------------------------


def completed_job(**changes: Any) -> Job:
    job = Job(
        job_id="7385b5c0-ffc2-4024-b9ba-1dc0426e58c9",
        status=JobStatus.COMPLETED,
        source_bucket=INBOX_BUCKET,
        source_key=KEY,
        source_etag="9b2cf535f27731c974343645a3985328",
        source_size=123456,
        target_megapixels=4,
        enhance_details=False,
        realism=False,
        output_format="JPG",
        output_quality=95,
        output_bucket=OUTPUT_BUCKET,
        output_key="upscaled/holiday/cat.7385b5c0.jpg",
        output_etag="0f343b0931126a20f133d67c2b018a3b",
        output_size=2048,
        output_content_type="image/jpeg",
        output_width=2309,
        output_height=1732,
    )
    return job.but(**changes)


@pytest.mark.parametrize(
    "change",
    [
        {"source_key": "inbox/holiday/dog.jpg"},
        {"source_bucket": "another-inbox"},
        {"source_etag": "9b2cf535f27731c974343645a3985329"},
        {"source_size": 123457},
        {"target_megapixels": 5},
        {"enhance_details": True},
        {"realism": True},
        {"output_format": "PNG"},
        {"output_quality": 94},
    ],
)
def test_the_reuse_key_changes_with_the_key_the_content_and_every_option(change):
    assert reuse_key_for(completed_job(**change)) != reuse_key_for(completed_job())


def test_the_reuse_key_ignores_the_version_and_the_job():
    again = completed_job(job_id="0b1c8f1e-8d3a-4c0b-9f1e-2a7d3c4b5e6f", source_version_id="other")
    assert reuse_key_for(again) == reuse_key_for(completed_job())


@pytest.mark.parametrize("missing", ["source_etag", "source_size", "target_megapixels", "output_format"])
def test_no_reuse_key_without_the_content_or_the_options(missing):
    assert reuse_key_for(completed_job(**{missing: None})) is None


def test_a_pointer_is_kept_for_completed_jobs_only(aws):
    create_pointers_table(aws.dynamodb)
    pointers = OutputPointers(aws.dynamodb, POINTERS_TABLE)
    for status in (JobStatus.FAILED, JobStatus.REJECTED, JobStatus.TIMED_OUT, JobStatus.SUBMITTED):
        pointers.remember(completed_job(status=status))
    assert aws.dynamodb.scan(TableName=POINTERS_TABLE)["Items"] == []

    pointers.remember(completed_job())

    found = pointers.find(completed_job(job_id="0b1c8f1e-8d3a-4c0b-9f1e-2a7d3c4b5e6f", status=JobStatus.CLAIMED))
    assert found is not None
    assert (found.job_id, found.key, found.etag, found.size) == (
        "7385b5c0-ffc2-4024-b9ba-1dc0426e58c9",
        "upscaled/holiday/cat.7385b5c0.jpg",
        "0f343b0931126a20f133d67c2b018a3b",
        2048,
    )
    [item] = aws.dynamodb.scan(TableName=POINTERS_TABLE)["Items"]
    assert int(item["expiresAt"]["N"]) > 0, "pointers expire like the job records"


def test_a_pointer_that_cannot_be_written_fails_no_completion(aws):
    pointers = OutputPointers(aws.dynamodb, "no-such-table")
    pointers.remember(completed_job())  # logged, not raised


def test_without_a_pointer_table_a_jobs_own_output_is_still_found(aws):
    submitter = build_submitter(aws.settings)  # no PRIOR_OUTPUTS_TABLE
    job = completed_job(status=JobStatus.CLAIMED, target_megapixels=1, event_time=LONG_AGO)
    finder = PriorOutputs(submitter.objects, submitter.jobs, None)
    assert finder.find(job) is None
    metadata = {"job-id": job.job_id, OPTIONS_METADATA: options_signature(job) or ""}
    aws.s3.put_object(Bucket=OUTPUT_BUCKET, Key=str(job.output_key), Body=UPSCALED, Metadata=metadata)

    found = finder.find(job)

    assert found is not None
    assert (found.job_id, found.key, found.width, found.height) == (job.job_id, job.output_key, 1155, 866)


def head_requests(pipeline: Pipeline) -> list[str]:
    """The keys of the output bucket the submit path HEADs from now on."""
    heads: list[str] = []

    def note(params: dict[str, Any], **_: Any) -> None:
        if params["Bucket"] == OUTPUT_BUCKET:
            heads.append(params["Key"])

    pipeline.submitter.objects._s3.meta.events.register("before-parameter-build.s3.HeadObject", note)
    return heads


def test_a_fresh_upload_costs_no_request_for_an_output_of_its_own(pipeline):
    heads = head_requests(pipeline)
    pipeline.deliver(upload(pipeline.aws, KEY, SOURCE, SMALL))
    assert heads == [], "a job younger than a record lives cannot have lost its record"


def test_an_upload_older_than_a_record_lives_costs_one_head_of_its_own_output_key(pipeline):
    heads = head_requests(pipeline)
    record = upload(pipeline.aws, KEY, SOURCE, SMALL, uploaded=LONG_AGO)
    pipeline.deliver(record)
    assert heads == [pipeline.job(job_id_of(record)).output_key]


@pytest.mark.parametrize("build", [build_webhook_receiver, build_reconciler], ids=["webhook", "reconcile"])
def test_the_functions_that_complete_jobs_keep_pointers(aws, build):
    create_pointers_table(aws.dynamodb)
    built = build(replace(aws.settings, prior_outputs_table=POINTERS_TABLE))
    assert built.jobs.on_terminal is not None

    built.jobs.on_terminal(completed_job())

    assert OutputPointers(aws.dynamodb, POINTERS_TABLE).find(completed_job(status=JobStatus.CLAIMED)) is not None


def test_a_completion_both_sends_its_event_and_keeps_its_pointer(aws):
    create_pointers_table(aws.dynamodb)
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="completions")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events", region_name=REGION)
    events.put_rule(Name="completions", EventPattern=json.dumps({"source": ["s3-upscale"]}))
    events.put_targets(Rule="completions", Targets=[{"Id": "queue", "Arn": queue_arn}])
    settings = replace(aws.settings, prior_outputs_table=POINTERS_TABLE, completion_event_bus="default")
    receiver = build_webhook_receiver(settings)
    assert receiver.jobs.on_terminal is not None

    receiver.jobs.on_terminal(completed_job())

    [message] = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    assert json.loads(message["Body"])["detail"]["jobId"] == completed_job().job_id
    assert OutputPointers(aws.dynamodb, POINTERS_TABLE).find(completed_job(status=JobStatus.CLAIMED)) is not None
