"""Markdown pieces of the benchmark report: figures with their spread, byte sizes, tables."""

from __future__ import annotations


def fmt(stat: dict[str, float] | None, digits: int = 1, scale: float = 1.0) -> str:
    """median [min-max] (n)."""
    if not stat:
        return "n/a"
    median, low, high = (stat[key] * scale for key in ("median", "min", "max"))
    if stat["n"] == 1 or low == high:
        return f"{median:,.{digits}f}"
    return f"{median:,.{digits}f} [{low:,.{digits}f}-{high:,.{digits}f}]"


def size(count: float) -> str:
    for unit, factor in (("MB", 1e6), ("KB", 1e3)):
        if count >= factor:
            return f"{count / factor:,.1f} {unit}"
    return f"{count:,.0f} B"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]
