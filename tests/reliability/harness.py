"""Dropping objects into the running stack, waiting for it to settle, and checking what must hold.

The invariant, checked after every scenario on that scenario's keys only:
- every dropped object version has exactly one job, and that job is terminal, or else its upload
  event sits in the dead-letter queue, ready to be re-driven;
- no object version was sent to Runware under two different taskUUIDs (read from the presigned
  GET URL of each upscale task the emulator received, not from the pipeline's own records);
- no source object was changed: same versions, same ETag (the MD5 of the bytes dropped), same size;
- every COMPLETED job's output object is in the output bucket with the size the job records.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from PIL import Image

from local.stack import LocalStack
from tests.stack_waits import Observation, StackActivity, Waited, job_states, stack_activity, wait_for_progress
from upscaler.job_record import TERMINAL_STATUSES, record_from_item
from upscaler.source_events import UnrecognisedEvent, source_objects

SCALE = os.environ.get("RELIABILITY_SCALE", "ci").strip().lower() or "ci"
SOAK = SCALE == "soak"

# The stack's timings (see conftest.py): short, so the reconciler's paths run within a scenario.
RECONCILE_AFTER_SECONDS = 3
JOB_MAX_AGE_SECONDS = 20
EMULATOR_WORKERS = 2
# Objects larger than this are refused before anything is sent (the template's MaxInputBytes).
MAX_INPUT_BYTES = 3_000_000
# The stack grants its submit function this source key (SourceKmsKeyArns) and no other.
GRANTED_SOURCE_KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/0b0b0b0b-1111-4222-8333-444444444444"


def scaled(ci: int, soak: int) -> int:
    return soak if SOAK else ci


# ---- what the report shows -----------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    objects: int
    completed: int = 0
    rejected: int = 0
    failed: int = 0
    timed_out: int = 0
    in_dlq: int = 0
    duplicates_submitted: int = 0
    charged_unrecorded: int = 0
    lost: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


COLUMNS = (
    "scenario",
    "objects",
    "completed",
    "rejected",
    "failed",
    "timed out",
    "in DLQ",
    "duplicates submitted",
    "charged, not completed",
    "lost",
    "seconds",
)
ROWS: list[Row] = []


def short(key: str, limit: int = 90) -> str:
    """A key for a message: long ones are elided in the middle."""
    return repr(key) if len(key) <= limit else repr(f"{key[: limit // 2]}...{key[-limit // 2 :]}")


def report_table(rows: Iterable[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for row in rows:
        cells = [
            row.scenario,
            row.objects,
            row.completed,
            row.rejected,
            row.failed,
            row.timed_out,
            row.in_dlq,
            row.duplicates_submitted,
            row.charged_unrecorded,
            row.lost,
            f"{row.seconds:.1f}",
        ]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


# ---- images and odd files ----------------------------------------------------------------


def image_bytes(width: int, height: int, fmt: str = "JPEG", shade: int = 0) -> bytes:
    image = Image.new("RGB", (width, height), (90 + shade % 120, 140, 200))
    for x in range(0, width, 9):
        image.putpixel((x, (x * 7 + shade) % height), (x % 255, shade % 255, 60))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG claiming these dimensions: signature, IHDR, an IDAT of no pixel data, IEND."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


# ---- the stack's AWS, cached per stack ---------------------------------------------------

_clients: dict[tuple[int, str], Any] = {}
_clients_lock = threading.Lock()


def aws(stack: LocalStack, service: str) -> Any:
    with _clients_lock:
        key = (id(stack), service)
        if key not in _clients:
            _clients[key] = stack.client(service)
        return _clients[key]


@dataclass(frozen=True)
class Dropped:
    key: str
    version_id: str
    etag: str
    size: int
    metadata: dict[str, str]


@dataclass(frozen=True)
class Drop:
    name: str
    body: bytes
    metadata: dict[str, str] = field(default_factory=dict)


def drop_all(stack: LocalStack, prefix: str, drops: list[Drop], workers: int = 8) -> list[Dropped]:
    """Put every object (at once, from a few threads) under <inbox prefix><prefix>."""
    s3 = aws(stack, "s3")
    bucket = stack.names["inbox_bucket"]

    def put(item: Drop) -> Dropped:
        key = f"{stack.names['inbox_prefix']}{prefix}{item.name}"
        response = s3.put_object(Bucket=bucket, Key=key, Body=item.body, Metadata=item.metadata)
        etag = hashlib.md5(item.body).hexdigest()
        assert response["ETag"].strip('"') == etag
        return Dropped(key, response["VersionId"], etag, len(item.body), item.metadata)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(put, drops))


def scenario_jobs(stack: LocalStack, prefix: str) -> list[dict[str, Any]]:
    """Every job whose source key lies under the scenario's prefix (a filtered scan, retried)."""
    dynamodb = aws(stack, "dynamodb")
    key_prefix = stack.names["inbox_prefix"] + prefix
    for attempt in range(5):
        try:
            items: list[dict[str, Any]] = []
            kwargs: dict[str, Any] = {
                "TableName": stack.names["jobs_table"],
                "ConsistentRead": True,
                "FilterExpression": "begins_with(sourceKey, :prefix)",
                "ExpressionAttributeValues": {":prefix": {"S": key_prefix}},
            }
            while True:
                page = dynamodb.scan(**kwargs)
                items.extend(record_from_item(item) for item in page["Items"])
                if "LastEvaluatedKey" not in page:
                    return items
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except Exception:
            # moto's table scan can trip over concurrent writes; a scan is only an observation.
            if attempt == 4:
                raise
            time.sleep(0.2)
    return []


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: str
    sources: tuple[tuple[str, str, str | None], ...]  # (bucket, key, version id) of each S3 record


