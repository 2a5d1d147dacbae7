"""Printing results: rich tables on a terminal, plain aligned text otherwise, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO


def to_json(value: Any) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False, indent=2)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class Output:
    """Where a command writes; `fancy` is true only on a terminal and without --json."""

    def __init__(self, *, as_json: bool = False, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.as_json = as_json
        self.fancy = not as_json and self.stream.isatty()
        self._console: Any = None

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False)
        return self._console

    def line(self, text: str = "") -> None:
        if self.as_json:
            return
        if self.fancy:
            self.console.print(text, markup=False)
        else:
            print(text, file=self.stream, flush=True)

    def json(self, value: Any) -> None:
        print(to_json(value), file=self.stream, flush=True)

    def json_line(self, value: Any) -> None:
        print(json.dumps(value, default=_json_default, ensure_ascii=False), file=self.stream, flush=True)

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[str]],
        title: str | None = None,
        *,
        wide: bool = False,
    ) -> None:
        """A table whose cells are never cut. On a terminal a rich table, whose cells wrap rather than
        shorten when it is narrow; `wide` (or no terminal): plain aligned lines as long as they need
        to be, which the terminal may wrap but nothing cuts, so ids and keys can be copied whole."""
        if self.as_json:
            return
        if self.fancy and not wide:
            from rich.table import Table

            table = Table(title=title, title_justify="left")
            for header in headers:
                table.add_column(header, overflow="fold")
            for row in rows:
                table.add_row(*row)
            self.console.print(table)
            return
        if title:
            print(title, file=self.stream)
        print(plain_table(headers, rows), file=self.stream, flush=True)


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(headers[i]), *(len(row[i]) for row in rows)]) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in [list(headers), ["-" * width for width in widths], *rows]]  # fmt: skip
    return "\n".join(lines)


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def size(job: dict[str, Any], prefix: str) -> str:
    width, height = job.get(f"{prefix}Width"), job.get(f"{prefix}Height")
    return f"{int(width)}x{int(height)}" if width and height else "-"


def cost(job: dict[str, Any]) -> str:
    value = job.get("cost")
    return f"${Decimal(str(value)):.4f}" if value is not None else "-"


def plural(count: int, noun: str) -> str:
    """`1 object`, `2 objects`, `0 objects` (the nouns this tool counts take an s)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
