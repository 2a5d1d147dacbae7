"""The Runware contract folder is whole: every file indexed, every entry sourced, every fixture really used."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.contract.runware_contract import (
    BASES,
    CONTRACT_DIR,
    INDEX_PATH,
    KINDS,
    MEANINGS,
    by_name,
    contract_envelope_keys,
    contract_error_codes,
    contract_statuses,
    load_fixtures,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
OFFICIAL_REPOS = ("Runware/sdk-python", "Runware/runware-python", "Runware/runware-typescript")
NAMES_OTHERS_RELY_ON = (
    "rest/async-ack",
    "rest/sync-success",
    "rest/error-envelope",
    "rest/multi-task-data-and-errors",
    "rest/conflict-task-uuid",
    "rest/account-invalid-api-key-401",
    "rest/account-insufficient-credits-402",
    "rest/account-forbidden-403",
    "rest/rate-limited-429",
    "rest/upload-failed",
    "getResponse/processing",
    "getResponse/success",
    "getResponse/error-top-level",
    "getResponse/error-nested-data-item",
    "getResponse/not-found",
    "webhook/envelope-success",
    "webhook/bare-success",
    "webhook/bare-error",
    "webhook/envelope-error",
    "webhook/error-object",
    "webhook/array-of-results",
)


def test_every_file_is_indexed_and_every_entry_has_its_file() -> None:
    on_disk = {str(path.relative_to(CONTRACT_DIR).with_suffix("")) for path in CONTRACT_DIR.rglob("*.json")}
    on_disk.discard("index")
    indexed = [entry["name"] for entry in json.loads(INDEX_PATH.read_text())["fixtures"]]
    assert len(indexed) == len(set(indexed)), "a name appears twice in index.json"
    assert on_disk == set(indexed)


@pytest.mark.parametrize("name", NAMES_OTHERS_RELY_ON)
def test_the_names_other_tests_rely_on_exist(name: str) -> None:
    assert by_name(name).name == name


@pytest.mark.parametrize("fixture", load_fixtures(), ids=lambda fixture: fixture.name)
def test_each_entry_is_well_formed_and_sourced(fixture) -> None:
    assert fixture.kind in KINDS and fixture.name.startswith(f"{fixture.kind}/")
    assert fixture.basis in BASES
    assert fixture.meaning in MEANINGS
    assert fixture.shape and fixture.note and fixture.used_by
    for source in fixture.source.split("; "):
        assert source.startswith("https://runware.ai/") or source.startswith(OFFICIAL_REPOS), source
    if fixture.basis == "sdk":
        assert "Runware/" in fixture.source, "an sdk-based shape names the SDK file it comes from"
    if fixture.kind == "webhook":
        assert fixture.http_status is None
    else:
        assert isinstance(fixture.http_status, int) and 200 <= fixture.http_status < 600
        assert fixture.request, "a REST answer keeps the task array that produced it"


@pytest.mark.parametrize("fixture", load_fixtures(), ids=lambda fixture: fixture.name)
def test_task_uuids_are_lowercase_uuid4(fixture) -> None:
    found = _task_uuids(fixture.body) + _task_uuids(list(fixture.request or ()))
    assert found or fixture.meaning == "account" or fixture.name == "rest/async-ack-empty"
    for value in found:
        assert str(uuid.UUID(value)) == value and uuid.UUID(value).version == 4


@pytest.mark.parametrize("fixture", load_fixtures(), ids=lambda fixture: fixture.name)
def test_each_fixture_is_loaded_by_name_in_a_test_file_its_entry_names(fixture) -> None:
    assert fixture.used_by, "every fixture is exercised by at least one test"
    loaders = []
    for user in fixture.used_by:
        path = REPO_ROOT / user
        assert user.startswith("tests/") and path.is_file(), f"usedBy names {user}, which does not exist"
        text = path.read_text()
        if f'"{fixture.name}"' in text and "by_name(" in text:
            loaders.append(user)
    assert loaders, f"no file in usedBy loads {fixture.name} by name"


def test_the_loader_collects_codes_envelopes_and_statuses() -> None:
    assert {"conflictTaskUUID", "invalidApiKey", "taskFailedOrNotFound", "uploadFailed"} <= contract_error_codes()
    assert "inferenceError" in contract_error_codes(), "nested error.code is collected too"
    assert contract_envelope_keys() == {"data", "errors"}
    assert {"processing", "success", "error"} <= contract_statuses()


def test_the_readme_table_lists_every_fixture() -> None:
    readme = (CONTRACT_DIR / "README.md").read_text()
    for fixture in load_fixtures():
        assert f"| `{fixture.name}` |" in readme


def _task_uuids(value: object) -> list[str]:
    if isinstance(value, dict):
        own = [value["taskUUID"]] if isinstance(value.get("taskUUID"), str) else []
        return own + [found for child in value.values() for found in _task_uuids(child)]
    if isinstance(value, list):
        return [found for child in value for found in _task_uuids(child)]
    return []