def dead_letters(stack: LocalStack) -> list[DeadLetter]:
    """Every message in the DLQ, read without consuming it (made visible again at once)."""
    import json

    sqs = aws(stack, "sqs")
    url = stack.names["dlq_url"]
    seen: dict[str, DeadLetter] = {}
    handles: list[str] = []
    for _ in range(1000):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get("Messages", [])
        if not messages:
            break
        for message in messages:
            handles.append(message["ReceiptHandle"])
            try:
                sources = tuple(
                    (item.bucket, item.key, item.version_id) for item in source_objects(json.loads(message["Body"]))
                )
            except (ValueError, UnrecognisedEvent, KeyError):
                sources = ()
            seen[message["MessageId"]] = DeadLetter(message["MessageId"], message["Body"], sources)
    for handle in handles:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    return list(seen.values())


# ---- waiting ---------------------------------------------------------------------------------

BUSY_SCAN_SECONDS = 10.0


def settle(stack: LocalStack, prefix: str, dropped: list[Dropped], *, quiet_emulator: bool = True) -> Waited:
    """Wait until every dropped version has a terminal job or a dead letter, no submit invocation is
    pending, and (by default) the emulator has no task or webhook in flight. Waits for as long as the
    stack moves (tests/stack_waits.py); false, saying what was pending, once it stops moving."""
    wanted = {(item.key, item.version_id) for item in dropped}
    emulator = stack.emulator if quiet_emulator else None
    # The jobs as last scanned: while the stack is busy the table is scanned only every
    # BUSY_SCAN_SECONDS (an observation that takes the stack's own CPU from it); the stack's activity
    # shows its movement meanwhile.
    scanned: dict[str, Any] = {"jobs": frozenset(), "open": set(wanted), "statuses": {}, "at": None, "lettered": set()}
    last: StackActivity | None = None

    def observe() -> Observation:
        nonlocal last
        last = activity = stack_activity(stack)
        quiet = activity.messages_pending == 0 and (emulator is None or emulator.wait_idle(0))
        if quiet or scanned["at"] is None or time.monotonic() - scanned["at"] >= BUSY_SCAN_SECONDS:
            jobs = scenario_jobs(stack, prefix)
            done = {
                (job["sourceKey"], job.get("sourceVersionId")) for job in jobs if job["status"] in TERMINAL_STATUSES
            }
            open_ = wanted - done
            if open_ and quiet:  # the DLQ is read only when the stack is quiet (its reads hide its messages)
                scanned["lettered"] = {
                    (key, version) for letter in dead_letters(stack) for _, key, version in letter.sources
                }
            open_ -= scanned["lettered"]
            scanned.update(
                jobs=job_states(jobs),
                open=open_,
                statuses={(job["sourceKey"], job.get("sourceVersionId")): job["status"] for job in jobs},
                at=time.monotonic(),
            )
            if quiet and not open_ and (emulator is None or emulator.wait_idle(0)):
                return Observation(True, None)
        return Observation(False, (activity, scanned["jobs"]), _pending(scanned, activity))

    def pause(seconds: float) -> None:
        if emulator is not None and last is not None and last.messages_pending == 0 and last.emulator_busy:
            emulator.wait_idle(seconds)  # busy: wakes as soon as it is idle
        else:
            time.sleep(seconds)

    return wait_for_progress(observe, pause=pause)


