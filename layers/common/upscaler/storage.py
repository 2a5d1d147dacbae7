"""S3 access for the pipeline: object metadata, header bytes, presigned URLs, output fix-ups.

Image bytes are never downloaded whole: validation reads a small leading range, and Runware moves
the pixels itself through presigned URLs. The one exception is a paid result whose upload failed:
it is streamed from Runware into the staging key in parts (`put_stream`), never held whole.

A presigned URL stops working when the credentials that signed it expire, even before its
X-Amz-Expires (https://repost.aws/knowledge-center/presigned-url-s3-bucket-expiration), and a
Lambda role's credentials are temporary. URLs are therefore signed by a `SigningSession`: a role
session assumed for the purpose, renewed whenever what is left of it is shorter than the URL's
lifetime, so every URL handed out dies of its own X-Amz-Expires.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.loaders import create_loader

from upscaler.image_header import (
    METADATA_MAX_BYTES,
    HeaderBytes,
    ImageHeader,
    MetadataTooLarge,
    NeedMoreBytes,
    UnreadableImage,
    parse_image,
)
from upscaler.settings import aws_region

# Most headers fit in the first 64 KiB. Metadata that pushes the header further in is walked with
# further ranged reads, each up to twice the last (at most 1 MiB), so a file's metadata costs a
# handful of requests and the bytes read stay near what the header really needs.
HEADER_FIRST_READ_BYTES = 64 * 1024
HEADER_READ_MAX_WINDOW = 1024 * 1024
HEADER_MAX_BYTES = METADATA_MAX_BYTES + HEADER_READ_MAX_WINDOW

# A function's role assuming another role is role chaining, which caps the session at one hour
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_terms-and-concepts.html, "Role chaining").
SIGNING_SESSION_SECONDS = 3600
# A session is renewed once less than a URL's lifetime plus this margin (clock skew, the time the
# URL spends in flight) is left of it.
SIGNING_MARGIN_SECONDS = 300
# How long one session signs URLs of the longest lifetime before it is renewed: STS is called about
# once per this many seconds per warm container, not once per URL.
SIGNING_REUSE_SECONDS = 600
MAX_SIGNED_URL_SECONDS = SIGNING_SESSION_SECONDS - SIGNING_MARGIN_SECONDS - SIGNING_REUSE_SECONDS

# Parts of a streamed upload: S3 wants every part but the last to be at least 5 MiB, and at most
# 10,000 parts (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html).
STREAM_PART_BYTES = 8 * 1024 * 1024
S3_MIN_PART_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    version_id: str | None
    size: int
    etag: str
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CurrentObject:
    """What one ranged GET of an object's current version says: its fields and its first bytes."""

    info: ObjectInfo
    header_bytes: HeaderBytes


@dataclass(frozen=True)
class StagedObject:
    """One key of a listing, and when its current version was written."""

    key: str
    last_modified: datetime


class ObjectMissing(Exception):
    """The object (or that version of it) is not in the bucket."""


class ObjectDeleted(ObjectMissing):
    """The key's current version is a delete marker: the user deleted the object."""


class SourceUnreadable(Exception):
    """S3 keeps the object's bytes from the submit function for a reason only a person can fix.

    Retrying cannot help, so the source is refused at once with what to do (upscaler.source_rules).
    `aws_code` and `aws_message` are S3's own words, kept for the job's reason.
    """

    def __init__(self, bucket: str, key: str, aws_code: str, aws_message: str) -> None:
        super().__init__(f"s3://{bucket}/{key}: {aws_code}: {aws_message}")
        self.bucket = bucket
        self.key = key
        self.aws_code = aws_code
        self.aws_message = aws_message


class ObjectArchived(SourceUnreadable):
    """The object is archived (InvalidObjectState): it must be restored before anything can read it."""

    def __init__(
        self, bucket: str, key: str, aws_code: str, aws_message: str, storage_class: str, access_tier: str
    ) -> None:
        super().__init__(bucket, key, aws_code, aws_message)
        self.storage_class = storage_class
        self.access_tier = access_tier


class KmsKeyRefused(SourceUnreadable):
    """The object is encrypted with a KMS key (SSE-KMS) the function may not use, or that cannot be used."""

    def __init__(self, bucket: str, key: str, aws_code: str, aws_message: str, kms_key_id: str) -> None:
        super().__init__(bucket, key, aws_code, aws_message)
        self.kms_key_id = kms_key_id


