"""Late outputs the safety net looks for: a staged output whose job ended without it.

A job that timed out, or was reported failed, is watched for a late upload by its own recovery
check while its presigned PUT lives (upscaler.recovery). When that check is lost (dead-lettered, or
never sent), no index leads to the job any more: the open-jobs index holds open jobs only. Its
output, if Runware did upload it, is paid for and must not be thrown away. So each safety-net run
also lists the staging prefix, where every upload lands. In normal operation that prefix holds only
the outputs of jobs in flight (a staged copy is removed when its job is completed), so the listing
is short: one ListObjectsV2 request returns up to 1,000 keys ("ListObjectsV2", Amazon S3 API
reference, https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html).

For each staged object older than `min_age_seconds` (younger ones are in the hands of their
webhook or check), its job is read by key (the staging key ends with the job id):
- an open job is left to its check and to the open-jobs pass;
- an ended job that a verified output may complete (TIMED_OUT, FAILED, a rejection after its
  claim) is settled from the output alone (`Settler.late_output`): COMPLETED when the bytes check out;
- a COMPLETED job's staged copy is a leftover of a removal that failed (its output was published
  before the job was completed): it is removed;
- anything else (no job record) is left to the staging lifecycle rule.

Bounded: at most `max_objects` staged objects per run, listed from a random point of the key space
and round to it, so leftovers a run cannot settle never hide the rest from every later run.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from upscaler.clock import utc_now
from upscaler.job_record import JobStatus
from upscaler.jobs import JobStore, completion_for
from upscaler.results import Recorded
from upscaler.settlement import Settler
from upscaler.storage import ObjectStore, StagedObject

# Jobs are read by key, at most this many to a BatchGetItem request (DynamoDB's limit is 100).
READ_BATCH_SIZE = 100


@dataclass
class LateOutputReport:
    staged: int = 0  # staged objects old enough to look at
    recorded: list[Recorded] = field(default_factory=list)
    leftovers_removed: int = 0
    out_of_time: bool = False


class LateOutputs:
    def __init__(
        self,
        objects: ObjectStore,
        jobs: JobStore,
        settler: Settler,
        *,
        bucket: str,
        staging_prefix: str,
        max_objects: int,
        min_age_seconds: int,
    ) -> None:
        self.objects = objects
        self.jobs = jobs
        self.settler = settler
        self.bucket = bucket
        self.staging_prefix = staging_prefix
        self.max_objects = max_objects
        self.min_age_seconds = min_age_seconds

    def run(self, *, deadline: float | None = None, now: datetime | None = None) -> LateOutputReport:
        report = LateOutputReport()
        cutoff = (now or utc_now()) - timedelta(seconds=self.min_age_seconds)
        # Job ids are UUID-shaped hex: a random hex digit is a random point of the key space.
        start = f"{self.staging_prefix}{secrets.choice('0123456789abcdef')}"
        staged: list[StagedObject] = []
        for found in self.objects.list_from(self.bucket, self.staging_prefix, start_after=start):
            if found.last_modified <= cutoff:
                staged.append(found)
            if len(staged) >= self.max_objects:
                break
        report.staged = len(staged)
        for begin in range(0, len(staged), READ_BATCH_SIZE):
            batch = staged[begin : begin + READ_BATCH_SIZE]
            by_job = {item.key[len(self.staging_prefix) :]: item for item in batch}
            jobs = self.jobs.get_many(list(by_job))
            for job_id, item in by_job.items():
                if deadline is not None and time.monotonic() >= deadline:
                    report.out_of_time = True
                    return report
                job = jobs.get(job_id)
                if job is None or job.is_open:
                    continue
                if job.staging_key and job.staging_key != item.key:
                    continue  # not where this job's output lands
                if completion_for(job) is not None:
                    recorded = self.settler.late_output(job)
                    if recorded is not None:
                        report.recorded.append(recorded)
                elif job.status is JobStatus.COMPLETED:
                    self.objects.delete(self.bucket, item.key)
                    report.leftovers_removed += 1
        return report
