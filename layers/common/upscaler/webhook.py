"""Webhook path: authenticate Runware's POST, then record each reported result exactly once.

Answers follow the provider's retry rule: 2xx means "do not send again". A forged or unknown
request gets 401/404 and writes nothing; a success whose output object is not in the bucket yet
gets 503 so the provider retries. A body with nothing readable gets 400 (never 5xx: sending it
again cannot help) and is counted on its job; unreadable items beside readable ones are counted too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from upscaler import json_bodies
from upscaler.jobs import JobStore
from upscaler.models import is_uuid4
from upscaler.results import OutputNotReady, Recorded, ResultRecorder
from upscaler.runware_answers import Failed, Succeeded, read_webhook
from upscaler.tokens import token_is_valid

MAX_BODY_BYTES = 256 * 1024


@dataclass(frozen=True)
class WebhookReply:
    status_code: int
    body: dict[str, Any]
    recorded: list[Recorded] = field(default_factory=list)
    malformed: int = 0


class WebhookReceiver:
    def __init__(self, jobs: JobStore, recorder: ResultRecorder, webhook_key: Callable[[], str]) -> None:
        self.jobs = jobs
        self.recorder = recorder
        self._webhook_key = webhook_key

    def receive(self, job_id: str | None, token: str | None, body: bytes) -> WebhookReply:
        if not job_id or not token or not is_uuid4(job_id):
            return WebhookReply(401, {"message": "missing or malformed job or token"})
        if not token_is_valid(job_id, token, self._webhook_key()):
            return WebhookReply(401, {"message": "invalid token"})
        if len(body) > MAX_BODY_BYTES:
            return WebhookReply(413, {"message": f"body larger than {MAX_BODY_BYTES} bytes"})
        try:
            # Values nested too deep read as null, so one hostile item does not hide the others.
            payload = json_bodies.loads(body)
        except (ValueError, RecursionError):
            return self._unreadable(job_id, 1, "the body is not JSON")
        parsed = read_webhook(payload, job_id)
        if not parsed.reports:
            return self._unreadable(job_id, max(parsed.malformed, 1), parsed.problem)
        reports = parsed.reports
        foreign = sorted({report.task_uuid for report in reports if report.task_uuid != job_id} - {None})
        job = self.jobs.get(job_id) if foreign else None
        if job is not None:
            foreign = [task_uuid for task_uuid in foreign if task_uuid != job.task_uuid]  # the job sent again
        if foreign:
            named = ", ".join(map(str, foreign[:3])) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            return WebhookReply(400, {"message": f"items for other tasks: {named}"})
        job = job or self.jobs.get(job_id)
        if job is None:
            return WebhookReply(404, {"message": "unknown job"})
        if parsed.malformed:
            self._count_malformed(job_id, parsed.malformed, parsed.problem)
        recorded: list[Recorded] = []
        for report in reports:
            try:
                match report:
                    case Failed(error=error):
                        outcome = self.recorder.record_failure(job, error, via="webhook")
                    case Succeeded(result=result):
                        outcome = self.recorder.record_success(job, result, via="webhook")
            except OutputNotReady as error:
                return WebhookReply(503, {"message": str(error)}, recorded, parsed.malformed)
            recorded.append(outcome)
            job = outcome.job
        return WebhookReply(200, {"jobId": job_id, "status": str(job.status)}, recorded, parsed.malformed)

    def _unreadable(self, job_id: str, count: int, problem: str) -> WebhookReply:
        self._count_malformed(job_id, count, problem)
        return WebhookReply(400, {"message": f"unreadable body: {problem}"}, malformed=count)

    def _count_malformed(self, job_id: str, count: int, problem: str) -> None:
        # The count is a diagnostic; failing to write it must not turn a 400 into a 5xx.
        with contextlib.suppress(ClientError, BotoCoreError):
            self.jobs.count_malformed_reports(job_id, count, problem)