class CustomerKeyEncrypted(SourceUnreadable):
    """The object is encrypted with a customer-provided key (SSE-C), which only its uploader holds."""


class ReadDenied(SourceUnreadable):
    """S3 answered AccessDenied for a reason other than a KMS key: the role may not read the object."""


def create_s3_client(credentials: dict[str, str] | None = None) -> Any:
    """An S3 client that signs with SigV4 for the function's region, which is the buckets' region.

    Presigned URLs name the regional endpoint explicitly: botocore would otherwise sign for the
    region but point at the global host, which answers with a redirect for buckets elsewhere.
    The host's domain is the region's partition's (amazonaws.com.cn in China, amazonaws.com in
    GovCloud, ...), taken from botocore's partition data the way its endpoint rules take it: a
    listed region first, then a partition's region pattern, else the commercial partition.
    `credentials` (boto3's aws_access_key_id, aws_secret_access_key, aws_session_token) replace the
    function's own, for a client that signs URLs (see SigningSession).
    """
    region = aws_region()
    custom_endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    partitions = create_loader().load_data("partitions")["partitions"]
    partition = (
        next((p for p in partitions if region in p["regions"]), None)
        or next((p for p in partitions if re.match(p["regionRegex"], region)), None)
        or next(p for p in partitions if p["id"] == "aws")
    )
    return boto3.client(
        "s3",
        **(credentials or {}),
        region_name=region,
        endpoint_url=None if custom_endpoint else f"https://s3.{region}.{partition['outputs']['dnsSuffix']}",
        config=Config(
            signature_version="s3v4",
            # Local endpoints are plain host:port, where bucket subdomains cannot resolve.
            s3={"addressing_style": "path" if custom_endpoint else "virtual"},
            retries={"mode": "standard", "max_attempts": 3},
        ),
    )


class SigningSession:
    """S3 clients for presigning, whose credentials outlive every URL they sign.

    The role is assumed for SIGNING_SESSION_SECONDS and the session kept while it has a URL's
    lifetime plus SIGNING_MARGIN_SECONDS left; then it is assumed again. A longer lifetime than
    MAX_SIGNED_URL_SECONDS (which leaves a session SIGNING_REUSE_SECONDS of use) is cut to it, so
    the URL's X-Amz-Expires tells the truth.
    """

    def __init__(
        self,
        sts_client: Any,
        role_arn: str,
        *,
        make_s3_client: Callable[[dict[str, str]], Any] = create_s3_client,
        session_seconds: int = SIGNING_SESSION_SECONDS,
        margin_seconds: int = SIGNING_MARGIN_SECONDS,
        reuse_seconds: int = SIGNING_REUSE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sts = sts_client
        self.role_arn = role_arn
        self._make_s3_client = make_s3_client
        self.session_seconds = session_seconds
        self.margin_seconds = margin_seconds
        self.reuse_seconds = reuse_seconds
        self._clock = clock
        self._lock = threading.Lock()  # URLs are signed from several threads at once
        self._client: Any = None
        self._expires_at = 0.0
        self.sessions_assumed = 0

    @property
    def max_lifetime_seconds(self) -> int:
        return self.session_seconds - self.margin_seconds - self.reuse_seconds

    def lifetime_for(self, wanted_seconds: int) -> int:
        return min(wanted_seconds, self.max_lifetime_seconds)

    def client_for(self, lifetime_seconds: int) -> Any:
        """A client whose credentials last at least lifetime_seconds plus the margin from now."""
        with self._lock:
            if self._client is None or self._expires_at - self._clock() < lifetime_seconds + self.margin_seconds:
                self._assume()
            return self._client

    def _assume(self) -> None:
        credentials = self._sts.assume_role(
            RoleArn=self.role_arn,
            RoleSessionName=f"url-signing-{int(self._clock())}",
            DurationSeconds=self.session_seconds,
        )["Credentials"]
        self._expires_at = credentials["Expiration"].timestamp()
        self._client = self._make_s3_client(
            {
                "aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"],
            }
        )
        self.sessions_assumed += 1


