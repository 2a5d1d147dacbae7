"""The whole local stack, started once for the integration and reliability tests of a session.

These tests run in their own pytest process (see the Makefile): the unit tests' in-process moto
mocks would otherwise intercept the stack's own AWS calls.
"""

from __future__ import annotations

import functools
import io
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from PIL import Image

from local.runware_emulator import FaultConfig
from local.stack import LocalStack, StackConfig
from tests.stack_waits import Observation, job_states, stack_activity, wait_for_progress
from upscaler.job_record import TERMINAL_STATUSES, record_from_item

# Short local timings so the reconciler's paths run within a test.
RECONCILE_AFTER_SECONDS = 3
JOB_MAX_AGE_SECONDS = 20
# Fewer Runware attempts per invocation than deployed, so an outage reaches the DLQ in seconds.
RUNWARE_MAX_ATTEMPTS = "3"


# The session stack's folder presets (tests/integration/test_presets.py); no other test drops under them.
INTEGRATION_PRESETS = {
    "presets-print/": {"target-megapixels": 8, "output-format": "PNG"},
    "presets-web/": {"target-megapixels": 2, "output-format": "WEBP", "output-quality": 80},
    "presets-web/thumbs/": {"target-megapixels": 1, "output-format": "JPG", "output-quality": 70},
    "estimate/large/": {"target-megapixels": 6},
}
NO_METRICS_WARNING = "No application metrics to publish"
# Run in several processes (make test: pytest-xdist, --dist loadgroup), the longest test starts first
# so the others fill the workers around it, and a module whose module-scoped fixture starts
# something costly (a stack, a server) keeps its tests on one worker, so it starts once.
LONGEST_FIRST = ("test_docs.py",)
ONE_WORKER_MODULES = ("test_demo_page.py", "test_presigned_urls.py")


def pytest_configure(config: pytest.Config) -> None:
    # The stack filters Powertools' "no metrics to publish" warning (metrics are not published
    # locally), but its functions run on its threads, in whichever test runs or between two.
    config.addinivalue_line("filterwarnings", f"ignore:{NO_METRICS_WARNING}:UserWarning")
    warnings.filterwarnings("ignore", message=NO_METRICS_WARNING, category=UserWarning)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here) and item.path.name in ONE_WORKER_MODULES:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
    items.sort(key=lambda item: item.path.is_relative_to(here) and item.path.name not in LONGEST_FIRST)


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    config = StackConfig(
        emulator_workers=4,
        reconcile_interval_seconds=1.0,
        parameter_overrides={
            "ReconcileAfterSeconds": str(RECONCILE_AFTER_SECONDS),
            "JobMaxAgeSeconds": str(JOB_MAX_AGE_SECONDS),
            "UploadPresets": json.dumps(INTEGRATION_PRESETS),
        },
        seed=1234,
    )
    # The functions read RUNWARE_MAX_ATTEMPTS when the stack loads them; the test process gets its own back after.
    with mock.patch.dict(os.environ, {"RUNWARE_MAX_ATTEMPTS": RUNWARE_MAX_ATTEMPTS}), LocalStack(config) as running:
        yield running


@pytest.fixture(autouse=True)
def clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "stack" in request.fixturenames:
        stack: LocalStack = request.getfixturevalue("stack")
        assert stack.emulator is not None
        stack.emulator.faults = FaultConfig()


def image_bytes(width: int, height: int, fmt: str = "JPEG", mode: str = "RGB") -> bytes:
    image = Image.new(mode, (width, height), (120, 160, 200, 255)[: len(mode)] if mode != "L" else 128)
    # A little structure so encoders do real work and results are not trivially uniform.
    for x in range(0, width, 7):
        for y in range(0, height, 11):
            image.putpixel((x, y), (x % 255, y % 255, 90, 200)[: len(mode)] if mode != "L" else x % 255)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def drop(stack: LocalStack, name: str, body: bytes, metadata: dict[str, str] | None = None) -> str:
    """Put an object into the inbox under the template's prefix; returns its key."""
    key = stack.names["inbox_prefix"] + name
    stack.client("s3").put_object(Bucket=stack.names["inbox_bucket"], Key=key, Body=body, Metadata=metadata or {})
    return key


@functools.cache
def _dynamodb(stack: LocalStack) -> Any:
    return stack.client("dynamodb")


def jobs_of(stack: LocalStack, keys: list[str]) -> list[dict[str, Any]]:
    """Every job of these source keys (a scan filtered on them: the table holds the whole session's jobs)."""
    dynamodb = _dynamodb(stack)
    values = {f":k{index}": {"S": key} for index, key in enumerate(dict.fromkeys(keys))}
    scan = {
        "TableName": stack.names["jobs_table"],
        "ConsistentRead": True,
        "FilterExpression": f"sourceKey IN ({', '.join(values)})",
        "ExpressionAttributeValues": values,
    }
    items: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(**scan):
        items.extend(record_from_item(item) for item in page["Items"])
    return items


def wait_for_jobs(stack: LocalStack, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The terminal job of each key, waiting until all are terminal for as long as the stack moves
    (tests/stack_waits.py); fails the test, saying which were pending, once it stops moving."""
    jobs: dict[str, dict[str, Any]] = {}

    def observe() -> Observation:
        nonlocal jobs
        activity = stack_activity(stack)
        jobs = {job["sourceKey"]: job for job in jobs_of(stack, keys)}
        if len(jobs) == len(keys) and all(job["status"] in TERMINAL_STATUSES for job in jobs.values()):
            return Observation(True, None)
        pending = {key: jobs.get(key, {}).get("status", "no job") for key in keys}
        pending = {key: status for key, status in pending.items() if status not in TERMINAL_STATUSES}
        return Observation(False, (activity, job_states(list(jobs.values()))), f"{pending}; {activity.describe()}")

    waited = wait_for_progress(observe, poll_seconds=0.2)
    if not waited:
        pytest.fail(f"jobs not terminal: {waited.failure}")
    return jobs


def read_output(stack: LocalStack, job: dict[str, Any]) -> tuple[Image.Image, dict[str, Any]]:
    response = stack.client("s3").get_object(Bucket=job["outputBucket"], Key=job["outputKey"])
    image = Image.open(io.BytesIO(response["Body"].read()))
    image.load()
    return image, response