def _pending(scanned: dict[str, Any], activity: StackActivity) -> str:
    open_ = sorted(scanned["open"], key=lambda version: (version[0], version[1] or ""))
    shown = ", ".join(
        f"{short(key, 60)}: {scanned['statuses'].get((key, version), 'no job')}" for key, version in open_[:5]
    )
    more = f" and {len(open_) - 5} more" if len(open_) > 5 else ""
    versions = f"{len(open_)} version(s) without a terminal job or dead letter (as last scanned: {shown}{more})"
    return f"{versions}; {activity.describe()}" if open_ else activity.describe()


# ---- the invariant ---------------------------------------------------------------------------


def sent_tasks(stack: LocalStack, prefix: str) -> dict[tuple[str, str | None], list[str]]:
    """(source key, version id) -> the taskUUID of every upscale task sent for it, in order."""
    assert stack.emulator is not None
    bucket = stack.names["inbox_bucket"]
    key_prefix = stack.names["inbox_prefix"] + prefix
    sent: dict[tuple[str, str | None], list[str]] = defaultdict(list)
    for request in stack.emulator.requests:
        if not isinstance(request, list):
            continue
        for task in request:
            if not isinstance(task, dict) or task.get("taskType") != "upscale":
                continue
            image = (task.get("inputs") or {}).get("image", "")
            parts = urlsplit(str(image))
            path_bucket, _, quoted_key = parts.path.lstrip("/").partition("/")
            key = unquote(quoted_key)
            if path_bucket != bucket or not key.startswith(key_prefix):
                continue
            version = parse_qs(parts.query).get("versionId", [None])[0]
            sent[(key, version)].append(str(task.get("taskUUID")))
    return sent


def check(
    stack: LocalStack,
    scenario: str,
    prefix: str,
    dropped: list[Dropped],
    *,
    started: float,
    settled: bool | Waited = True,
    extra_problems: Iterable[str] = (),
) -> Row:
    """Measure the scenario against the invariant, record its report row and return it."""
    row = Row(scenario, len(dropped))
    row.problems.extend(extra_problems)
    if not settled:
        why = f": {settled.failure}" if isinstance(settled, Waited) else ""
        row.problems.append(f"the stack did not settle{why}")
    jobs = scenario_jobs(stack, prefix)
    by_version: dict[tuple[str, str | None], list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        by_version[(job["sourceKey"], job.get("sourceVersionId"))].append(job)
    wanted = {(item.key, item.version_id) for item in dropped}
    for version in set(by_version) - wanted:
        row.problems.append(f"job for an object version never dropped: {short(version[0])}@{version[1]}")

    lettered: Counter[tuple[str, str | None]] = Counter()
    for letter in dead_letters(stack):
        for _, key, version in letter.sources:
            lettered[(key, version)] += 1

    sent = sent_tasks(stack, prefix)
    for version, uuids in sent.items():
        if version not in wanted:
            row.problems.append(f"task sent for an object version never dropped: {short(version[0])}@{version[1]}")
        distinct = set(uuids)
        row.duplicates_submitted += len(distinct) - 1
        if len(distinct) > 1:
            row.problems.append(
                f"{short(version[0])}@{version[1]} was sent as {len(distinct)} different tasks: {sorted(distinct)}"
            )

    outputs = _outputs(stack, prefix)
    assert stack.emulator is not None
    accepted = stack.emulator.tasks
    for item in dropped:
        version = (item.key, item.version_id)
        found = by_version.get(version, [])
        if len(found) > 1:
            row.problems.append(f"{short(version[0])}@{version[1]} has {len(found)} jobs")
        job = found[0] if found else None
        status = job["status"] if job else None
        if job is not None and _charged(accepted.get(job["jobId"])) and status != "COMPLETED":
            # Runware produced (and billed) a result: the job must say so, whatever the webhooks did.
            row.charged_unrecorded += 1
            row.problems.append(f"{short(version[0])}: Runware succeeded and billed, but the job is {status}")
        if status in TERMINAL_STATUSES:
            assert job is not None
            counter = {"COMPLETED": "completed", "REJECTED": "rejected", "FAILED": "failed", "TIMED_OUT": "timed_out"}
            setattr(row, counter[status], getattr(row, counter[status]) + 1)
            row.problems.extend(_check_terminal_job(job, sent.get(version, []), outputs, accepted))
        elif lettered[version] >= 1:
            row.in_dlq += 1
            if lettered[version] > 1:
                row.problems.append(f"{short(version[0])}@{version[1]} is in the DLQ {lettered[version]} times")
        else:
            row.lost += 1
            row.problems.append(f"lost: {short(version[0])}@{version[1]} has job status {status}, and no dead letter")

    row.problems.extend(_sources_unchanged(stack, prefix, dropped))
    row.seconds = time.monotonic() - started
    ROWS.append(row)
    return row


def _charged(task: Any) -> bool:
    return task is not None and getattr(task, "status", None) == "success" and getattr(task, "output_size", None)


def _check_terminal_job(
    job: dict[str, Any], uuids: list[str], outputs: dict[str, int], accepted: dict[str, Any]
) -> list[str]:
    problems: list[str] = []
    where = f"{short(job['sourceKey'])} ({job['status']})"
    if job["status"] == "REJECTED":
        if uuids:
            problems.append(f"{where} was rejected but sent to Runware {len(uuids)} time(s)")
        if not job.get("errorCode") or not job.get("errorMessage"):
            problems.append(f"{where} has no reason")
        return problems
    if job["status"] == "COMPLETED":
        if not uuids or job["jobId"] not in accepted:
            problems.append(f"{where} completed without Runware accepting its task")
        size = outputs.get(job.get("outputKey", ""))
        if size is None:
            problems.append(f"{where} has no output object at {short(str(job.get('outputKey')))}")
        elif size != job.get("outputSize"):
            problems.append(f"{where} records outputSize {job.get('outputSize')} but the object has {size} bytes")
        if len(str(job.get("outputKey", "")).encode()) > 1024:
            problems.append(f"{where} has an output key longer than S3's 1024-byte limit")
    elif not job.get("errorCode"):
        problems.append(f"{where} has no error code")
    if uuids and set(uuids) != {job["jobId"]}:
        problems.append(f"{where} is job {job['jobId']} but was sent as {sorted(set(uuids))}")
    return problems


def _outputs(stack: LocalStack, prefix: str) -> dict[str, int]:
    s3 = aws(stack, "s3")
    sizes: dict[str, int] = {}
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=stack.names["output_bucket"], Prefix=stack.names["output_prefix"] + prefix):
        for item in page.get("Contents", []):
            sizes[item["Key"]] = int(item["Size"])
    return sizes


