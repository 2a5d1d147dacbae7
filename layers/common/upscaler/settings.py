"""Configuration read once per container from the environment the template sets."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import ClassVar

from upscaler.models import UpscaleOptions, parse_bool

# A container keeps its share of a configured Runware rate with a tenth to spare.
RATE_HEADROOM = 1.1


class ConfigurationError(RuntimeError):
    """A required setting is missing or malformed: a deployment problem, not a job problem."""


@dataclass(frozen=True)
class Settings:
    # Read when present but not set by template.yaml: tuning for tests and special deployments.
    OPTIONAL_VARIABLES: ClassVar[frozenset[str]] = frozenset({"RUNWARE_MAX_ATTEMPTS"})

    jobs_table: str
    output_bucket: str
    runware_api_url: str
    runware_api_key_secret: str
    webhook_token_secret: str
    inbox_prefix: str = "inbox/"
    # The one bucket sources may come from; empty, only the prefix decides.
    inbox_bucket: str = ""
    output_prefix: str = "upscaled/"
    # Where Runware's presigned PUT lands, in the output bucket; nothing but the pipeline reads it.
    staging_prefix: str = "staging/"
    webhook_url: str = ""
    defaults: UpscaleOptions = field(default_factory=UpscaleOptions)
    max_input_bytes: int = 50 * 1024 * 1024
    presigned_url_expiry_seconds: int = 3 * 3600
    runware_result_ttl_seconds: int = 600
    job_retention_days: int = 90
    reconcile_after_seconds: int = 600
    job_max_age_seconds: int = 4 * 3600
    reconcile_max_jobs: int = 200
    runware_timeout_seconds: float = 20.0
    runware_max_attempts: int = 5
    # The account's Runware request rate, when the operator knows it (0: not set, learnt from 429s),
    # and how many containers share it at once (the submit function's MaximumConcurrency).
    runware_requests_per_second: float = 0.0
    runware_concurrent_senders: int = 1
    completion_event_bus: str = ""  # empty: no completion events (the template always sets one)
    # Most sources of one submit invocation whose S3 and DynamoDB steps run at once.
    submit_parallelism: int = 10

    @property
    def runware_request_spacing_seconds(self) -> float:
        """Least time between one container's requests: its share of the account's rate, with a tenth
        to spare, since a request that reaches Runware a little late must not make the next one early."""
        if self.runware_requests_per_second <= 0:
            return 0.0
        return RATE_HEADROOM * self.runware_concurrent_senders / self.runware_requests_per_second

    def owns_source(self, bucket: str, key: str) -> bool:
        """Whether an object is one this stack was deployed to process (its bucket and prefix)."""
        if bucket == self.output_bucket or (self.inbox_bucket and bucket != self.inbox_bucket):
            return False
        return key.startswith(self.inbox_prefix)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def required(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise ConfigurationError(f"environment variable {name} is not set")
            return value

        def number(name: str, default: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                return int(raw)
            except ValueError:
                raise ConfigurationError(f"{name}={raw!r} is not an integer") from None

        def decimal(name: str, default: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ConfigurationError(f"{name}={raw!r} is not a number") from None
            if not math.isfinite(value) or value < 0:
                raise ConfigurationError(f"{name}={raw!r} must be a finite number >= 0")
            return value

        def flag(name: str, default: bool) -> bool:
            raw = env.get(name, "").strip()
            return parse_bool(name, raw) if raw else default

        base = UpscaleOptions()
        try:
            defaults = UpscaleOptions(
                target_megapixels=number("DEFAULT_TARGET_MEGAPIXELS", base.target_megapixels),
                enhance_details=flag("DEFAULT_ENHANCE_DETAILS", base.enhance_details),
                realism=flag("DEFAULT_REALISM", base.realism),
                output_format=env.get("DEFAULT_OUTPUT_FORMAT", "JPG").strip().upper().replace("JPEG", "JPG"),
                output_quality=number("DEFAULT_OUTPUT_QUALITY", base.output_quality),
            )
        except ValueError as error:
            raise ConfigurationError(f"invalid default upscale option: {error}") from None

        submit_parallelism = number("SUBMIT_PARALLELISM", cls.submit_parallelism)
        if submit_parallelism < 1:
            raise ConfigurationError(f"SUBMIT_PARALLELISM must be at least 1, got {submit_parallelism}")

        return cls(
            jobs_table=required("JOBS_TABLE"),
            output_bucket=required("OUTPUT_BUCKET"),
            runware_api_url=env.get("RUNWARE_API_URL", "").strip() or "https://api.runware.ai/v1",
            runware_api_key_secret=required("RUNWARE_API_KEY_SECRET"),
            webhook_token_secret=required("WEBHOOK_TOKEN_SECRET"),
            inbox_prefix=env.get("INBOX_PREFIX", cls.inbox_prefix),
            inbox_bucket=env.get("INBOX_BUCKET", "").strip(),
            output_prefix=env.get("OUTPUT_PREFIX", cls.output_prefix),
            staging_prefix=env.get("STAGING_PREFIX", "").strip() or cls.staging_prefix,
            webhook_url=env.get("WEBHOOK_URL", "").strip(),
            defaults=defaults,
            max_input_bytes=number("MAX_INPUT_BYTES", cls.max_input_bytes),
            presigned_url_expiry_seconds=number("PRESIGNED_URL_EXPIRY_SECONDS", cls.presigned_url_expiry_seconds),
            runware_result_ttl_seconds=number("RUNWARE_RESULT_TTL_SECONDS", cls.runware_result_ttl_seconds),
            job_retention_days=number("JOB_RETENTION_DAYS", cls.job_retention_days),
            reconcile_after_seconds=number("RECONCILE_AFTER_SECONDS", cls.reconcile_after_seconds),
            job_max_age_seconds=number("JOB_MAX_AGE_SECONDS", cls.job_max_age_seconds),
            reconcile_max_jobs=number("RECONCILE_MAX_JOBS", cls.reconcile_max_jobs),
            runware_max_attempts=number("RUNWARE_MAX_ATTEMPTS", cls.runware_max_attempts),
            runware_requests_per_second=decimal("RUNWARE_REQUESTS_PER_SECOND", cls.runware_requests_per_second),
            runware_concurrent_senders=max(1, number("RUNWARE_CONCURRENT_SENDERS", cls.runware_concurrent_senders)),
            completion_event_bus=env.get("COMPLETION_EVENT_BUS", "").strip(),
            submit_parallelism=submit_parallelism,
        )


def aws_region() -> str:
    """The function's region (Lambda sets AWS_REGION), which is also its buckets' and table's."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@cache
def get_settings() -> Settings:
    """The container's settings, read on first use and kept for warm invocations."""
    return Settings.from_environment()


SECRET_MAX_AGE_SECONDS = 300
# The value template.yaml stores until the user puts their key in (see the README).
RUNWARE_KEY_PLACEHOLDER = "REPLACE_WITH_YOUR_RUNWARE_API_KEY"


def read_secret(secret_id: str) -> str:
    """A secret's string value from Secrets Manager, cached per container for a few minutes."""
    # Imported here so functions that never read a secret do not pay for the import.
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(secret_id, max_age=SECRET_MAX_AGE_SECONDS)
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"secret {secret_id} is empty")
    return value.strip()


def read_runware_api_key(secret_id: str) -> str:
    """The Runware API key; an unset key is a deployment error, so the invocation fails and can be
    re-driven once the key is in, instead of every job failing with Runware's 401."""
    key = read_secret(secret_id)
    if key == RUNWARE_KEY_PLACEHOLDER:
        raise ConfigurationError(f"the Runware API key in secret {secret_id} is still the placeholder")
    return key
