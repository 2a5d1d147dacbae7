"""Reading JSON from Runware (answers, webhook bodies) so that one hostile value cannot hide the rest.

Python's json module raises RecursionError on deeply nested input, which would make a whole answer
unreadable because of one item. Nesting past MAX_DEPTH is cut instead: the too-deep value becomes
null, and the items around it are read as usual.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


def loads(data: bytes | str) -> Any:
    """json.loads, except that values nested deeper than MAX_DEPTH read as null."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    try:
        return json.loads(text)
    except RecursionError:
        return json.loads(_cut_deep_values(text, MAX_DEPTH))


def _cut_deep_values(text: str, max_depth: int) -> str:
    """The same JSON text with every container that opens at depth max_depth replaced by null."""
    out: list[str] = []
    depth = 0
    start_of_cut = -1
    in_string = escaped = False
    copied_until = 0
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth == max_depth and start_of_cut < 0:
                start_of_cut = index
        elif char in "]}":
            if depth == max_depth and start_of_cut >= 0:
                out.append(text[copied_until:start_of_cut])
                out.append("null")
                copied_until = index + 1
                start_of_cut = -1
            depth -= 1
    out.append(text[copied_until:])
    return "".join(out)
