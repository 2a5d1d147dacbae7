"""Instants as the job record writes them."""

from __future__ import annotations

from datetime import UTC, datetime

from upscaler.clock import iso, parse_iso, seconds_between, utc_now


def test_iso_round_trip_and_durations():
    moment = datetime(2026, 5, 14, 9, 30, 1, 250000, tzinfo=UTC)
    text = iso(moment)
    assert text == "2026-05-14T09:30:01.250Z"
    assert parse_iso(text) == moment
    assert iso(moment.astimezone(tz=None)) == text
    assert seconds_between("2026-05-14T09:30:00.000Z", "2026-05-14T09:31:01.500Z") == 61.5
    assert seconds_between(None, text) is None
    assert seconds_between(text, "") is None


def test_now_is_aware_utc():
    assert utc_now().utcoffset().total_seconds() == 0
