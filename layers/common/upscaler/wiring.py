"""Building the pipeline's parts from settings, once per container (outside the handlers).

Clients are created at import of a handler module and reused by warm invocations; secrets are
read on first use and cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import cache, partial
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.config import Config

from upscaler.jobs import JobStore
from upscaler.settings import ConfigurationError, Settings, aws_region, get_settings, read_runware_api_key, read_secret
from upscaler.storage import ObjectStore, SigningSession, create_s3_client

# Each builder imports only what its function uses, so no function pays at cold start for the
# modules of another (the webhook never loads the Runware client and httpx).
if TYPE_CHECKING:
    import httpx

    from upscaler.completion_events import CompletionEventPublisher
    from upscaler.ingestion import Intake
    from upscaler.intake_pause import IntakeResumer, PauseReason, PauseStore, ResumeCondition
    from upscaler.job_record import Job
    from upscaler.parallel import ThreadHandoff
    from upscaler.prior_outputs import OutputPointers
    from upscaler.reconciliation import Reconciler
    from upscaler.recovery import Recoverer
    from upscaler.recovery_checks import CheckQueue, CheckSchedule
    from upscaler.result_recovery import ResultRecovery
    from upscaler.runware import RunwareClient
    from upscaler.settlement import Settler
    from upscaler.spend_limit import DailyLimit, SpendCounter, SpendLimit
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


def _job_store(
    settings: Settings, dynamodb: Any, pointers: OutputPointers | None, handoff: ThreadHandoff | None = None
) -> JobStore:
    return JobStore(
        dynamodb,
        settings.jobs_table,
        settings.job_retention_days,
        on_terminal=_on_terminal(settings, pointers),
        handoff=handoff,
    )


def _on_terminal(settings: Settings, pointers: OutputPointers | None) -> Callable[[Job], None] | None:
    """What follows a job's terminal write: its completion event, and the pointer to its output."""
    remember = pointers.remember if pointers is not None else None
    told = [told for told in (_completion_events(settings), remember) if told is not None]
    if len(told) <= 1:
        return told[0] if told else None

    def tell_each(job: Job) -> None:
        for tell in told:
            tell(job)

    return tell_each


def _output_pointers(settings: Settings, dynamodb: Any) -> OutputPointers | None:
    """The pointers to completed jobs' outputs (upscaler.prior_outputs), when the stack keeps them."""
    if not settings.prior_outputs_table:
        return None
    from upscaler.prior_outputs import OutputPointers

    return OutputPointers(dynamodb, settings.prior_outputs_table, settings.job_retention_days)


def _jobs_and_pointers(
    settings: Settings, handoff: ThreadHandoff | None = None
) -> tuple[JobStore, OutputPointers | None]:
    dynamodb = _dynamodb_client()
    pointers = _output_pointers(settings, dynamodb)
    return _job_store(settings, dynamodb, pointers, handoff), pointers


def _completion_events(settings: Settings) -> CompletionEventPublisher | None:
    if not settings.completion_event_bus:
        return None
    from upscaler.completion_events import CompletionEventPublisher

    def events_client() -> Any:
        return boto3.client("events", region_name=aws_region(), config=Config(retries={"mode": "standard"}))

    return CompletionEventPublisher(events_client, settings.completion_event_bus)


def _object_store(settings: Settings) -> ObjectStore:
    """S3 access; presigned URLs signed by the signing role's sessions when one is configured."""
    signing = None
    if settings.url_signing_role_arn:
        sts = boto3.client("sts", region_name=aws_region(), config=Config(retries={"mode": "standard"}))
        signing = SigningSession(sts, settings.url_signing_role_arn)
    return ObjectStore(create_s3_client(), signing)


def _result_recovery(settings: Settings, objects: ObjectStore, runware: RunwareClient | None) -> ResultRecovery:
    """Recovery of results whose upload failed. With `runware`, this function may also send a job
    again: only where the webhook URL is known (the webhook function cannot know its own URL
    without a circular reference in the template, so the reconcile function sends jobs again)."""
    from upscaler.result_recovery import ResultRecovery, RunwareResender

    resender = None
    if runware is not None and settings.webhook_url.startswith(("https://", "http://")):

        @cache
        def submitter() -> Submitter:  # built on the first resubmission: most runs need none
            return build_submitter(settings)

        resender = RunwareResender(lambda job, task_uuid: submitter().task_for(job, task_uuid), runware)
    client: httpx.Client | None = None

    def http() -> httpx.Client:
        # httpx is loaded on the first recovery only: the webhook function's cold start stays without it.
        import httpx

        nonlocal client
        client = client or httpx.Client()
        return client

    return ResultRecovery(
        objects, http, settings.runware_api_url, resender=resender, staging_prefix=settings.staging_prefix
    )


