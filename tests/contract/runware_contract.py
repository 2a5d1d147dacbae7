"""Loader for the Runware contract in tests/contract/runware/: each fixture with its source and meaning."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

CONTRACT_DIR = Path(__file__).parent / "runware"
INDEX_PATH = CONTRACT_DIR / "index.json"

Kind = Literal["rest", "getResponse", "getTaskDetails", "webhook"]
Basis = Literal["documented", "sdk", "assumption"]
KINDS: tuple[str, ...] = ("rest", "getResponse", "getTaskDetails", "webhook")
BASES: tuple[str, ...] = ("documented", "sdk", "assumption")
MEANINGS: tuple[str, ...] = (
    "accepted",
    "result",
    "processing",
    "task-failed",
    "account",
    "conflict",
    "not-found",
    "rate-limited",
    "retryable",
)


@dataclass(frozen=True)
class Fixture:
    """One response shape: the index entry and the file it names."""

    name: str
    kind: str
    shape: str
    source: str
    basis: str
    meaning: str
    note: str
    used_by: tuple[str, ...]
    http_status: int | None
    body: Any
    request: tuple[dict[str, Any], ...] | None

    @property
    def path(self) -> Path:
        return CONTRACT_DIR / f"{self.name}.json"

    def body_bytes(self) -> bytes:
        """The body as it goes over the wire; a null body is an empty one."""
        return b"" if self.body is None else json.dumps(self.body).encode()


@cache
def load_fixtures() -> tuple[Fixture, ...]:
    """Every fixture of the index, in index order."""
    index = json.loads(INDEX_PATH.read_text())
    fixtures = []
    for entry in index["fixtures"]:
        name = entry["name"]
        content = json.loads((CONTRACT_DIR / f"{name}.json").read_text())
        request = content.get("request")
        fixtures.append(
            Fixture(
                name=name,
                kind=entry["kind"],
                shape=entry["shape"],
                source=entry["source"],
                basis=entry["basis"],
                meaning=entry["meaning"],
                note=entry["note"],
                used_by=tuple(entry["usedBy"]),
                http_status=content["httpStatus"],
                body=content["body"],
                request=tuple(request) if request is not None else None,
            )
        )
    return tuple(fixtures)


def by_name(name: str) -> Fixture:
    """The fixture called `name` (its path without .json, e.g. "rest/conflict-task-uuid")."""
    for fixture in load_fixtures():
        if fixture.name == name:
            return fixture
    raise KeyError(f"no Runware contract fixture named {name!r}")


def of_kind(kind: str) -> tuple[Fixture, ...]:
    return tuple(fixture for fixture in load_fixtures() if fixture.kind == kind)


def contract_error_codes() -> frozenset[str]:
    """Every `code` anywhere in any fixture body, nested `error.code` included."""
    return frozenset(code for fixture in load_fixtures() for code in _codes(fixture.body))


def contract_envelope_keys() -> frozenset[str]:
    """Top-level keys of every envelope (object body holding `data` or `errors`) in the contract."""
    keys: set[str] = set()
    for fixture in load_fixtures():
        if fixture.kind != "webhook" and isinstance(fixture.body, dict):
            keys.update(fixture.body)
    return frozenset(keys)


def contract_statuses() -> frozenset[str]:
    """The `status` values getResponse items carry in the contract."""
    return frozenset(
        item["status"]
        for fixture in of_kind("getResponse")
        for item in (fixture.body or {}).get("data", [])
        if isinstance(item, dict) and "status" in item
    )


def _codes(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        code = value.get("code")
        if isinstance(code, str):
            yield code
        for child in value.values():
            yield from _codes(child)
    elif isinstance(value, list):
        for child in value:
            yield from _codes(child)
