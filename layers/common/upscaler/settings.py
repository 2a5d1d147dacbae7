"""Configuration read once per container from the environment the template sets."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, ClassVar, Final

from upscaler.models import InvalidOption, UpscaleOptions, parse_bool
from upscaler.presets import NO_PRESETS, Presets, PresetsError, parse_presets

# A container keeps its share of a configured Runware rate with a tenth to spare.
RATE_HEADROOM = 1.1


class ConfigurationError(RuntimeError):
    """A required setting is missing or malformed: a deployment problem, not a job problem."""


@dataclass(frozen=True)
class Settings:
    # Read when present but not set by template.yaml: tuning for tests and special deployments.
    OPTIONAL_VARIABLES: ClassVar[frozenset[str]] = frozenset(
        {
            "RUNWARE_MAX_ATTEMPTS",
            "INTAKE_PAUSE_FIRST_WAIT_SECONDS",
            "INTAKE_PAUSE_LONGEST_WAIT_SECONDS",
            "SECRET_CACHE_SECONDS",
            "RECOVERY_PARALLELISM",
        }
    )

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
    # Options by the folder an object is dropped in (upscaler.presets), between defaults and metadata.
    presets: Presets = NO_PRESETS
    max_input_bytes: int = 50 * 1024 * 1024
    # At most what one signing session covers (storage.MAX_SIGNED_URL_SECONDS): longer is cut to it.
    presigned_url_expiry_seconds: int = 2700
    # How long Runware keeps its own copy of a result: the window in which a result whose upload
    # failed is copied from imageURL (webhook at once; reconcile after RECONCILE_AFTER_SECONDS plus
    # one schedule period, 15 minutes with the defaults, four times over).
    runware_result_ttl_seconds: int = 3600
    # The role whose sessions sign presigned URLs; empty: the function's own credentials sign them.
    url_signing_role_arn: str = ""
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
    # The table of pointers to completed jobs' outputs (upscaler.prior_outputs); empty: none kept.
    prior_outputs_table: str = ""
    # Most sources of one submit invocation whose S3 and DynamoDB steps run at once.
    submit_parallelism: int = 10
    # Intake that waits (upscaler.intake_pause): where messages are handed back or dead-lettered, the
    # mapping the resumer switches on again, and the back-off between attempts.
    ingest_queue_url: str = ""
    dead_letter_queue_url: str = ""
    submit_function_name: str = ""
    ingest_queue_arn: str = ""
    intake_pause_first_wait_seconds: int = 60
    intake_pause_longest_wait_seconds: int = 1800
    # How long a container keeps a secret it read (a new Runware key is used within this time).
    secret_cache_seconds: int = 300
    # The queue of per-job recovery checks (upscaler.recovery_checks); empty: none are sent.
    recovery_queue_url: str = ""
    # Most jobs of one recovery batch settled at once.
    recovery_parallelism: int = 10
    # The status index of earlier versions, while a deployment migrates from it; empty: gone.
    legacy_status_index: str = ""
    # The daily spend limit (upscaler.spend_limit): images, and US dollars, per UTC day; 0: no limit.
    spend_limit_images_per_day: int = 0
    spend_limit_usd_per_day: Decimal = Decimal(0)

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

    def options_for(self, key: str, metadata: Mapping[str, str]) -> tuple[UpscaleOptions, str | None]:
        """An inbox object's options (defaults, its folder's preset, its metadata) and its preset's name."""
        return self.presets.options_for(key, self.inbox_prefix, self.defaults, metadata)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from the environment as VARIABLES says, with every problem found in one error."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        options: dict[str, Any] = {}
        problems: list[str] = []
        for variable in VARIABLES:
            raw = env.get(variable.name)
            if raw is None or (not variable.keep_blank and not raw.strip()):
                if variable.default is REQUIRED:
                    problems.append(f"{variable.name} is not set")
                elif variable.field.startswith(OPTION):
                    options[variable.field.removeprefix(OPTION)] = variable.default
                else:
                    values[variable.field] = variable.default
                continue
            try:
                value = variable.parse(raw)
                if variable.field.startswith(OPTION):
                    option = variable.field.removeprefix(OPTION)
                    options[option] = _checked_option(option, value)
                else:
                    values[variable.field] = value
            except ValueError as error:
                problems.append(f"{variable.name}={raw!r}: {error}")
        if not problems:
            problems.extend(f"{PRESETS_VARIABLE}: {why}" for why in values["presets"].misplaced(values["inbox_prefix"]))
        if len(problems) == 1:
            raise ConfigurationError(f"environment variable {problems[0]}")
        if problems:
            raise ConfigurationError(
                f"{len(problems)} environment variables are unset or invalid: {'; '.join(problems)}"
            )
        return cls(defaults=UpscaleOptions(**options), **values)


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