def _runware_client(settings: Settings) -> RunwareClient:
    from upscaler.runware import RunwareClient

    return RunwareClient(
        settings.runware_api_url,
        partial(read_runware_api_key, settings.runware_api_key_secret, settings.secret_cache_seconds),
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


def _settler(settings: Settings, jobs: JobStore, runware: RunwareClient | None = None) -> Settler:
    """How a job is settled from Runware's answer; with `runware`, a job whose result is gone may be
    sent again (see _result_recovery)."""
    from upscaler.results import ResultRecorder
    from upscaler.settlement import Settler

    objects = _object_store(settings)
    recorder = ResultRecorder(objects, jobs, settings.staging_prefix, _result_recovery(settings, objects, runware))
    return Settler(jobs, recorder, max_age_seconds=settings.job_max_age_seconds)


def build_submitter(settings: Settings | None = None, *, handoff: ThreadHandoff | None = None) -> Submitter:
    """`handoff` gives the submitter's worker threads the handler's trace context."""
    from upscaler.prior_outputs import PriorOutputs
    from upscaler.submission import Submitter

    settings = settings or get_settings()
    if not settings.webhook_url.startswith(("https://", "http://")):
        raise ConfigurationError(f"WEBHOOK_URL must be the webhook endpoint's URL, got {settings.webhook_url!r}")
    objects = _object_store(settings)
    jobs, pointers = _jobs_and_pointers(settings, handoff)
    return Submitter(
        settings,
        objects,
        jobs,
        _runware_client(settings),
        partial(read_secret, settings.webhook_token_secret, settings.secret_cache_seconds),
        handoff=handoff,
        prior_outputs=PriorOutputs(objects, jobs, pointers),
        checks=_check_queue(settings),
        check_schedule=_check_schedule(settings),
        spend=_spend_counter(settings),
    )


def daily_limit(settings: Settings) -> DailyLimit:
    """The spend limit the function's environment sets now (a stack update changes it)."""
    from upscaler.spend_limit import DailyLimit, to_microdollars

    return DailyLimit(settings.spend_limit_images_per_day, to_microdollars(settings.spend_limit_usd_per_day))


def _spend_counter(settings: Settings) -> SpendCounter:
    """The day's counter (the submitter reserves on it; intake reads it when the limit is reached)."""
    from upscaler.spend_limit import SpendCounter

    return SpendCounter(_dynamodb_client(), settings.jobs_table, daily_limit(settings))


def _spend_limit(settings: Settings, counter: SpendCounter | None) -> SpendLimit | None:
    from upscaler.spend_limit import LimitReachedEvents, SpendLimit

    if counter is None:
        return None
    events = None
    if settings.completion_event_bus:

        def events_client() -> Any:
            return boto3.client("events", region_name=aws_region(), config=Config(retries={"mode": "standard"}))

        events = LimitReachedEvents(events_client, settings.completion_event_bus)
    return SpendLimit(counter, events)


def _resume_conditions(settings: Settings) -> Mapping[PauseReason, ResumeCondition]:
    """The pause reasons' resume conditions; the spend limit's reads the limit set now."""
    from upscaler.intake_pause import RESUME_CONDITIONS, PauseReason
    from upscaler.spend_limit import LimitLiftedOrNewDay

    return {**RESUME_CONDITIONS, PauseReason.SPEND_LIMIT_REACHED: LimitLiftedOrNewDay(daily_limit(settings))}


def build_webhook_receiver(settings: Settings | None = None) -> WebhookReceiver:
    from upscaler.results import ResultRecorder
    from upscaler.webhook import WebhookReceiver

    settings = settings or get_settings()
    jobs, _ = _jobs_and_pointers(settings)
    objects = _object_store(settings)
    recovery = _result_recovery(settings, objects, None)
    recorder = ResultRecorder(objects, jobs, settings.staging_prefix, recovery)
    return WebhookReceiver(
        jobs, recorder, partial(read_secret, settings.webhook_token_secret, settings.secret_cache_seconds)
    )


def build_reconciler(settings: Settings | None = None) -> Reconciler:
    from upscaler.late_outputs import LateOutputs
    from upscaler.open_jobs import OpenJobs
    from upscaler.reconciliation import CHECK_GRACE_SECONDS, Reconciler

    settings = settings or get_settings()
    jobs, _ = _jobs_and_pointers(settings)
    runware = _runware_client(settings)
    settler = _settler(settings, jobs, runware)
    late_outputs = LateOutputs(
        settler.recorder.outputs.objects,
        jobs,
        settler,
        bucket=settings.output_bucket,
        staging_prefix=settings.staging_prefix,
        max_objects=settings.reconcile_max_jobs,
        min_age_seconds=CHECK_GRACE_SECONDS,
    )
    return Reconciler(
        jobs,
        OpenJobs(_dynamodb_client(), settings.jobs_table),
        settler,
        runware,
        max_age_seconds=settings.job_max_age_seconds,
        max_jobs=settings.reconcile_max_jobs,
        checks=_check_queue(settings),
        schedule=_check_schedule(settings),
        legacy_index=settings.legacy_status_index,
        late_outputs=late_outputs,
    )


def build_recoverer(settings: Settings | None = None, *, handoff: ThreadHandoff | None = None) -> Recoverer:
    """`handoff` gives the recoverer's worker threads the handler's trace context."""
    from upscaler.recovery import Recoverer

    settings = settings or get_settings()
    checks = _check_queue(settings)
    if checks is None:
        raise ConfigurationError("RECOVERY_QUEUE_URL must name the recovery checks queue")
    jobs, _ = _jobs_and_pointers(settings, handoff)
    runware = _runware_client(settings)
    return Recoverer(
        jobs,
        _settler(settings, jobs, runware),
        runware,
        checks,
        _check_schedule(settings),
        parallelism=settings.recovery_parallelism,
        handoff=handoff,
    )


def _pause_store(settings: Settings) -> PauseStore:
    from upscaler.intake_pause import BackOff, PauseStore

    backoff = BackOff(settings.intake_pause_first_wait_seconds, settings.intake_pause_longest_wait_seconds)
    return PauseStore(_dynamodb_client(), settings.jobs_table, backoff)


def _lambda_client() -> Any:
    return boto3.client("lambda", region_name=aws_region(), config=Config(retries={"mode": "standard"}))


def build_intake(submitter: Submitter, settings: Settings | None = None) -> Intake:
    """The submit function's intake: the submitter behind the intake pause, and the queues it sends to."""
    from upscaler.ingestion import Intake, IntakeQueues, QueueCopies
    from upscaler.intake_pause import IngestMapping, IntakeBreaker

    settings = settings or get_settings()
    if not settings.ingest_queue_url or not settings.dead_letter_queue_url:
        raise ConfigurationError("INGEST_QUEUE_URL and DEAD_LETTER_QUEUE_URL must name the ingestion queue and its DLQ")
    lambda_client = _lambda_client()
    sqs = boto3.client("sqs", region_name=aws_region(), config=Config(retries={"mode": "standard"}))
    return Intake(
        submitter,
        IntakeBreaker(_pause_store(settings), partial(IngestMapping, lambda_client), _resume_conditions(settings)),
        QueueCopies(sqs),
        IntakeQueues(settings.ingest_queue_url, settings.dead_letter_queue_url),
        _spend_limit(settings, submitter.spend),
    )


def build_intake_resumer(settings: Settings | None = None) -> IntakeResumer:
    """The scheduled side of the intake pause (run by the reconcile function)."""
    from upscaler.intake_pause import IngestMapping, IntakeResumer

    settings = settings or get_settings()
    if not settings.submit_function_name or not settings.ingest_queue_arn:
        raise ConfigurationError("SUBMIT_FUNCTION_NAME and INGEST_QUEUE_ARN must name the submit function's mapping")
    mapping = IngestMapping(_lambda_client(), settings.submit_function_name, settings.ingest_queue_arn)
    return IntakeResumer(_pause_store(settings), mapping, _resume_conditions(settings))