class ObjectStore:
    def __init__(self, s3_client: Any, signing: SigningSession | None = None) -> None:
        self._s3 = s3_client
        # None: URLs are signed with the client's own credentials (a local stack, or long-lived keys).
        self.signing = signing
        self.header_bytes_read = 0  # running total, so callers and tests can see what was fetched
        self._count_lock = threading.Lock()  # sources are read from several threads at once

    def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            response = self._s3.head_object(**kwargs)
        except ClientError as error:
            if _status(error) == 404 or _code(error) in ("404", "NoSuchKey", "NoSuchVersion"):
                raise ObjectMissing(f"s3://{bucket}/{key} is not there") from error
            raise
        return ObjectInfo(
            bucket=bucket,
            key=key,
            version_id=response.get("VersionId") or version_id,
            size=int(response["ContentLength"]),
            etag=str(response.get("ETag", "")).strip('"'),
            content_type=str(response.get("ContentType", "")),
            metadata={k.lower(): v for k, v in (response.get("Metadata") or {}).items()},
        )

    def read_current(self, bucket: str, key: str, *, event_version_id: str | None = None) -> CurrentObject:
        """The object's current version, from one ranged GET that names no version: size, ETag,
        version, metadata and the first header bytes in a single request."""
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{HEADER_FIRST_READ_BYTES - 1}")
        except ClientError as error:
            if _status(error) == 416 or _code(error) == "InvalidRange":
                # S3 answers a Range on an empty object with 416, which carries none of its fields.
                info = self.head(bucket, key)
                return CurrentObject(info, HeaderBytes(info.size))
            if _status(error) == 404 or _code(error) in ("404", "NoSuchKey"):
                if self._is_delete_marker(error, bucket, key, event_version_id):
                    raise ObjectDeleted(f"s3://{bucket}/{key} was deleted") from error
                raise ObjectMissing(f"s3://{bucket}/{key} is not there") from error
            unreadable = self._unreadable(error, bucket, key)
            if unreadable is not None:
                raise unreadable from error
            raise
        body = response["Body"]
        try:
            # A server may ignore the Range (200, whole object): never read past what was asked.
            data: bytes = body.read(HEADER_FIRST_READ_BYTES)
        finally:
            body.close()
        self._count(len(data))
        size = _total_size(response)
        info = ObjectInfo(
            bucket=bucket,
            key=key,
            version_id=response.get("VersionId") or None,
            size=size,
            etag=str(response.get("ETag", "")).strip('"'),
            content_type=str(response.get("ContentType", "")),
            metadata={k.lower(): v for k, v in (response.get("Metadata") or {}).items()},
        )
        held = HeaderBytes(size)
        held.add(0, data)
        return CurrentObject(info, held)

    def _unreadable(self, error: ClientError, bucket: str, key: str) -> SourceUnreadable | None:
        """What a refused GET means when no retry can change it, or None for any other error.

        - InvalidObjectState (403), with StorageClass and AccessTier: an archived object (GetObject,
          https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).
        - A KMS.* code (S3 reports KMS.DisabledException and KMS.KMSInvalidStateException, per
          https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/export-task-failure-messages.html),
          or AccessDenied naming kms:Decrypt and the key in IAM's form
          (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html): an
          SSE-KMS key the caller may not, or cannot, use.
        - 400 InvalidRequest about server-side encryption: an SSE-C object read without its key
          (GetObject requires the customer-key headers; AWS's answer as recorded in
          https://github.com/minio/minio/pull/4894).
        S3's wording is not documented word for word, so codes decide and messages only give hints;
        a HEAD, which needs no KMS permission, tells an AccessDenied about the key from any other.
        """
        code, message = _code(error), _message(error)
        if code == "InvalidObjectState":
            details = {**error.response, **error.response.get("Error", {})}
            storage_class = str(details.get("StorageClass") or "")
            access_tier = str(details.get("AccessTier") or "")
            if not storage_class:
                head = self._head_fields(bucket, key)
                storage_class = str(head.get("StorageClass") or "")
                access_tier = access_tier or str(head.get("ArchiveStatus") or "")
            return ObjectArchived(bucket, key, code, message, storage_class, access_tier)
        if code.startswith("KMS."):
            return KmsKeyRefused(bucket, key, code, message, self._kms_key_of(bucket, key, message))
        if _status(error) == 400 and code in ("InvalidRequest", "InvalidArgument") and _names_sse_c(message):
            return CustomerKeyEncrypted(bucket, key, code, message)
        if code == "AccessDenied" or (_status(error) == 403 and code in ("", "403", "Forbidden")):
            named_key = _kms_key_in(message)
            if named_key or "kms" in message.lower():
                return KmsKeyRefused(bucket, key, code, message, named_key or self._kms_key_of(bucket, key, message))
            head = self._head_fields(bucket, key)
            # SSE-KMS or DSSE-KMS, and HEAD allowed where GET is not: the key makes the difference.
            if str(head.get("ServerSideEncryption") or "").startswith("aws:kms"):
                return KmsKeyRefused(bucket, key, code, message, str(head.get("SSEKMSKeyId") or ""))
            return ReadDenied(bucket, key, code or "AccessDenied", message)
        return None

    def _head_fields(self, bucket: str, key: str) -> dict[str, Any]:
        """The object's HEAD answer, or nothing when S3 refuses that too (only hints are read from it)."""
        try:
            response: dict[str, Any] = self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            # SSE-C, no permission, gone: no hint to be had (a HEAD's error has no body, only a status).
            if _status(error) in (400, 403, 404) or _code(error) in ("400", "403", "404", "AccessDenied", "NoSuchKey"):
                return {}
            raise
        return response

    def _kms_key_of(self, bucket: str, key: str, message: str) -> str:
        return _kms_key_in(message) or str(self._head_fields(bucket, key).get("SSEKMSKeyId") or "")

    def _count(self, read: int) -> None:
        with self._count_lock:
            self.header_bytes_read += read

    def _is_delete_marker(self, error: ClientError, bucket: str, key: str, version_id: str | None) -> bool:
        headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        if str(headers.get("x-amz-delete-marker", "")).lower() == "true":
            return True
        if not version_id:
            return False
        # Not every S3 says so in the 404: a version that still exists under a key that answers 404
        # can only be hidden by a delete marker.
        try:
            self.head(bucket, key, version_id)
        except ObjectMissing:
            return False
        except ClientError as head_error:
            if _status(head_error) in (400, 403, 405):
                return False
            raise
        return True

    def read_header(self, info: ObjectInfo, held: HeaderBytes | None = None) -> ImageHeader:
        """Format and dimensions from ranged GETs of the bytes the header needs (never the whole image).

        `held` carries bytes already fetched (the first read of `read_current`); every further read
        starts where held bytes end, so no byte is fetched twice.
        """
        held = held or HeaderBytes(info.size)
        window = HEADER_FIRST_READ_BYTES
        while True:
            try:
                return parse_image(held)
            except NeedMoreBytes as needed:
                need = needed
            start = held.gap_at(need.offset)
            end = min(info.size, max(need.offset + need.length, start + window))
            if held.bytes_held + (end - start) > HEADER_MAX_BYTES:
                raise MetadataTooLarge("image")
            data = self._read_range(info, start, end)
            if not data:
                raise UnreadableImage(f"the object ended at byte {start}, before its image header")
            held.add(start, data)
            window = min(HEADER_READ_MAX_WINDOW, window * 2)

    def _read_range(self, info: ObjectInfo, start: int, end: int) -> bytes:
        """Bytes [start, end) of the object, of the version found by the first read."""
        kwargs: dict[str, Any] = {"Bucket": info.bucket, "Key": info.key, "Range": f"bytes={start}-{end - 1}"}
        if info.version_id:
            kwargs["VersionId"] = info.version_id
        body = self._s3.get_object(**kwargs)["Body"]
        try:
            data: bytes = body.read(end - start)
        finally:
            body.close()
        self._count(len(data))
        return data

    def url_lifetime(self, wanted_seconds: int) -> int:
        """The X-Amz-Expires a URL asked to live wanted_seconds gets: no longer than its signer lasts."""
        return self.signing.lifetime_for(wanted_seconds) if self.signing else wanted_seconds

    def _sign(self, operation: str, params: dict[str, Any], expires_in: int) -> str:
        lifetime = self.url_lifetime(expires_in)
        client = self.signing.client_for(lifetime) if self.signing else self._s3
        url: str = client.generate_presigned_url(operation, Params=params, ExpiresIn=lifetime)
        return url

    def presign_get(self, info: ObjectInfo, expires_in: int) -> str:
        params: dict[str, Any] = {"Bucket": info.bucket, "Key": info.key}
        if info.version_id:
            params["VersionId"] = info.version_id
        return self._sign("get_object", params, expires_in)

    def presign_put(self, bucket: str, key: str, expires_in: int) -> str:
        # No ContentType in Params: Runware's PUT carries whatever it likes, and a signed header it
        # does not send would make S3 refuse the upload. The type is put right on completion.
        return self._sign("put_object", {"Bucket": bucket, "Key": key}, expires_in)

    def put_stream(self, bucket: str, key: str, chunks: Iterable[bytes], part_bytes: int = STREAM_PART_BYTES) -> int:
        """Write the bytes `chunks` yields to the key, holding at most about two parts (the bytes
        gathered, and the part being sent) plus one chunk at a time, whatever the size: one PUT when
        everything fits in one part, else a multipart upload (aborted if anything fails, so no parts
        are left to pay for). Returns the number of bytes written."""
        if part_bytes < S3_MIN_PART_BYTES:
            raise ValueError(f"S3 parts (but the last) must be at least {S3_MIN_PART_BYTES} bytes")
        held = bytearray()
        written = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            for chunk in chunks:
                held += chunk
                written += len(chunk)
                while len(held) >= part_bytes:
                    if upload_id is None:
                        upload_id = str(self._s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"])
                    with memoryview(held) as view:  # one copy of the part, not a slice and then a copy
                        part = bytes(view[:part_bytes])
                    del held[:part_bytes]
                    parts.append(self._upload_part(bucket, key, upload_id, len(parts) + 1, part))
            if upload_id is None:
                self._s3.put_object(Bucket=bucket, Key=key, Body=bytes(held))
                return written
            if held:
                parts.append(self._upload_part(bucket, key, upload_id, len(parts) + 1, bytes(held)))
            self._s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            if upload_id is not None:
                self._s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise
        return written

    def _upload_part(self, bucket: str, key: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        response = self._s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
        return {"PartNumber": number, "ETag": response["ETag"]}

    def copy(self, source: ObjectInfo, key: str, content_type: str, metadata: dict[str, str]) -> str:
        """Server-side copy within the bucket with a new Content-Type and metadata; returns the new ETag.

        The copy is of the bytes that were read: of `source`'s version where the bucket keeps versions,
        and only while the key still has `source`'s ETag (x-amz-copy-source-if-match; S3 answers 412
        PreconditionFailed otherwise, https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html).
        A 412 raises, as any failed copy does, so the caller reads and verifies the object again."""
        copy_source = {"Bucket": source.bucket, "Key": source.key}
        if source.version_id and source.version_id != "null":
            copy_source["VersionId"] = source.version_id
        response = self._s3.copy_object(
            Bucket=source.bucket,
            Key=key,
            CopySource=copy_source,
            CopySourceIfMatch=f'"{source.etag}"',
            ContentType=content_type,
            Metadata=metadata,
            MetadataDirective="REPLACE",
        )
        return str(response.get("CopyObjectResult", {}).get("ETag", source.etag)).strip('"')

    def delete(self, bucket: str, key: str) -> None:
        self._s3.delete_object(Bucket=bucket, Key=key)

    def list_from(self, bucket: str, prefix: str, *, start_after: str) -> Iterator[StagedObject]:
        """The keys under `prefix` after `start_after`, then those up to it: every key once, from a
        point of the caller's choosing (ListObjectsV2 returns keys in UTF-8 binary order, up to 1,000
        to a request: https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html)."""
        for first, last in ((start_after, None), (None, start_after)):
            for item in self._list(bucket, prefix, first):
                if last is not None and item.key > last:
                    return
                yield item

    def _list(self, bucket: str, prefix: str, start_after: str | None) -> Iterator[StagedObject]:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if start_after:
            kwargs["StartAfter"] = start_after
        while True:
            response = self._s3.list_objects_v2(**kwargs)
            for entry in response.get("Contents") or []:
                yield StagedObject(str(entry["Key"]), entry["LastModified"])
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                return
            kwargs["ContinuationToken"] = token


def _total_size(response: dict[str, Any]) -> int:
    """The object's size from a ranged GET: Content-Range's total (206), or the length (200, whole)."""
    match = re.search(r"/(\d+)$", str(response.get("ContentRange") or ""))
    return int(match.group(1)) if match else int(response["ContentLength"])


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


_KMS_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(?:key|alias)/[A-Za-z0-9/_-]+")


def _kms_key_in(message: str) -> str:
    """The KMS key ARN an AccessDenied message names ("... kms:Decrypt on resource: <arn> ..."), or ""."""
    match = _KMS_KEY_ARN.search(message)
    return match.group(0) if match else ""


def _names_sse_c(message: str) -> bool:
    lowered = message.lower()
    return "server side encryption" in lowered or "server-side encryption" in lowered or "customer" in lowered
