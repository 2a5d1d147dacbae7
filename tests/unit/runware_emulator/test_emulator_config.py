"""The admin API, FaultConfig, the command line and the lifecycle."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys

import httpx
import pytest
from emulator_helpers import (
    AUTH,
    REPO_ROOT,
    call,
    upscale_task,
)

from local.runware_emulator import (
    FaultConfig,
    RunwareEmulator,
    build_arg_parser,
    fault_cli_flag,
    fault_env_var,
    parse_command_line,
)

# --------------------------------------------------------------------------------------------
# Admin API, configuration and lifecycle


def test_admin_endpoints_replace_faults_report_stats_and_reset(emulator, client, photo):
    admin = f"{emulator.base_url}/_emulator"
    assert client.put(f"{admin}/faults", json={"burst_429": 1, "latency_seconds": 0}).status_code == 200
    assert client.get(f"{admin}/faults").json()["burst_429"] == 1
    assert call(client, emulator, [upscale_task(photo)]).status_code == 429
    assert call(client, emulator, [upscale_task(photo)]).status_code == 200

    stats = client.get(f"{admin}/stats").json()
    assert stats["requests"] == 2
    assert stats["responses_by_status"] == {"429": 1, "200": 1}
    assert stats["tasks"] == {"processing": 0, "success": 1, "error": 0}

    for bad, named in (
        ({"reject_status": 418}, "reject_status"),
        ({"nope": 1}, "nope"),
        ({"burst_429": True}, "burst_429"),
        ([1], "JSON object"),
    ):
        refused = client.put(f"{admin}/faults", json=bad)
        assert refused.status_code == 400
        assert named in refused.json()["message"], "the admin API is the emulator's own: no Runware error codes"

    assert client.post(f"{admin}/reset").status_code == 200
    assert emulator.tasks == {}
    assert emulator.requests == []
    assert emulator.stats()["requests"] == 0


def test_fault_config_checks_its_values():
    with pytest.raises(ValueError, match="reject_status"):
        FaultConfig(reject_status=418)
    with pytest.raises(ValueError, match="drop_webhook_rate"):
        FaultConfig(drop_webhook_rate=1.5)
    with pytest.raises(ValueError, match="webhook_shape"):
        FaultConfig(webhook_shape="xml")
    assert FaultConfig.from_mapping({"latency_seconds": 1}).latency_seconds == 1.0


def test_command_line_flags_win_over_environment_variables():
    environ = {
        "RUNWARE_EMULATOR_LATENCY_SECONDS": "0.5",
        "RUNWARE_EMULATOR_WEBHOOK_BEFORE_UPLOAD": "true",
        "RUNWARE_EMULATOR_BURST_429": "3",
    }
    command = parse_command_line(
        ["--port", "9999", "--burst-429", "1", "--upload-content-type", "image/jpeg", "--seed", "5"], environ
    )
    assert (command.port, command.seed) == (9999, 5)
    assert command.faults == FaultConfig(
        latency_seconds=0.5, webhook_before_upload=True, burst_429=1, upload_content_type="image/jpeg"
    )


def test_every_fault_knob_has_a_flag_and_an_environment_variable():
    help_text = build_arg_parser().format_help()
    for name in FaultConfig.__dataclass_fields__:
        assert fault_cli_flag(name) in help_text
        assert fault_env_var(name) in help_text


def test_bad_environment_values_are_usage_errors():
    with pytest.raises(SystemExit):
        parse_command_line([], {"RUNWARE_EMULATOR_REJECT_RATE": "often"})
    with pytest.raises(SystemExit):
        parse_command_line(["--host", "0.0.0.0"], {})


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com"])
def test_only_loopback_addresses_can_be_bound(host):
    with pytest.raises(ValueError, match="loopback"):
        RunwareEmulator(host=host)


def test_the_module_runs_as_a_program():
    process = subprocess.Popen(
        [sys.executable, "-m", "local.runware_emulator", "--port", "0", "--burst-429", "1", "--log-level", "WARNING"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=15), "the emulator printed no address"
        line = process.stdout.readline()
        assert "not the AI model" in line
        url = line.split()[-1]
        with httpx.Client(trust_env=False, timeout=5) as http:
            assert http.post(url, json=[], headers=AUTH).status_code == 429
            assert http.post(url, json=[], headers=AUTH).status_code == 400
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0, process.stderr.read()


def test_the_contract_knobs_come_from_flags_or_the_environment():
    environ = {
        "RUNWARE_EMULATOR_ACCOUNT_ERROR_STATUS": "402",
        "RUNWARE_EMULATOR_FORGET_AFTER_SECONDS": "90",
        "RUNWARE_EMULATOR_GETRESPONSE_ERROR_SHAPE": "nested",
    }
    command = parse_command_line(["--getresponse-junk-items", "3", "--account-error-status", "403"], environ)
    assert command.faults == FaultConfig(
        account_error_status=403, forget_after_seconds=90.0, getresponse_error_shape="nested", getresponse_junk_items=3
    )
    assert parse_command_line([], {"RUNWARE_EMULATOR_ACCOUNT_ERROR_STATUS": ""}).faults.account_error_status is None
    with pytest.raises(SystemExit):
        parse_command_line(["--account-error-status", "500"], {})
    with pytest.raises(SystemExit):
        parse_command_line([], {"RUNWARE_EMULATOR_GETRESPONSE_ERROR_SHAPE": "flat"})
