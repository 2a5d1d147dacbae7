"""FaultConfig: the faults and delivery quirks to inject, each also a CLI flag and an env variable.

Shares are drawn from ``random.Random(seed)`` (see ``fault_state``), so a run with the same seed,
knobs and request order makes the same choices; a task keeps the knobs in force when it was accepted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from local.runware_emulator.errors import TASK_FAILURE_CODES

ENV_PREFIX = "RUNWARE_EMULATOR_"
WEBHOOK_SHAPES = ("envelope", "bare")
REJECT_STATUSES = (400, 402)
ACCOUNT_ERROR_STATUSES = (401, 402, 403)
# errors: a top-level errors[] item scoped by taskUUID; nested: a data[] item with status error and an error object.
GETRESPONSE_ERROR_SHAPES = ("errors", "nested")


def _knob(default: Any, help_text: str) -> Any:
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class FaultConfig:
    """Faults and delivery quirks to inject; every field is also a CLI flag and an env variable."""

    latency_seconds: float = _knob(0.0, "processing delay per task, in seconds")
    latency_jitter_seconds: float = _knob(0.0, "extra delay per task, uniform between 0 and this")
    task_failure_rate: float = _knob(0.0, "share (0..1) of async tasks that fail after acceptance")
    task_failure_code: str = _knob(
        "timeoutProvider", f"error code of those failed tasks: {', '.join(TASK_FAILURE_CODES)}"
    )
    reject_rate: float = _knob(0.0, "share (0..1) of upscale requests refused at submission")
    reject_status: int = _knob(400, "HTTP status of refused requests: 400 or 402")
    burst_429: int = _knob(0, "the next N API requests answer HTTP 429")
    retry_after_seconds: int = _knob(1, "Retry-After header value sent with a 429")
    rate_5xx: float = _knob(0.0, "share (0..1) of API requests answered with a 5xx")
    status_5xx: int = _knob(503, "HTTP status of those answers, 500..599")
    drop_webhook_rate: float = _knob(0.0, "share (0..1) of tasks whose webhook is never sent")
    duplicate_webhook_rate: float = _knob(0.0, "share (0..1) of tasks whose webhook is delivered twice")
    webhook_delay_seconds: float = _knob(0.0, "delay before the first webhook attempt")
    webhook_before_upload: bool = _knob(False, "POST the webhook before the PUT to uploadEndpoint")
    webhook_shape: str = _knob("envelope", "webhook body: envelope ({'data': [...]}) or bare (the item)")
    webhook_retry_base_seconds: float = _knob(0.2, "first webhook retry delay, doubled on each retry")
    webhook_max_attempts: int = _knob(6, "webhook attempts before giving up")
    upload_content_type: str | None = _knob(None, "Content-Type header for the upload PUT (default none)")
    image_url_with_upload: bool = _knob(
        True,
        "results of tasks with an uploadEndpoint carry imageURL (whether Runware's do is not documented);"
        " false leaves it out and keeps no copy to serve",
    )
    rate_limit_per_second: float | None = _knob(
        None, "API requests above this rate answer 429 + Retry-After (token bucket, burst = rate, at least 1)"
    )
    account_error_status: int | None = _knob(
        None, "while set (401, 402 or 403), every API request is refused with that account-level error"
    )
    forget_after_seconds: float | None = _knob(
        None, "getResponse no longer knows a task finished longer ago than this (answers not found)"
    )
    getresponse_error_shape: str = _knob(
        "errors", "how getResponse reports a failed or unknown task: errors (top-level) or nested (a data item)"
    )
    getresponse_junk_items: int = _knob(
        0, "append N hostile, non-contract items to every getResponse data[] (a test of the parsers' defences)"
    )

    def __post_init__(self) -> None:
        problems: list[str] = []
        for name in ("task_failure_rate", "reject_rate", "rate_5xx", "drop_webhook_rate", "duplicate_webhook_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be between 0 and 1, got {value!r}")
        for name in (
            "latency_seconds",
            "latency_jitter_seconds",
            "webhook_delay_seconds",
            "webhook_retry_base_seconds",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                problems.append(f"{name} must be a finite number >= 0, got {value!r}")
        rate = self.rate_limit_per_second
        if rate is not None and (not math.isfinite(rate) or rate <= 0):
            problems.append(f"rate_limit_per_second must be a finite number > 0 or unset, got {rate!r}")
        if self.account_error_status is not None and self.account_error_status not in ACCOUNT_ERROR_STATUSES:
            problems.append(f"account_error_status must be 401, 402, 403 or unset, got {self.account_error_status!r}")
        forget = self.forget_after_seconds
        if forget is not None and (not math.isfinite(forget) or forget < 0):
            problems.append(f"forget_after_seconds must be a finite number >= 0 or unset, got {forget!r}")
        if self.getresponse_error_shape not in GETRESPONSE_ERROR_SHAPES:
            shape = self.getresponse_error_shape
            problems.append(f"getresponse_error_shape must be one of {GETRESPONSE_ERROR_SHAPES}, got {shape!r}")
        if self.getresponse_junk_items < 0:
            problems.append(f"getresponse_junk_items must be >= 0, got {self.getresponse_junk_items!r}")
        if self.reject_status not in REJECT_STATUSES:
            problems.append(f"reject_status must be 400 or 402, got {self.reject_status!r}")
        if not 500 <= self.status_5xx <= 599:
            problems.append(f"status_5xx must be within 500..599, got {self.status_5xx!r}")
        if self.burst_429 < 0:
            problems.append(f"burst_429 must be >= 0, got {self.burst_429!r}")
        if self.retry_after_seconds < 0:
            problems.append(f"retry_after_seconds must be >= 0, got {self.retry_after_seconds!r}")
        if self.webhook_max_attempts < 1:
            problems.append(f"webhook_max_attempts must be >= 1, got {self.webhook_max_attempts!r}")
        if self.webhook_shape not in WEBHOOK_SHAPES:
            problems.append(f"webhook_shape must be one of {WEBHOOK_SHAPES}, got {self.webhook_shape!r}")
        if self.task_failure_code not in TASK_FAILURE_CODES:
            problems.append(f"task_failure_code must be one of {TASK_FAILURE_CODES}, got {self.task_failure_code!r}")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> FaultConfig:
        """Builds a config from JSON-like values, strict about names and types."""
        annotations = field_annotations()
        unknown = sorted(set(values) - set(annotations))
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(unknown)}")
        return cls(**{name: _coerce_json_value(name, annotations[name], value) for name, value in values.items()})

    @classmethod
    def from_env(cls, environ: Mapping[str, str], base: FaultConfig | None = None) -> FaultConfig:
        """``base`` (default: all defaults) overlaid with every RUNWARE_EMULATOR_<FIELD> that is set."""
        annotations = field_annotations()
        overrides: dict[str, Any] = {}
        for name, annotation in annotations.items():
            variable = fault_env_var(name)
            if variable in environ:
                try:
                    overrides[name] = parse_text_value(annotation, environ[variable])
                except ValueError as error:
                    raise ValueError(f"{variable}: {error}") from None
        return dataclasses.replace(base or cls(), **overrides)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def fault_env_var(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def fault_cli_flag(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def field_annotations() -> dict[str, str]:
    # The annotations are strings (postponed evaluation); each must be one parse_text_value knows.
    return {item.name: str(item.type) for item in dataclasses.fields(FaultConfig)}


def _parse_bool_text(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def parse_text_value(annotation: str, text: str) -> Any:
    """A flag's or env variable's text as the field's type; for an optional field, empty text is None."""
    base, optional = _base_type(annotation)
    if optional and not text.strip():
        return None
    if base == "float":
        return float(text)
    if base == "int":
        return int(text)
    if base == "bool":
        return _parse_bool_text(text)
    if base == "str":
        return text
    raise ValueError(f"unsupported setting type {annotation}")


def _coerce_json_value(name: str, annotation: str, value: Any) -> Any:
    base, optional = _base_type(annotation)
    if optional and value is None:
        return None
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if base == "float" and is_number:
        return float(value)
    if base == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if base == "bool" and isinstance(value, bool):
        return value
    if base == "str" and isinstance(value, str):
        # An empty string means "not set" for optional text (upload_content_type).
        return value or None if optional else value
    raise ValueError(f"{name} must be of type {annotation}, got {value!r}")


def _base_type(annotation: str) -> tuple[str, bool]:
    base, optional_marker, _ = annotation.partition(" | None")
    return base, bool(optional_marker)