def _sources_unchanged(stack: LocalStack, prefix: str, dropped: list[Dropped]) -> list[str]:
    s3 = aws(stack, "s3")
    versions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=stack.names["inbox_bucket"], Prefix=stack.names["inbox_prefix"] + prefix):
        for item in page.get("Versions", []):
            versions[item["Key"]].append(item)
        for item in page.get("DeleteMarkers", []):
            versions[item["Key"]].append({**item, "deleted": True})
    problems: list[str] = []
    expected: dict[str, list[Dropped]] = defaultdict(list)
    for item in dropped:
        expected[item.key].append(item)
    for key, items in expected.items():
        stored = {version["VersionId"]: version for version in versions.get(key, [])}
        if len(stored) != len(items):
            problems.append(f"source {short(key)} has {len(stored)} versions, {len(items)} were dropped")
        for item in items:
            version = stored.get(item.version_id)
            if version is None or version.get("deleted"):
                problems.append(f"source {short(key)} version {item.version_id} is gone")
            elif version["ETag"].strip('"') != item.etag or int(version["Size"]) != item.size:
                problems.append(f"source {short(key)} version {item.version_id} was changed")
    return problems


def assert_invariant(row: Row) -> None:
    if row.problems:
        shown = "\n  ".join(row.problems[:25])
        more = f"\n  ... and {len(row.problems) - 25} more" if len(row.problems) > 25 else ""
        pytest.fail(f"{row.scenario}: the invariant does not hold:\n  {shown}{more}")
    assert row.lost == 0
    assert row.duplicates_submitted == 0
    assert row.charged_unrecorded == 0
    assert row.completed + row.rejected + row.failed + row.timed_out + row.in_dlq == row.objects


def run_scenario(
    stack: LocalStack,
    scenario: str,
    prefix: str,
    drops: list[Drop],
    *,
    during: Callable[[list[Dropped]], None] | None = None,
) -> tuple[Row, list[Dropped]]:
    """Drop the objects, optionally act while they are processed, settle, check the invariant."""
    started = time.monotonic()
    dropped = drop_all(stack, prefix, drops)
    if during is not None:
        during(dropped)
    settled = settle(stack, prefix, dropped)
    row = check(stack, scenario, prefix, dropped, started=started, settled=settled)
    assert_invariant(row)
    return row, dropped


def jobs_by_key(stack: LocalStack, prefix: str) -> dict[str, dict[str, Any]]:
    return {job["sourceKey"]: job for job in scenario_jobs(stack, prefix)}
