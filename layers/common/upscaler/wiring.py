"""Building the pipeline's parts from settings, once per container (outside the handlers).

Clients are created at import of a handler module and reused by warm invocations; secrets are
read on first use and cached.
"""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.config import Config

from upscaler.jobs import JobStore
from upscaler.settings import ConfigurationError, Settings, aws_region, get_settings, read_runware_api_key, read_secret
from upscaler.storage import ObjectStore, create_s3_client

# Each builder imports only what its function uses, so no function pays at cold start for the
# modules of another (the webhook never loads the Runware client and httpx).
if TYPE_CHECKING:
    from upscaler.completion_events import CompletionEventPublisher
    from upscaler.parallel import ThreadHandoff
    from upscaler.reconciliation import Reconciler
    from upscaler.recovery import Recoverer
    from upscaler.recovery_checks import CheckQueue, CheckSchedule
    from upscaler.runware import RunwareClient
    from upscaler.settlement import Settler
    from upscaler.submission import Submitter
    from upscaler.webhook import WebhookReceiver

# Seconds kept back from the invocation's remaining time, so retries never run into the timeout.
DEADLINE_MARGIN_SECONDS = 5.0


class HasRemainingTime(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


def deadline_for(context: HasRemainingTime | None, margin: float = DEADLINE_MARGIN_SECONDS) -> float | None:
    """A time.monotonic() deadline for retries, from the Lambda context's remaining time."""
    if context is None or not hasattr(context, "get_remaining_time_in_millis"):
        return None
    return time.monotonic() + max(0.0, context.get_remaining_time_in_millis() / 1000 - margin)


def _dynamodb_client() -> Any:
    region = aws_region()
    return boto3.client("dynamodb", region_name=region, config=Config(retries={"mode": "standard"}))


def _job_store(settings: Settings, dynamodb: Any = None) -> JobStore:
    return JobStore(
        dynamodb or _dynamodb_client(),
        settings.jobs_table,
        settings.job_retention_days,
        on_terminal=_completion_events(settings),
    )


def _completion_events(settings: Settings) -> CompletionEventPublisher | None:
    if not settings.completion_event_bus:
        return None
    from upscaler.completion_events import CompletionEventPublisher

    def events_client() -> Any:
        return boto3.client("events", region_name=aws_region(), config=Config(retries={"mode": "standard"}))

    return CompletionEventPublisher(events_client, settings.completion_event_bus)


def _runware_client(settings: Settings) -> RunwareClient:
    from upscaler.runware import RunwareClient

    return RunwareClient(
        settings.runware_api_url,
        partial(read_runware_api_key, settings.runware_api_key_secret),
        timeout_seconds=settings.runware_timeout_seconds,
        max_attempts=settings.runware_max_attempts,
        least_request_spacing_seconds=settings.runware_request_spacing_seconds,
    )


def _check_queue(settings: Settings) -> CheckQueue | None:
    """Where each submitted job's recovery check goes; None when the stack has no recovery queue."""
    if not settings.recovery_queue_url:
        return None
    from upscaler.recovery_checks import CheckQueue

    sqs = boto3.client("sqs", region_name=aws_region(), config=Config(retries={"mode": "standard"}))
    return CheckQueue(sqs, settings.recovery_queue_url)


def _check_schedule(settings: Settings) -> CheckSchedule:
    from upscaler.recovery_checks import CheckSchedule

    return CheckSchedule(
        first_after_seconds=settings.reconcile_after_seconds,
        max_age_seconds=settings.job_max_age_seconds,
        late_output_window_seconds=settings.presigned_url_expiry_seconds,
    )


def _settler(settings: Settings, jobs: JobStore) -> Settler:
    from upscaler.results import ResultRecorder
    from upscaler.settlement import Settler

    recorder = ResultRecorder(ObjectStore(create_s3_client()), jobs, settings.staging_prefix)
    return Settler(jobs, recorder, max_age_seconds=settings.job_max_age_seconds)


def build_submitter(settings: Settings | None = None, *, handoff: ThreadHandoff | None = None) -> Submitter:
    """`handoff` gives the submitter's worker threads the handler's trace context."""
    from upscaler.submission import Submitter

    settings = settings or get_settings()
    if not settings.webhook_url.startswith(("https://", "http://")):
        raise ConfigurationError(f"WEBHOOK_URL must be the webhook endpoint's URL, got {settings.webhook_url!r}")
    return Submitter(
        settings,
        ObjectStore(create_s3_client()),
        _job_store(settings),
        _runware_client(settings),
        partial(read_secret, settings.webhook_token_secret),
        handoff=handoff,
        checks=_check_queue(settings),
        check_schedule=_check_schedule(settings),
    )


def build_webhook_receiver(settings: Settings | None = None) -> WebhookReceiver:
    from upscaler.results import ResultRecorder
    from upscaler.webhook import WebhookReceiver

    settings = settings or get_settings()
    jobs = _job_store(settings)
    recorder = ResultRecorder(ObjectStore(create_s3_client()), jobs, settings.staging_prefix)
    return WebhookReceiver(jobs, recorder, partial(read_secret, settings.webhook_token_secret))


def build_reconciler(settings: Settings | None = None) -> Reconciler:
    from upscaler.open_jobs import OpenJobs
    from upscaler.reconciliation import Reconciler

    settings = settings or get_settings()
    dynamodb = _dynamodb_client()
    jobs = _job_store(settings, dynamodb)
    return Reconciler(
        jobs,
        OpenJobs(dynamodb, settings.jobs_table),
        _settler(settings, jobs),
        _runware_client(settings),
        max_age_seconds=settings.job_max_age_seconds,
        max_jobs=settings.reconcile_max_jobs,
        checks=_check_queue(settings),
        schedule=_check_schedule(settings),
        legacy_index=settings.legacy_status_index,
    )


def build_recoverer(settings: Settings | None = None, *, handoff: ThreadHandoff | None = None) -> Recoverer:
    """`handoff` gives the recoverer's worker threads the handler's trace context."""
    from upscaler.recovery import Recoverer

    settings = settings or get_settings()
    checks = _check_queue(settings)
    if checks is None:
        raise ConfigurationError("RECOVERY_QUEUE_URL must name the recovery checks queue")
    jobs = _job_store(settings)
    return Recoverer(
        jobs,
        _settler(settings, jobs),
        _runware_client(settings),
        checks,
        _check_schedule(settings),
        parallelism=settings.recovery_parallelism,
        handoff=handoff,
    )
