"""s3-upscale, the installed console script, run as a user runs it against the local stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.runware_emulator import FaultConfig
from local.stack import LOCAL_RUNWARE_KEY, LOCAL_SECRET_CACHE_SECONDS, LocalStack
from tests.integration.conftest import drop, image_bytes, wait_for_jobs
from tests.stack_waits import job_states, wait_on_stack
from upscaler.job_record import OPEN_STATUSES, TERMINAL_STATUSES, job_id_for

CLI = Path(sys.executable).with_name("s3-upscale")


@pytest.fixture
def state_file(stack: LocalStack, tmp_path: Path) -> Path:
    """The state file `python -m local up` writes, here for the session's stack."""
    path = tmp_path / "state.json"
    state = {"pid": os.getpid(), "aws_endpoint": stack.aws_endpoint, "environment": stack.environment, **stack.names}
    path.write_text(json.dumps(state))
    return path


def cli(state: Path, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "S3_UPSCALE_LOCAL_STATE": str(state)}
    return subprocess.run(
        [str(CLI), "--local", *args], env=environment, input=stdin, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def test_the_console_script_is_installed() -> None:
    assert CLI.exists(), "pip install -e . (the Makefile's venv step) puts s3-upscale next to python"


def test_status_counts_the_open_jobs_and_lists_the_newest_of_them(stack: LocalStack, state_file: Path) -> None:
    keys = [
        drop(stack, "cli-status/a.jpg", image_bytes(300, 200)),
        drop(stack, "cli-status/b.png", image_bytes(200, 200, "PNG")),
        drop(stack, "cli-status/notes.jpg", b"not an image at all"),
    ]
    wait_for_jobs(stack, keys)

    result = cli(state_file, "--json", "status", "--limit", "500")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # Open jobs only (the open-jobs index); an ended job is read by its key (`s3-upscale job`).
    expected: dict[str, int] = {}
    for job in stack.jobs():
        if job["status"] in OPEN_STATUSES:
            expected[job["status"]] = expected.get(job["status"], 0) + 1
    assert {status: n for status, n in report["counts"].items() if n} == expected
    assert report["total"] == sum(expected.values())
    assert {job["status"] for job in report["newest"]} <= set(OPEN_STATUSES)
    created = [job["createdAt"] for job in report["newest"]]
    assert created == sorted(created, reverse=True)

    submitted = cli(state_file, "--json", "status", "--status", "SUBMITTED", "--limit", "500")
    assert submitted.returncode == 0, submitted.stderr
    assert {job["status"] for job in json.loads(submitted.stdout)["newest"]} <= {"SUBMITTED"}
    ended = cli(state_file, "status", "--status", "REJECTED")
    assert ended.returncode == 2 and "Traceback" not in ended.stderr, "only open statuses are listed"


def test_job_by_id_by_key_and_every_version_of_a_key(stack: LocalStack, state_file: Path) -> None:
    key = drop(stack, "cli-job/photo one.jpg", image_bytes(320, 240))
    first = wait_for_jobs(stack, [key])[key]
    time.sleep(0.01)
    drop(stack, "cli-job/photo one.jpg", image_bytes(330, 240))
    wait_on_stack(
        stack,
        lambda: len([j for j in stack.jobs() if j["sourceKey"] == key and j["status"] == "COMPLETED"]) >= 2,
        "second upload did not complete",
        progress=lambda: job_states([j for j in stack.jobs() if j["sourceKey"] == key]),
    )

    by_id = json.loads(cli(state_file, "--json", "job", first["jobId"]).stdout)
    assert by_id == json.loads(json.dumps(stack_job(stack, first["jobId"]), default=float))

    for reference in ("cli-job/photo one.jpg", key, f"s3://{stack.names['inbox_bucket']}/{key}"):
        every = json.loads(cli(state_file, "--json", "job", "--all", reference).stdout)
        assert len(every) == 2 and {job["sourceKey"] for job in every} == {key}
        assert every[0]["createdAt"] > every[1]["createdAt"]
        assert every[1]["jobId"] == first["jobId"]
        assert {job["inputWidth"] for job in every} == {320, 330}

    readable = cli(state_file, "job", first["jobId"])
    assert readable.returncode == 0
    for line in ("source.sourceKey", "request.outputKey", "outcome.status", "timing.totalSeconds"):
        assert line in readable.stdout
    assert cli(state_file, "job", "cli-job/never-uploaded.jpg").returncode == 1
    elsewhere = cli(state_file, "job", "s3://wrong-bucket/cli-job/photo one.jpg")
    assert elsewhere.returncode == 2 and elsewhere.stdout == ""
    assert elsewhere.stderr == (
        f"s3-upscale: s3://wrong-bucket/cli-job/photo one.jpg is not in the inbox bucket "
        f"s3://{stack.names['inbox_bucket']}/ of local stack at {stack.aws_endpoint}\n"
    )


def stack_job(stack: LocalStack, job_id: str) -> dict[str, Any]:
    return next(job for job in stack.jobs() if job["jobId"] == job_id)


def test_watch_reports_each_change_until_nothing_is_in_flight(stack: LocalStack, state_file: Path) -> None:
    assert stack.emulator is not None
    # The jobs are held in SUBMITTED long enough for the watch (a new process) to see them there,
    # however long its start takes on a busy machine.
    stack.emulator.faults = FaultConfig(latency_seconds=15.0)
    keys = [drop(stack, f"cli-watch/{n}.jpg", image_bytes(300, 200)) for n in range(2)]
    wait_on_stack(
        stack,
        lambda: {j["sourceKey"] for j in stack.jobs() if j["status"] == "SUBMITTED"} >= set(keys),
        "jobs never reached SUBMITTED",
        progress=lambda: job_states([j for j in stack.jobs() if j["sourceKey"] in keys]),
        poll_seconds=0.1,
    )

    result = cli(state_file, "--json", "watch", "--until-idle", "--since", "2", "--interval", "0.3",
                 "--timeout", "60")  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    for key in keys:
        statuses = [event["status"] for event in events if event.get("sourceKey") == key]
        assert statuses == ["SUBMITTED", "COMPLETED"], (key, statuses)
    assert events[-1]["event"] == "summary"


def test_smoke_passes_against_the_running_stack(stack: LocalStack, state_file: Path) -> None:
    result = cli(state_file, "--json", "smoke", "--timeout", "60")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and report["status"] == "COMPLETED"
    assert report["output"]["format"] == "JPEG" and report["output"]["contentType"] == "image/jpeg"
    assert abs(report["output"]["width"] * report["output"]["height"] - 1_000_000) <= 50_000
    assert report["timings"]["upload to result (job record)"] is not None


def test_smoke_exits_non_zero_when_the_job_fails(stack: LocalStack, state_file: Path) -> None:
    assert stack.emulator is not None
    stack.emulator.faults = FaultConfig(task_failure_rate=1.0)
    result = cli(state_file, "smoke", "--format", "PNG", "--timeout", "60")
    assert result.returncode == 1, result.stdout
    assert "FAILED: job ended FAILED" in result.stdout


def test_set_key_stores_the_key_from_stdin_without_echoing_it(stack: LocalStack, state_file: Path) -> None:
    secrets = stack.client("secretsmanager")
    secret = stack.environment["RUNWARE_API_KEY_SECRET"]
    try:
        result = cli(state_file, "set-key", stdin="rw-test-key-0123456789\n")
        assert result.returncode == 0, result.stderr
        assert "rw-test-key" not in result.stdout + result.stderr
        assert secrets.get_secret_value(SecretId=secret)["SecretString"] == "rw-test-key-0123456789"
        assert cli(state_file, "set-key", stdin="\n").returncode == 2
        assert secrets.get_secret_value(SecretId=secret)["SecretString"] == "rw-test-key-0123456789"
    finally:
        restore_the_stacks_key(stack)


def restore_the_stacks_key(stack: LocalStack) -> None:
    """The key the stack's emulator accepts, back in its secret, and no function still holding another
    (they share this process: clearing their cache stands for its few seconds passing)."""
    from aws_lambda_powertools.utilities import parameters

    secret = stack.environment["RUNWARE_API_KEY_SECRET"]
    stack.client("secretsmanager").put_secret_value(SecretId=secret, SecretString=LOCAL_RUNWARE_KEY)
    parameters.clear_caches()


def test_a_wrong_key_stored_with_set_key_is_refused_by_runware_with_401_invalid_api_key(
    stack: LocalStack, state_file: Path
) -> None:
    assert stack.emulator is not None
    refused_before = stack.emulator.counters.snapshot()["responses_by_status"].get("401", 0)
    try:
        assert cli(state_file, "set-key", stdin="not-the-local-key\n").returncode == 0
        time.sleep(float(LOCAL_SECRET_CACHE_SECONDS) + 0.5)  # the functions' cache of the old key runs out
        key = drop(stack, "cli-wrong-key/photo.jpg", image_bytes(260, 200))
        job_id = job_id_for(stack.names["inbox_bucket"], key, _version_of(stack, key))

        def refused() -> bool:
            sent = any(
                isinstance(request, list) and any(task.get("taskUUID") == job_id for task in request)
                for request in stack.emulator.requests
            )
            refusals = stack.emulator.counters.snapshot()["responses_by_status"].get("401", 0)
            return sent and refusals > refused_before

        wait_on_stack(stack, refused, "the submit function's request was never refused with 401", poll_seconds=0.3)
        job = next((job for job in stack.jobs() if job["jobId"] == job_id), None)
        assert job is None or job["status"] not in TERMINAL_STATUSES, "an account refusal never ends a job"
    finally:
        restore_the_stacks_key(stack)
    # The same upload completes once the right key is back (from the dead-letter queue if it went there).
    wait_on_stack(
        stack,
        lambda: (
            stack.dead_letter_count() > 0
            or any(j["jobId"] == job_id for j in stack.jobs() if j["status"] == "COMPLETED")
        ),
        "the upload neither completed nor reached the dead-letter queue",
        poll_seconds=0.5,
    )
    if stack.dead_letter_count():
        stack.redrive()
    assert wait_for_jobs(stack, [key])[key]["status"] == "COMPLETED"
    wait_on_stack(stack, lambda: stack.dead_letter_count() == 0, "dead letters left behind", poll_seconds=0.5)


def _version_of(stack: LocalStack, key: str) -> str:
    return str(stack.client("s3").head_object(Bucket=stack.names["inbox_bucket"], Key=key)["VersionId"])


def test_a_deployed_stack_is_found_by_its_cloudformation_outputs(stack: LocalStack, tmp_path: Path) -> None:
    outputs = {
        "InboxBucketName": stack.names["inbox_bucket"],
        "InboxPrefix": stack.names["inbox_prefix"],
        "OutputBucketName": stack.names["output_bucket"],
        "JobsTableName": stack.names["jobs_table"],
        "RunwareApiKeySecretArn": stack.environment["RUNWARE_API_KEY_SECRET"],
    }
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    stack.client("cloudformation").create_stack(StackName="cli-deployed", TemplateBody=json.dumps(template))
    environment = {**os.environ, "AWS_ENDPOINT_URL": stack.aws_endpoint, "AWS_DEFAULT_REGION": "us-east-1",
                   "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}  # fmt: skip
    result = subprocess.run([str(CLI), "--stack", "cli-deployed", "--json", "status", "--limit", "1"], env=environment,
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["stack"] == "stack cli-deployed (us-east-1)"
    missing = subprocess.run([str(CLI), "--stack", "no-such-stack", "status"], env=environment,
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert missing.returncode == 3 and "no stack 'no-such-stack'" in missing.stderr
    no_region = {k: v for k, v in environment.items() if k not in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE")}
    no_region.update(AWS_CONFIG_FILE=str(tmp_path / "no-config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    regionless = subprocess.run([str(CLI), "--stack", "cli-deployed", "status"], env=no_region,
                                capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert regionless.returncode == 3, regionless.stderr
    assert regionless.stderr.startswith("s3-upscale: no AWS region for stack 'cli-deployed': pass --region")
    assert regionless.stderr.count("\n") == 1 and "Traceback" not in regionless.stderr


def test_smoke_local_starts_a_stack_when_none_runs(tmp_path: Path) -> None:
    """`s3-upscale smoke --local` with no `make up` running (its state file left behind by one that
    was killed): the check CI runs."""
    stale = tmp_path / "state.json"
    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait()
    stale.write_text(json.dumps({"pid": dead_pid.pid, "aws_endpoint": "http://127.0.0.1:9", "environment": {}}))
    result = subprocess.run(
        [str(CLI), "smoke", "--local", "--timeout", "90"],
        env={**os.environ, "S3_UPSCALE_LOCAL_STATE": str(stale)},
        capture_output=True, text=True, timeout=180, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "local stack started for this command" in result.stdout
    assert "smoke test passed" in result.stdout


def test_backfill_counts_then_enqueues_existing_objects_without_second_jobs(
    stack: LocalStack, state_file: Path
) -> None:
    keys = [drop(stack, f"cli-backfill/{n}.jpg", image_bytes(260, 200)) for n in range(3)]
    wait_for_jobs(stack, keys)
    jobs_before = len(stack.jobs())
    prefix = stack.names["inbox_prefix"] + "cli-backfill/"

    dry = cli(state_file, "--json", "backfill", "--prefix", prefix, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    counted = json.loads(dry.stdout)
    assert (counted["objects"], counted["new"], counted["have_jobs"], counted["enqueued"]) == (3, 0, 3, 0)

    real = cli(state_file, "--json", "backfill", "--prefix", prefix)
    assert real.returncode == 0, real.stderr
    sent = json.loads(real.stdout)
    assert (sent["enqueued"], sent["have_jobs"]) == (0, 3), "objects that have a job are not sent again"

    outside = cli(state_file, "backfill", "--prefix", "elsewhere/")
    assert outside.returncode == 2 and outside.stderr.startswith("s3-upscale: --prefix 'elsewhere/' is outside")
    wait_on_stack(stack, lambda: not stack.invocations_pending(), "the backfilled messages were never consumed")
    assert len(stack.jobs()) == jobs_before, "a backfill of objects that already have jobs creates none"


def test_redrive_moves_dead_letters_back_and_their_jobs_complete(stack: LocalStack, state_file: Path) -> None:
    assert stack.emulator is not None
    nothing = json.loads(cli(state_file, "--json", "redrive").stdout)
    assert nothing == {"deadLetters": 0, "status": "NOTHING_TO_MOVE"}

    # An upload whose own step keeps failing (S3 answers it with an internal error every time) reaches
    # the DLQ after maxReceiveCount receives; a Runware outage would not (intake waits), and a refusal
    # such as AccessDenied is REJECTED at once with what to grant.
    key = stack.names["inbox_prefix"] + "cli-redrive/refused.jpg"
    s3 = stack.functions["SubmitFunction"].module.submitter.objects._s3

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == key:
            raise ClientError(
                {"Error": {"Code": "InternalError", "Message": "We encountered an internal error."}}, "GetObject"
            )

    s3.meta.events.register("before-parameter-build.s3", refuse)
    try:
        drop(stack, "cli-redrive/refused.jpg", image_bytes(260, 200))
        wait_on_stack(
            stack,
            lambda: stack.dead_letter_count() > 0,
            "the upload never reached the dead-letter queue",
            poll_seconds=0.5,
        )
    finally:
        s3.meta.events.unregister("before-parameter-build.s3", refuse)

    result = cli(state_file, "--json", "redrive", "--wait", "--timeout", "60")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "COMPLETED" and report["moved"] >= 1
    assert wait_for_jobs(stack, [key])[key]["status"] == "COMPLETED"
    assert stack.dead_letter_count() == 0


def test_watch_events_prints_the_completion_events_of_new_jobs(stack: LocalStack, state_file: Path) -> None:
    keys = [drop(stack, f"cli-events/{n}.jpg", image_bytes(240, 180)) for n in range(2)]
    keys.append(drop(stack, "cli-events/not-an-image.jpg", b"plain text"))
    wait_for_jobs(stack, keys)

    result = cli(state_file, "--json", "watch", "--events", "--timeout", "4", "--interval", "1")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    ours = {event["sourceKey"]: event for event in events if event.get("sourceKey") in keys}
    assert set(ours) == set(keys)
    assert ours[keys[0]]["event"] == "Upscale Job Completed" and ours[keys[0]]["status"] == "COMPLETED"
    assert ours[keys[2]]["event"] == "Upscale Job Rejected" and ours[keys[2]]["errorCode"] == "notAnImage"
    again = cli(state_file, "--json", "watch", "--events", "--timeout", "2", "--interval", "1")
    assert not {json.loads(line).get("sourceKey") for line in again.stdout.splitlines()} & set(keys), "consumed"


def test_watch_events_once_prints_the_waiting_events_then_exits(stack: LocalStack, state_file: Path) -> None:
    keys = [drop(stack, f"cli-events-once/{n}.jpg", image_bytes(240, 180)) for n in range(2)]
    wait_for_jobs(stack, keys)
    deadline = time.monotonic() + 20
    printed: list[str] = []
    while not all(any(f"COMPLETED  {key}  " in line for line in printed) for key in keys):
        assert time.monotonic() < deadline, f"the completion events never came: {printed}"
        started = time.monotonic()
        result = cli(state_file, "watch", "--events", "--once")
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started < 15, "--once does not wait for events to come"
        assert result.stdout.startswith("completion events from ")
        printed += result.stdout.splitlines()[1:]
