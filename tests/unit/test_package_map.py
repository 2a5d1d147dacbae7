"""The maps of the library stay true: the package docstring and docs/layout.md list every module, and
docs/job-record.md every transition."""

from __future__ import annotations

import re
from pathlib import Path

import upscaler
from upscaler.jobs import TRANSITIONS

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "layers" / "common" / "upscaler"


def modules() -> set[str]:
    return {path.stem for path in LIBRARY.glob("*.py") if path.stem != "__init__"}


def test_the_package_docstring_lists_every_module_once():
    listed = re.findall(r"^- (\w+): ", upscaler.__doc__ or "", flags=re.M)
    assert sorted(listed) == sorted(modules())


def test_the_layout_page_lists_every_module():
    layout = (ROOT / "docs" / "layout.md").read_text()
    listed = set(re.findall(r"^\| `(\w+)` \| ", layout, flags=re.M))
    assert modules() <= listed


def test_the_job_record_page_lists_every_transition():
    job_record = (ROOT / "docs" / "job-record.md").read_text()
    rows = set(re.findall(r"^\| (\w+) \| [^|]+ \| [^|]+ \|$", job_record, flags=re.M))
    assert {transition.name for transition in TRANSITIONS} <= rows
