"""The maps of the library stay true: the package docstring and the README list every module."""

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


def test_the_readme_lists_every_module_and_every_transition():
    readme = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"^\| `(\w+)` \| ", readme, flags=re.M))
    assert modules() <= listed
    rows = set(re.findall(r"^\| (\w+) \| [^|]+ \| [^|]+ \|$", readme, flags=re.M))
    assert {transition.name for transition in TRANSITIONS} <= rows
