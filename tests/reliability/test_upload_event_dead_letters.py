"""Upload events of an existing bucket that EventBridge cannot deliver wait in the dead-letter
queue (the rule target's DeadLetterConfig, as template.yaml declares it) and are re-driven the same
way as failed submissions, then upscaled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.reliability.harness import assert_invariant, scaled
from tests.stack_waits import BOUND_SECONDS


def test_undelivered_upload_events_are_dead_lettered_and_redriven() -> None:
    """In a stack of its own (started with ExistingBucketName), run in a child process: one moto
    server and environment per process."""
    from tests.reliability import existing_bucket_dead_letters as scenario
    from tests.reliability.harness import ROWS, Row

    root = Path(__file__).resolve().parents[2]
    completed = subprocess.run(
        [sys.executable, "-m", "tests.reliability.existing_bucket_dead_letters"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "layers" / "common"), str(root)])},
        capture_output=True,
        text=True,
        timeout=BOUND_SECONDS + scaled(240, 600),
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith(scenario.RESULT_PREFIX)]
    assert completed.returncode == 0 and lines, completed.stderr[-4000:]
    result = json.loads(lines[-1][len(scenario.RESULT_PREFIX) :])
    row = Row(**result["row"])
    ROWS.append(row)

    assert result["target_dead_letter_arn"] == result["dlq_arn"], "the rule's target dead-letters to the DLQ"
    assert len(result["letters"]) == 2 and result["jobs_before_redrive"] == 0
    for letter in result["letters"]:
        assert letter["body"]["detail-type"] == "Object Created", "the event itself, to re-drive"
        assert letter["attributes"]["ERROR_CODE"] == "NO_RESOURCE"
        assert ":rule/" in letter["attributes"]["RULE_ARN"] and letter["attributes"]["TARGET_ARN"].endswith(
            ":a-queue-that-is-not-there"
        )
    assert result["task"]["status"] == "COMPLETED"
    assert_invariant(row)
    assert (row.completed, row.in_dlq, result["dead_letters_after"]) == (2, 0, 0)
    assert result["statuses"] == ["COMPLETED", "COMPLETED"]
