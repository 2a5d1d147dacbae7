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
    from upscaler.runware import RunwareClient
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


def _job_store(settings: Settings) -> JobStore:
    return JobStore(
        _dynamodb_client(), settings.jobs_table, settings.job_retention_days, on_terminal=_completion_events(settings)
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
        partial(read_runware_api_key, settings.runware_api_key_secret, settings.secret_cache_seconds),
        timeout_seconds=settings.runware_timeout_seconds,
        max_attempts=settings.runware_max_attempts,
        least_request_spacing_seconds=settings.runware_request_spacing_seconds,
    )


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
        partial(read_secret, settings.webhook_token_secret, settings.secret_cache_seconds),
        handoff=handoff,
    )


def build_webhook_receiver(settings: Settings | None = None) -> WebhookReceiver:
    from upscaler.results import ResultRecorder
    from upscaler.webhook import WebhookReceiver

    settings = settings or get_settings()
    jobs = _job_store(settings)
    recorder = ResultRecorder(ObjectStore(create_s3_client()), jobs, settings.staging_prefix)
    return WebhookReceiver(
        jobs, recorder, partial(read_secret, settings.webhook_token_secret, settings.secret_cache_seconds)
    )


def build_reconciler(settings: Settings | None = None) -> Reconciler:
    from upscaler.reconciliation import Reconciler
    from upscaler.results import ResultRecorder

    settings = settings or get_settings()
    jobs = _job_store(settings)
    return Reconciler(
        jobs,
        ResultRecorder(ObjectStore(create_s3_client()), jobs, settings.staging_prefix),
        _runware_client(settings),
        reconcile_after_seconds=settings.reconcile_after_seconds,
        max_age_seconds=settings.job_max_age_seconds,
        max_jobs=settings.reconcile_max_jobs,
        late_output_window_seconds=settings.presigned_url_expiry_seconds,
    )
