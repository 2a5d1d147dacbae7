"""Hostile getResponse items for the getresponse_junk_items knob: deliberately outside the contract.

Each item is JSON text, not a Python value: ~2,000 levels of nesting are deeper than the json
module's encoder goes, and NaN/Infinity are written as the bare tokens Python's decoder accepts.
"""

from __future__ import annotations

import json
import uuid

NESTING_DEPTH = 2_000
HUGE_STRING_CHARACTERS = 1_000_000


def _deeply_nested() -> str:
    nested = '{"error":' * NESTING_DEPTH + "{}" + "}" * NESTING_DEPTH
    return f'{{"taskUUID": "{uuid.uuid4()}", "status": "error", "error": {nested}}}'


def _not_finite_numbers() -> str:
    return f'{{"taskUUID": "{uuid.uuid4()}", "status": "success", "cost": NaN, "width": Infinity, "height": -Infinity}}'


def _wrong_types() -> str:
    item = {"taskUUID": 12345, "status": ["success"], "imageUUID": {"id": 1}, "cost": "free", "taskType": None}
    return json.dumps(item)


def _huge_string() -> str:
    return json.dumps({"taskUUID": str(uuid.uuid4()), "status": "success", "imageURL": "x" * HUGE_STRING_CHARACTERS})


def _not_an_object() -> str:
    return '"junk"'


_KINDS = (_deeply_nested, _not_finite_numbers, _wrong_types, _huge_string, _not_an_object)


def hostile_items(count: int) -> list[str]:
    """``count`` items as JSON text, cycling through the kinds above."""
    return [_KINDS[index % len(_KINDS)]() for index in range(count)]
