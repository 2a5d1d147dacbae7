"""Time as the job record keeps it: UTC instants written as ISO 8601 text with milliseconds and a Z."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from one recorded instant to another, to the millisecond; None when either is unknown."""
    if not start or not end:
        return None
    return round((parse_iso(end) - parse_iso(start)).total_seconds(), 3)
