"""The recover function dying half-way through a check, with every webhook lost: before its write
(after getResponse), or after its write (before the check's message is deleted). Each check comes
back (its message was not deleted) and the job ends COMPLETED exactly once."""

from __future__ import annotations

import pytest

from local.runware_emulator import FaultConfig
from local.stack import LocalStack
from tests.reliability.harness import jobs_by_key, run_scenario, scaled
from tests.reliability.test_webhook_faults import photos, recorded_once


@pytest.mark.parametrize("when", ["before its write", "after its write"])
def test_a_recovery_check_dying_half_way_loses_nothing_and_completes_nothing_twice(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    assert stack.emulator is not None
    stack.emulator.faults = FaultConfig(drop_webhook_rate=1.0)
    jobs = stack.functions["RecoverFunction"].module.recoverer.jobs
    move = jobs.move
    crashed: set[str] = set()

    def crash_once(job_id: str, *args, **kwargs):
        if job_id in crashed:
            return move(job_id, *args, **kwargs)
        crashed.add(job_id)
        if when == "after its write":
            move(job_id, *args, **kwargs)
        raise RuntimeError(f"the recover function died {when}")

    monkeypatch.setattr(jobs, "move", crash_once)
    prefix = f"rel-recovery-crash-{when.split()[0]}/"

    row, _ = run_scenario(stack, f"recover function dies {when}", prefix, photos(scaled(8, 30)))

    assert row.completed == row.objects
    for job in jobs_by_key(stack, prefix).values():
        assert job["jobId"] in crashed
        assert job["resultVia"] == "reconcile"
        recorded_once(job)
