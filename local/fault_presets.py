"""Named Runware faults for the local stack: an outage, a refused key (401), an empty balance (402).

`python -m local up --fault NAME` (`make up FAULT=NAME`) starts the stack with one in force;
`python -m local fault NAME|clear` sets or clears one on the running stack through the emulator's
admin endpoint (PUT /_emulator/faults, see local/runware_emulator/server.py). A preset sets only
its own knobs and `clear` resets only those, so other knobs given to `up` stay as they were.

What each answers, and where it comes from:
- outage: every API request gets HTTP 503 with a plain-text body (Runware documents 5xx as server
  side, and no body for them, so none is invented).
- 401: every API request gets Runware's documented `invalidApiKey` example (errors.account_refusal).
- 402: every API request gets `insufficientCredits` (HTTP 402, as Runware's SDK errors show it).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from local.runware_emulator import FaultConfig

FAULT_PRESETS: dict[str, dict[str, Any]] = {
    "outage": {"rate_5xx": 1.0, "status_5xx": 503},
    "401": {"account_error_status": 401},
    "402": {"account_error_status": 402},
}
# The knobs the presets set, at their defaults: what `clear` puts back.
_PRESET_FIELDS = sorted({name for preset in FAULT_PRESETS.values() for name in preset})
CLEARED: dict[str, Any] = {name: getattr(FaultConfig(), name) for name in _PRESET_FIELDS}


def with_preset(faults: FaultConfig, name: str | None) -> FaultConfig:
    """`faults` with the preset's knobs (and none of another preset's); None or "clear": cleared."""
    if name is not None and name != "clear" and name not in FAULT_PRESETS:
        raise ValueError(f"unknown fault {name!r}: choose {', '.join([*FAULT_PRESETS, 'clear'])}")
    preset = FAULT_PRESETS.get(name or "clear", {})
    return dataclasses.replace(faults, **{**CLEARED, **preset})


def active_preset(faults: FaultConfig) -> str | None:
    """The name of the preset in force, if the knobs match one exactly."""
    for name, preset in FAULT_PRESETS.items():
        if all(getattr(faults, knob) == value for knob, value in {**CLEARED, **preset}.items()):
            return name
    return None


def set_fault(runware_url: str, name: str) -> FaultConfig:
    """Apply a preset (or clear) on the running emulator whose API is at `runware_url`."""
    import httpx

    admin = runware_url.removesuffix("/v1").rstrip("/") + "/_emulator/faults"
    with httpx.Client(trust_env=False, timeout=5) as http:
        current = http.get(admin)
        current.raise_for_status()
        wanted = with_preset(FaultConfig.from_mapping(current.json()), name)
        answer = http.put(admin, json=wanted.to_json())
        answer.raise_for_status()
        return FaultConfig.from_mapping(answer.json())
