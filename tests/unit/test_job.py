"""`job KEY|JOB_ID` (upscale_cli/job.py): one job with every attribute, found by id or by inbox key."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

from tests.unit.cli_target import add_job, moto_target, run_command
from upscale_cli import job
from upscale_cli.job import find_jobs, rows_of
from upscale_cli.main import build_parser
from upscale_cli.output import Output

START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def run(*argv: str, as_json: bool = False) -> tuple[int, str]:
    stream = io.StringIO()
    args = build_parser().parse_args(["job", *argv])
    return run_command(lambda: job.run(args, moto_target(), Output(as_json=as_json, stream=stream)), stream)


def two_versions(aws) -> tuple[str, str]:
    target = moto_target()
    versions = [
        aws.s3.put_object(Bucket=target.inbox_bucket, Key="inbox/a.png", Body=b)["VersionId"] for b in (b"1", b"2")
    ]
    older = add_job(target, "inbox/a.png", "COMPLETED", START, version=versions[0])
    newer = add_job(target, "inbox/a.png", "FAILED", START + timedelta(hours=1), version=versions[1])
    return older, newer


def test_a_job_is_found_by_its_id_in_any_case_or_by_its_key_with_or_without_the_prefix(aws):
    older, newer = two_versions(aws)
    target = moto_target()
    assert [found["jobId"] for found in find_jobs(target, older.upper())] == [older]
    for reference in ("a.png", "inbox/a.png", "s3://test-inbox/inbox/a.png"):
        assert [found["jobId"] for found in find_jobs(target, reference)] == [newer, older]


def test_the_newest_job_of_a_key_or_all_of_them(aws):
    older, newer = two_versions(aws)
    code, text = run("--json", "a.png", as_json=True)
    assert code == 0 and json.loads(text)["jobId"] == newer
    code, text = run("--all", "a.png", as_json=True)
    assert [found["jobId"] for found in json.loads(text)] == [newer, older]
    code, text = run("a.png")
    assert f"job {newer}" in text and f"job {older}" not in text
    assert text.splitlines()[-1] == "(1 older jobs of this key: add --all)"


def test_no_job_is_exit_status_1(aws):
    code, text = run("never.png")
    assert code == 1
    assert text == "no job for never.png in stack test (moto)\n"
    code, text = run("never.png", as_json=True)
    error_line = "no job for never.png in stack test (moto)\n"
    assert (code, json.loads(text.removesuffix(error_line))) == (1, {"error": "no job for never.png"})


def test_fields_are_grouped_as_the_record_is_described_and_unknown_ones_come_last():
    record = {"status": "FAILED", "jobId": "id", "sourceKey": "inbox/a.png", "zeta": 1, "errorCode": "x", "alpha": None}
    assert rows_of(record) == [
        ["jobId", "id"],
        ["source.sourceKey", "inbox/a.png"],
        ["outcome.status", "FAILED"],
        ["outcome.errorCode", "x"],
        ["other.alpha", "-"],
        ["other.zeta", "1"],
    ]
