"""Printing results (upscale_cli/output.py): plain aligned tables off a terminal, JSON for scripts, cells."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from upscale_cli.output import Output, cell, cost, plain_table, size, to_json


def test_plain_tables_align_columns_and_json_keeps_numbers():
    text = plain_table(["status", "jobs"], [["COMPLETED", "12"], ["FAILED", "3"]])
    assert text.splitlines() == ["status     jobs", "---------  ----", "COMPLETED  12", "FAILED     3"]
    assert json.loads(to_json({"cost": Decimal("0.0050"), "n": Decimal(3)})) == {"cost": 0.005, "n": 3}


def test_json_writes_dates_and_sets_and_refuses_what_it_cannot_write():
    moment = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    value = {"at": moment, "day": date(2024, 5, 6), "tags": {"b", "a"}, "key": "ä.jpg"}
    text = to_json(value)
    assert json.loads(text) == {"at": "2024-05-06T07:08:09+00:00", "day": "2024-05-06", "tags": ["a", "b"],
                                "key": "ä.jpg"}  # fmt: skip
    assert "ä.jpg" in text, "not escaped"
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        to_json({"x": object()})


def test_cells_show_empty_as_a_dash_and_numbers_without_noise():
    assert [cell(None), cell(""), cell(True), cell(False)] == ["-", "-", "true", "false"]
    assert [cell(Decimal("1.500")), cell(Decimal("100")), cell(2.50), cell(3.0), cell(0.1234)] == [
        "1.5", "100", "2.5", "3", "0.123"]  # fmt: skip
    assert cell("inbox/a.jpg") == "inbox/a.jpg"
    assert cell(0) == "0"


def test_sizes_and_costs_of_a_job_record():
    job = {"inputWidth": Decimal(640), "inputHeight": Decimal(480), "outputWidth": 1155, "cost": Decimal("0.005")}
    assert size(job, "input") == "640x480"
    assert size(job, "output") == "-", "a side is missing"
    assert cost(job) == "$0.0050"
    assert cost({"cost": 0}) == "$0.0000"
    assert cost({}) == "-"


def test_off_a_terminal_lines_and_tables_are_plain_text():
    stream = io.StringIO()
    out = Output(stream=stream)
    assert not out.fancy, "a StringIO is no terminal"
    out.line("hello")
    out.table(["a", "bb"], [["1", "2"]], title="Numbers")
    out.json_line({"n": Decimal(1)})
    assert stream.getvalue().splitlines() == ["hello", "Numbers", "a  bb", "-  --", "1  2", '{"n": 1}']


def test_with_json_only_json_is_written():
    stream = io.StringIO()
    out = Output(as_json=True, stream=stream)
    out.line("not shown")
    out.table(["a"], [["1"]], title="not shown either")
    out.json({"n": 1})
    assert not out.fancy
    assert json.loads(stream.getvalue()) == {"n": 1}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_tables_are_drawn_by_rich_and_text_is_not_read_as_markup():
    stream = Terminal()
    out = Output(stream=stream)
    assert out.fancy
    out.line("[bold]literal[/bold]")
    out.table(["status", "jobs"], [["COMPLETED", "12"]], title="Jobs by status")
    text = stream.getvalue()
    assert "[bold]literal[/bold]" in text
    assert "Jobs by status" in text and "COMPLETED" in text
    assert "─" in text or "━" in text, "a drawn table"
    assert "---------" not in text, "not the plain table"
