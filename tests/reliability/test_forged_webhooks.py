"""Forged and malformed webhook requests are answered 4xx and write nothing, while jobs are open and
after they have finished."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import uuid
from dataclasses import dataclass, replace

import httpx
import pytest

from local.runware_emulator import FaultConfig
from local.stack import LocalStack
from tests.reliability.harness import (
    ROWS,
    Drop,
    aws,
    check,
    drop_all,
    image_bytes,
    jobs_by_key,
    scenario_jobs,
    settle,
)
from tests.stack_waits import wait_on_stack

SMALL = {"target-megapixels": "1"}


@dataclass(frozen=True)
class Forgery:
    name: str
    status: int
    params: dict[str, str]
    body: bytes
    method: str = "POST"


def token(job_id: str, key: str) -> str:
    return hmac.new(key.encode(), job_id.encode(), hashlib.sha256).hexdigest()


def success_body(job_id: str) -> bytes:
    return json.dumps(
        {"data": [{"taskType": "upscale", "taskUUID": job_id, "imageUUID": str(uuid.uuid4()), "cost": 0.01}]}
    ).encode()


def error_body(job_id: str) -> bytes:
    return json.dumps({"errors": [{"code": "forged", "message": "forged", "taskUUID": job_id}]}).encode()


def forgeries(victim: str, other: str, key: str) -> list[Forgery]:
    unknown = str(uuid.uuid4())
    return [
        Forgery("success, wrong token", 401, {"job": victim, "token": "0" * 64}, success_body(victim)),
        Forgery("error, wrong token", 401, {"job": victim, "token": token(victim, "guess")}, error_body(victim)),
        Forgery("success, other job's token", 401, {"job": victim, "token": token(other, key)}, success_body(victim)),
        Forgery("success, no token", 401, {"job": victim}, success_body(victim)),
        Forgery("success, empty token", 401, {"job": victim, "token": ""}, success_body(victim)),
        Forgery("success, no job", 401, {"token": token(victim, key)}, success_body(victim)),
        Forgery("non-ASCII token", 401, {"job": victim, "token": "é" * 64}, success_body(victim)),
        Forgery("job id not a UUID v4", 401, {"job": victim.upper(), "token": token(victim, key)}, b"{}"),
        Forgery("huge body, wrong token", 401, {"job": victim, "token": "1" * 64}, b"x" * (1024 * 1024)),
        Forgery("body over the gateway's limit", 413, {"job": victim}, b"x" * (10 * 1024 * 1024 + 1)),
        Forgery("non-JSON, no token", 401, {"job": victim}, b"<xml>not json</xml>"),
        # With the right token (the controls: they show the token is right and the body is what is refused).
        Forgery("huge body, valid token", 413, {"job": victim, "token": token(victim, key)}, b"[" + b" " * 300_000),
        Forgery("non-JSON, valid token", 400, {"job": victim, "token": token(victim, key)}, b"not json at all"),
        Forgery("binary, valid token", 400, {"job": victim, "token": token(victim, key)}, b"\xff\xfe\x00\x81"),
        Forgery("JSON without a result", 400, {"job": victim, "token": token(victim, key)}, b'{"data": []}'),
        Forgery("result for another task", 400, {"job": victim, "token": token(victim, key)}, success_body(other)),
        Forgery(
            "unknown job, its valid token", 404, {"job": unknown, "token": token(unknown, key)}, success_body(unknown)
        ),
        Forgery("GET", 404, {"job": victim, "token": token(victim, key)}, b"", method="GET"),
    ]


def webhook_key(stack: LocalStack) -> str:
    secret = aws(stack, "secretsmanager").get_secret_value(SecretId=os.environ["WEBHOOK_TOKEN_SECRET"])
    return str(secret["SecretString"]).strip()


def outputs(stack: LocalStack) -> list[tuple[str, str]]:
    s3 = aws(stack, "s3")
    listed: list[tuple[str, str]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.names["output_bucket"]):
        listed.extend((item["Key"], item["ETag"]) for item in page.get("Contents", []))
    return sorted(listed)


# An unreadable body with the right token is counted on its job (a diagnostic): all it may write.
MALFORMED_REPORT_FIELDS = ("malformedReports", "lastMalformedReport", "lastMalformedReportAt")


def without_malformed_counts(job: dict) -> dict:
    return {key: value for key, value in job.items() if key not in MALFORMED_REPORT_FIELDS}


def forge_all(stack: LocalStack, prefix: str, victim: str, other: str) -> list[str]:
    """Send every forgery; the problems found (wrong answers, anything written)."""
    problems: list[str] = []
    jobs_before = {job["jobId"]: without_malformed_counts(job) for job in scenario_jobs(stack, prefix)}
    outputs_before = outputs(stack)
    with httpx.Client(timeout=30, trust_env=False) as http:
        for forgery in forgeries(victim, other, webhook_key(stack)):
            response = http.request(
                forgery.method, stack.names["webhook_url"], params=forgery.params, content=forgery.body
            )
            if response.status_code != forgery.status:
                problems.append(f"{forgery.name}: HTTP {response.status_code}, expected {forgery.status}")
    jobs_after = {job["jobId"]: without_malformed_counts(job) for job in scenario_jobs(stack, prefix)}
    if jobs_after != jobs_before:
        changed = [job_id for job_id in jobs_after if jobs_after[job_id] != jobs_before.get(job_id)]
        problems.append(f"forged requests changed jobs {changed}")
    if outputs(stack) != outputs_before:
        problems.append("forged requests changed the output bucket")
    return problems


def test_forged_webhooks_are_refused_and_write_nothing(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    assert stack.emulator is not None
    prefix = "rel-forged/"
    # The genuine webhooks must be what finishes the jobs (they prove the forgeries poisoned nothing):
    # the jobs' recovery checks, which would find the finished tasks first, come later than the tasks take.
    submitter = stack.functions["SubmitFunction"].module.submitter
    monkeypatch.setattr(submitter, "check_schedule", replace(submitter.check_schedule, first_after_seconds=120))
    # Slow tasks, so the jobs are still open (SUBMITTED) while the first round of forgeries arrives.
    stack.emulator.faults = FaultConfig(latency_seconds=8)
    started = time.monotonic()
    drops = [Drop(f"{index}.jpg", image_bytes(160, 160, shade=index), SMALL) for index in range(2)]
    dropped = drop_all(stack, prefix, drops)

    def statuses() -> list[str]:
        return sorted(job["status"] for job in jobs_by_key(stack, prefix).values())

    # Until both are past CLAIMED: the assertion below says whether they are open.
    wait_on_stack(
        stack,
        lambda: len(found := statuses()) == 2 and "CLAIMED" not in found,
        "the two jobs were never submitted",
        progress=statuses,
        pending=lambda: f"jobs {statuses()}",
        poll_seconds=0.1,
    )
    jobs = jobs_by_key(stack, prefix)
    first, second = (jobs[item.key]["jobId"] for item in dropped)
    assert all(job["status"] == "SUBMITTED" for job in jobs.values())

    problems = [f"while open: {problem}" for problem in forge_all(stack, prefix, first, second)]
    if not problems:
        still_open = all(job["status"] == "SUBMITTED" for job in jobs_by_key(stack, prefix).values())
        assert still_open, "the tasks finished while the forgeries were sent: the first round tested no open job"

    stack.emulator.faults = FaultConfig()
    settled = settle(stack, prefix, dropped)
    problems += [f"when finished: {problem}" for problem in forge_all(stack, prefix, second, first)]

    count = len(forgeries(first, second, "key"))
    row = check(
        stack,
        f"forged webhooks ({2 * count} requests)",
        prefix,
        dropped,
        started=started,
        settled=settled,
        extra_problems=problems,
    )
    assert not row.problems, row.problems
    assert row.completed == row.objects
    assert ROWS[-1] is row
    for job in jobs_by_key(stack, prefix).values():
        assert job["resultVia"] == "webhook"
        assert job["resultReports"] == 1
