"""Recovering a paid result that never reached the bucket.

Runware makes (and bills) the result, then PUTs it to the presigned staging URL. When that PUT
fails, Runware reports `uploadFailed` (Runware/runware-python runware/errors.py); a success can
also arrive while nothing is staged. Runware keeps the result at `imageURL` for the task's `ttl`
(outputType URL; the model page's `ttl`), so the result is not lost:

- `next_step` says what to do, from the job and the result URL the report carried, if any:
  FETCH the URL; else RESUBMIT (send the job again, once, under a task UUID of its own); else
  GIVE_UP (it was sent again already: the report stands).
- `ResultRecovery.copy_result` streams the URL's bytes into the job's staging key (S3 multipart,
  never the whole image in memory). This is the one path where image bytes pass through a
  function. The copy is then verified and published like any staged output (`results.py`).
- A URL that answers 403, 404 or 410 no longer holds the result (`ResultGone`); any other failure
  (5xx, timeout, connection) may pass, so the job is left as it is and tried again later
  (`RecoveryPending`).
- A result URL is fetched only from Runware's own domain (the API's host, or a host of the same
  parent domain), never by redirect: the report's body is not covered by the webhook token.

Whether Runware still returns `imageURL` when `uploadEndpoint` is set is not documented, nor is an
`imageURL` on an `uploadFailed` error: both are accepted when present, and their absence leads to
the resubmission. The second task UUID is derived from the job id, so sending it again after a
crash is answered `conflictTaskUUID` (Runware holds it already) instead of billing a third task.
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from upscaler.job_record import Job
from upscaler.outputs import DEFAULT_STAGING_PREFIX, OutputInvalid, OutputNotReady, staging_key_for
from upscaler.runware_answers import TaskError
from upscaler.storage import STREAM_PART_BYTES, ObjectStore

if TYPE_CHECKING:
    import httpx

    from upscaler.models import UpscaleTask
    from upscaler.runware import RunwareClient

# A result URL answering one of these holds the result no more (ttl past, deleted, or refused).
GONE_STATUSES = frozenset({403, 404, 410})
# What one read of the response body returns at most; a part is put together from such reads.
FETCH_CHUNK_BYTES = 64 * 1024
# Far beyond any 8 MP image in JPG, PNG or WEBP: bytes past this are not this job's result.
MAX_RESULT_BYTES = 256 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 10.0
# How often a job is sent again at most when its result is lost.
MAX_RESUBMISSIONS = 1


class Step(StrEnum):
    FETCH = "fetch"  # copy the result from Runware's URL into the staging key
    RESUBMIT = "resubmit"  # send the job again, under its second task UUID
    GIVE_UP = "giveUp"  # sent again already: the report stands


class ResultGone(Exception):
    """Runware no longer holds the result at its URL, or the URL is not one to fetch."""


class RecoveryPending(OutputNotReady):
    """The result could not be recovered yet (its URL or Runware did not answer): try again later."""


def next_step(job: Job, image_url: str | None) -> Step:
    """What recovers a result that is not in the bucket, given the result URL known (if any)."""
    if image_url:
        return Step.FETCH
    if (job.resubmissions or 0) < MAX_RESUBMISSIONS:
        return Step.RESUBMIT
    return Step.GIVE_UP


def second_task_uuid(job_id: str, attempt: int = 1) -> str:
    """The taskUUID of the job's resubmission: derived, so every retry of it names the same task,
    and shaped as a UUID v4 because Runware requires that."""
    digest = hashlib.sha256(f"{job_id}\x00resubmission\x00{attempt}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def is_runware_url(url: str, api_url: str) -> bool:
    """The result URL is on Runware's side: the API's host, or (for a name, not an address) a host
    under the same parent domain (api.runware.ai -> im.runware.ai), with the API's scheme or https."""
    result, api = urlsplit(url), urlsplit(api_url)
    if result.scheme not in {"https", api.scheme} or not result.hostname or not api.hostname:
        return False
    if result.hostname == api.hostname:
        return True
    try:
        ipaddress.ip_address(api.hostname)
    except ValueError:
        parent = api.hostname.split(".", 1)[-1]
        return "." in parent and result.hostname.endswith(f".{parent}")
    return False


class Resender(Protocol):
    def send_again(self, job: Job, task_uuid: str) -> TaskError | None:
        """Send the job's task again under task_uuid. None when Runware holds it (accepted, or
        conflictTaskUUID); Runware's error when it refused the task; RecoveryPending when it did
        not say (unavailable, or the account refused)."""
        ...


class RunwareResender:
    """Sends a job again through the same task builder and client the submit path uses."""

    def __init__(self, task_for: Callable[[Job, str], UpscaleTask], runware: RunwareClient) -> None:
        self._task_for = task_for
        self._runware = runware

    def send_again(self, job: Job, task_uuid: str) -> TaskError | None:
        from upscaler.runware import RunwareUnavailable
        from upscaler.runware_answers import Failed

        task = self._task_for(job, task_uuid)
        try:
            answer = self._runware.send([task.to_json()])
        except RunwareUnavailable as unavailable:
            raise RecoveryPending(f"Runware did not take job {job.job_id} again: {unavailable}") from unavailable
        if answer.account is not None:
            raise RecoveryPending(f"Runware refused the account: {answer.account.error.code}")
        outcome = answer.outcome(task_uuid)
        if outcome is None:
            raise RecoveryPending(f"Runware said nothing of task {task_uuid}")
        return outcome.error if isinstance(outcome, Failed) else None


@dataclass(frozen=True)
class ResultRecovery:
    """The I/O of a recovery: fetching a result URL into the staging key, and sending a job again."""

    objects: ObjectStore
    http: Callable[[], httpx.Client]
    runware_api_url: str
    resender: Resender | None = None  # None: this function does not send; another run will
    staging_prefix: str = DEFAULT_STAGING_PREFIX
    part_bytes: int = STREAM_PART_BYTES
    chunk_bytes: int = FETCH_CHUNK_BYTES
    max_bytes: int = MAX_RESULT_BYTES

    def copy_result(self, job: Job, image_url: str) -> int:
        """Stream the result at image_url into the job's staging key; the bytes written.

        Raises ResultGone when the URL no longer holds it (or is not Runware's), RecoveryPending when
        it may later, and OutputInvalid when what it holds cannot be this job's result (too large).
        """
        import httpx

        if not is_runware_url(image_url, self.runware_api_url):
            # Never fetched; a URL that cannot be used is as good as none (the job may be sent again).
            raise ResultGone(f"the result URL is not on Runware's domain ({urlsplit(image_url).hostname})")
        bucket, key = str(job.output_bucket), job.staging_key or staging_key_for(self.staging_prefix, job.job_id)
        try:
            with self.http().stream("GET", image_url, timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False) as reply:
                if reply.status_code in GONE_STATUSES:
                    raise ResultGone(f"the result URL answered HTTP {reply.status_code}")
                if reply.status_code != 200:
                    raise RecoveryPending(f"the result URL answered HTTP {reply.status_code}")
                declared = reply.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise OutputInvalid("outputTooLarge", f"the result is {declared} bytes")
                return self.objects.put_stream(
                    bucket, key, self._bounded(reply.iter_bytes(self.chunk_bytes)), self.part_bytes
                )
        except httpx.HTTPError as error:
            raise RecoveryPending(f"the result URL could not be read: {type(error).__name__}") from error

    def _bounded(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        read = 0
        for chunk in chunks:
            read += len(chunk)
            if read > self.max_bytes:
                raise OutputInvalid("outputTooLarge", f"the result is larger than {self.max_bytes} bytes")
            yield chunk
