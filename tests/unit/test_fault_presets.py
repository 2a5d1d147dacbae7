"""Named Runware faults (local/fault_presets.py), set and cleared on a running emulator over its admin endpoint."""

from __future__ import annotations

import httpx
import pytest

from local.fault_presets import FAULT_PRESETS, active_preset, set_fault, with_preset
from local.runware_emulator import FaultConfig, RunwareEmulator

TASK = [{"taskType": "upscale", "taskUUID": "3f1c6a2e-8b4d-4c1e-9a7f-2d5b6c8e9f01"}]


def test_a_preset_sets_only_its_knobs_and_clear_only_resets_those():
    base = FaultConfig(latency_seconds=1.5)
    outage = with_preset(base, "outage")
    assert (outage.rate_5xx, outage.status_5xx, outage.latency_seconds) == (1.0, 503, 1.5)
    refused = with_preset(outage, "402")
    assert (refused.account_error_status, refused.rate_5xx) == (402, 0.0), "one preset at a time"
    assert with_preset(refused, "clear") == base
    assert [active_preset(with_preset(base, name)) for name in FAULT_PRESETS] == list(FAULT_PRESETS)
    with pytest.raises(ValueError, match="unknown fault"):
        with_preset(base, "500")


@pytest.mark.parametrize(("name", "status", "code"), [("outage", 503, None), ("401", 401, "invalidApiKey"),
                                                      ("402", 402, "insufficientCredits")])  # fmt: skip
def test_each_fault_is_what_the_running_emulator_answers_until_cleared(name, status, code):
    with RunwareEmulator(api_key="k") as emulator, httpx.Client(trust_env=False, timeout=10) as http:
        set_fault(emulator.url, name)
        answer = http.post(emulator.url, json=TASK, headers={"Authorization": "Bearer k"})
        assert answer.status_code == status
        if code is not None:
            assert [error["code"] for error in answer.json()["errors"]] == [code]
        assert active_preset(set_fault(emulator.url, "clear")) is None
        after = http.post(emulator.url, json=TASK, headers={"Authorization": "Bearer k"})
        assert after.status_code == 400, "cleared: the (incomplete) task itself is checked again"
