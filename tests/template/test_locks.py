"""The lock files agree with the pins they are compiled from, and every locked package carries hashes.

Recompiling needs the package index (`make lock`); these checks are offline, so a pin changed
without `make lock` fails here rather than installing something other than what was reviewed.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCKS = {
    "requirements-bootstrap.txt": "requirements-bootstrap.lock",
    "requirements-dev.txt": "requirements-dev.lock",
    "layers/common/requirements.in": "layers/common/requirements.txt",
}
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;\\]+)")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("-r "):
            found.update(pins(ROOT / line[3:].strip()))
        elif match := PIN.match(line):
            found[_name(match.group(1))] = match.group(2)
    return found


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) from a `uv pip compile --generate-hashes` file."""
    entries: dict[str, tuple[str, int]] = {}
    current = None
    for line in path.read_text().splitlines():
        if match := PIN.match(line):
            current = _name(match.group(1))
            entries[current] = (match.group(2), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = entries[current]
            entries[current] = (version, hashes + 1)
    return entries


@pytest.mark.parametrize("source", LOCKS)
def test_lock_matches_its_pins_and_hashes_everything(source):
    lock = locked(ROOT / LOCKS[source])
    for name, version in pins(ROOT / source).items():
        assert name in lock, f"{name} is pinned in {source} but not in {LOCKS[source]}: run make lock"
        assert lock[name][0] == version, f"{name}: {version} in {source}, {lock[name][0]} in the lock: run make lock"
    unhashed = [name for name, (_, hashes) in lock.items() if hashes == 0]
    assert not unhashed, f"{LOCKS[source]} has packages without hashes: {unhashed}"


def test_the_command_line_tool_pins_what_the_lock_has():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lock = locked(ROOT / "requirements-dev.lock")
    for requirement in dependencies:
        match = PIN.match(requirement)
        assert match, f"{requirement}: pin the version"
        assert lock[_name(match.group(1))][0] == match.group(2), requirement


def test_the_makefile_installs_only_from_the_locks():
    makefile = (ROOT / "Makefile").read_text()
    installs = [line.strip() for line in makefile.splitlines() if re.search(r"pip install", line)]
    assert installs, "the venv step installs something"
    for line in installs:
        assert "--require-hashes" in line or ("--no-deps" in line and "-e ." in line), line
        assert ".txt" not in line, f"installs from an unlocked requirements file: {line}"