# The default of a variable that must be set, and not blank.
REQUIRED: Final = _Required()
# How a row names a field of Settings.defaults, the default upscale options.
OPTION = "defaults."


@dataclass(frozen=True)
class Variable:
    """One environment variable: the field it sets, how its text is read, and its default when unset."""

    name: str
    field: str  # a field of Settings, or OPTION + a field of UpscaleOptions
    parse: Callable[[str], Any]  # raises ValueError saying what it expected
    default: Any  # when unset or blank; REQUIRED: it must be set
    description: str = ""
    keep_blank: bool = False  # a blank value is a value, given to parse, not the default


def _text(raw: str) -> str:
    return raw.strip()


def _verbatim(raw: str) -> str:
    return raw


def _integer(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError("expected an integer") from None


def _integer_of_at_least(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = _integer(raw)
        if value < minimum:
            raise ValueError(f"expected an integer of at least {minimum}")
        return value

    return parse


_positive = _integer_of_at_least(1)
_whole = _integer_of_at_least(0)


def _at_least_one(raw: str) -> int:
    return max(1, _integer(raw))


def _rate(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError("expected a finite number >= 0")
    return value


def _flag(raw: str) -> bool:
    try:
        return parse_bool("flag", raw)
    except ValueError:
        raise ValueError("expected true or false (or yes/no, on/off, 1/0)") from None


def _usd(raw: str) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ValueError("expected an amount in US dollars, such as 25 or 2.50") from None
    if not value.is_finite() or value < 0:
        raise ValueError("expected an amount in US dollars of at least 0")
    return value


def _format(raw: str) -> str:
    return raw.strip().upper().replace("JPEG", "JPG")


def _presets(raw: str) -> Presets:
    try:
        return parse_presets(raw)
    except PresetsError as error:
        raise ValueError(str(error)) from None


def _checked_option(option: str, value: Any) -> Any:
    """The value, if UpscaleOptions accepts it for that option (the ranges are the model's)."""
    try:
        UpscaleOptions(**{option: value})
    except InvalidOption as error:
        reason = str(error).removeprefix(f"{error.name}: ")
        raise ValueError(f"invalid default upscale option: {error.name} {reason}") from None
    return value


# The presets document (the template's UploadPresets parameter): read after the inbox prefix it is below.
PRESETS_VARIABLE = "UPSCALE_PRESETS"

# Every environment variable the library reads. The defaults are those of Settings and UpscaleOptions.
VARIABLES: tuple[Variable, ...] = (
    Variable("JOBS_TABLE", "jobs_table", _text, REQUIRED),
    Variable("OUTPUT_BUCKET", "output_bucket", _text, REQUIRED),
    Variable("RUNWARE_API_URL", "runware_api_url", _text, "https://api.runware.ai/v1"),
    Variable("RUNWARE_API_KEY_SECRET", "runware_api_key_secret", _text, REQUIRED, "the secret's name or ARN"),
    Variable("WEBHOOK_TOKEN_SECRET", "webhook_token_secret", _text, REQUIRED, "the secret's name or ARN"),
    Variable("INBOX_PREFIX", "inbox_prefix", _verbatim, "inbox/", "empty: every key", keep_blank=True),
    Variable("INBOX_BUCKET", "inbox_bucket", _text, "", "the one bucket sources come from; empty: any"),
    Variable("OUTPUT_PREFIX", "output_prefix", _verbatim, "upscaled/", keep_blank=True),
    Variable("STAGING_PREFIX", "staging_prefix", _text, "staging/", "where Runware's PUT lands"),
    Variable("WEBHOOK_URL", "webhook_url", _text, "", "the submit function refuses to start without it"),
    Variable("DEFAULT_TARGET_MEGAPIXELS", "defaults.target_megapixels", _integer, 4),
    Variable("DEFAULT_ENHANCE_DETAILS", "defaults.enhance_details", _flag, False),
    Variable("DEFAULT_REALISM", "defaults.realism", _flag, False),
    Variable("DEFAULT_OUTPUT_FORMAT", "defaults.output_format", _format, "JPG", "blank: refused", keep_blank=True),
    Variable("DEFAULT_OUTPUT_QUALITY", "defaults.output_quality", _integer, 95),
    Variable(PRESETS_VARIABLE, "presets", _presets, NO_PRESETS, "JSON: prefix -> options (upscaler.presets)"),
    Variable("MAX_INPUT_BYTES", "max_input_bytes", _integer, 50 * 1024 * 1024, "larger sources are refused"),
    Variable("PRESIGNED_URL_EXPIRY_SECONDS", "presigned_url_expiry_seconds", _integer, 2700),
    Variable("RUNWARE_RESULT_TTL_SECONDS", "runware_result_ttl_seconds", _integer, 3600),
    Variable("URL_SIGNING_ROLE_ARN", "url_signing_role_arn", _text, "", "empty: the function's credentials sign"),
    Variable("JOB_RETENTION_DAYS", "job_retention_days", _integer, 90),
    Variable("RECONCILE_AFTER_SECONDS", "reconcile_after_seconds", _integer, 600, "then Runware is asked"),
    Variable("JOB_MAX_AGE_SECONDS", "job_max_age_seconds", _integer, 4 * 3600, "then a job without a result fails"),
    Variable("RECONCILE_MAX_JOBS", "reconcile_max_jobs", _integer, 200, "most jobs one reconcile run looks at"),
    Variable("RUNWARE_MAX_ATTEMPTS", "runware_max_attempts", _integer, 5, "tries of one Runware request"),
    Variable("RUNWARE_REQUESTS_PER_SECOND", "runware_requests_per_second", _rate, 0.0, "0: learnt from 429s"),
    Variable("RUNWARE_CONCURRENT_SENDERS", "runware_concurrent_senders", _at_least_one, 1, "below 1 counts as 1"),
    Variable("COMPLETION_EVENT_BUS", "completion_event_bus", _text, "", "empty: no completion events"),
    Variable("PRIOR_OUTPUTS_TABLE", "prior_outputs_table", _text, "", "empty: only a job's own output is reused"),
    Variable("SUBMIT_PARALLELISM", "submit_parallelism", _positive, 10, "sources one submit works on at once"),
    Variable("INGEST_QUEUE_URL", "ingest_queue_url", _text, "", "where submit hands messages back while intake waits"),
    Variable("DEAD_LETTER_QUEUE_URL", "dead_letter_queue_url", _text, "", "where unreadable messages go"),
    Variable("SUBMIT_FUNCTION_NAME", "submit_function_name", _text, "", "whose mapping the resumer enables"),
    Variable("INGEST_QUEUE_ARN", "ingest_queue_arn", _text, "", "the source of that mapping"),
    Variable("INTAKE_PAUSE_FIRST_WAIT_SECONDS", "intake_pause_first_wait_seconds", _positive, 60, "then doubling"),
    Variable("INTAKE_PAUSE_LONGEST_WAIT_SECONDS", "intake_pause_longest_wait_seconds", _positive, 1800),
    Variable("SECRET_CACHE_SECONDS", "secret_cache_seconds", _integer, 300, "how long a container keeps a secret"),
    Variable("RECOVERY_QUEUE_URL", "recovery_queue_url", _text, "", "per-job checks; empty: none are sent"),
    Variable("RECOVERY_PARALLELISM", "recovery_parallelism", _positive, 10, "jobs one recovery batch settles at once"),
    Variable("LEGACY_STATUS_INDEX", "legacy_status_index", _text, "", "read while migrating; empty: gone"),
    Variable("SPEND_LIMIT_IMAGES_PER_DAY", "spend_limit_images_per_day", _whole, 0, "0: no image limit"),
    Variable("SPEND_LIMIT_USD_PER_DAY", "spend_limit_usd_per_day", _usd, Decimal(0), "0: no dollar limit"),
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


def read_secret(secret_id: str, max_age: int = SECRET_MAX_AGE_SECONDS) -> str:
    """A secret's string value from Secrets Manager, cached per container for `max_age` seconds."""
    # Imported here so functions that never read a secret do not pay for the import.
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(secret_id, max_age=max_age)
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"secret {secret_id} is empty")
    return value.strip()


def read_runware_api_key(secret_id: str, max_age: int = SECRET_MAX_AGE_SECONDS) -> str:
    """The Runware API key; an unset key is a deployment error, so the invocation fails and can be
    re-driven once the key is in, instead of every job failing with Runware's 401."""
    key = read_secret(secret_id, max_age)
    if key == RUNWARE_KEY_PLACEHOLDER:
        raise ConfigurationError(f"the Runware API key in secret {secret_id} is still the placeholder")
    return key
