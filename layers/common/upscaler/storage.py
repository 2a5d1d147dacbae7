"""S3 access for the pipeline: object metadata, header bytes, presigned URLs, output fix-ups.

Image bytes are never downloaded whole: validation reads a small leading range, and Runware moves
the pixels itself through presigned URLs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.loaders import create_loader

from upscaler.image_header import ImageHeader, NeedMoreBytes, UnreadableImage, read_image_header
from upscaler.settings import aws_region

# Most headers fit in the first 64 KiB; JPEGs with large EXIF/ICC segments can need more.
HEADER_FIRST_READ_BYTES = 64 * 1024
HEADER_MAX_BYTES = 512 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    version_id: str | None
    size: int
    etag: str
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)


class ObjectMissing(Exception):
    """The object (or that version of it) is not in the bucket."""


def create_s3_client() -> Any:
    """An S3 client that signs with SigV4 for the function's region, which is the buckets' region.

    Presigned URLs name the regional endpoint explicitly: botocore would otherwise sign for the
    region but point at the global host, which answers with a redirect for buckets elsewhere.
    The host's domain is the region's partition's (amazonaws.com.cn in China, amazonaws.com in
    GovCloud, ...), taken from botocore's partition data the way its endpoint rules take it: a
    listed region first, then a partition's region pattern, else the commercial partition.
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
        region_name=region,
        endpoint_url=None if custom_endpoint else f"https://s3.{region}.{partition['outputs']['dnsSuffix']}",
        config=Config(
            signature_version="s3v4",
            # Local endpoints are plain host:port, where bucket subdomains cannot resolve.
            s3={"addressing_style": "path" if custom_endpoint else "virtual"},
            retries={"mode": "standard", "max_attempts": 3},
        ),
    )


class ObjectStore:
    def __init__(self, s3_client: Any) -> None:
        self._s3 = s3_client
        self.header_bytes_read = 0  # running total, so callers and tests can see what was fetched

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

    def read_header(self, info: ObjectInfo) -> ImageHeader:
        """Format and dimensions from ranged GETs of the object's first bytes (never the whole image)."""
        if info.size == 0:
            raise UnreadableImage("the object is empty")
        limit = min(info.size, HEADER_MAX_BYTES)
        want = min(info.size, HEADER_FIRST_READ_BYTES)
        data = b""
        while True:
            # Each read continues where the last one stopped: no byte is fetched twice, and the
            # total never exceeds HEADER_MAX_BYTES.
            data += self._read_range(info, len(data), want)
            try:
                return read_image_header(data, complete=len(data) >= info.size)
            except NeedMoreBytes:
                if want >= limit:
                    raise UnreadableImage(
                        f"no image header within the first {limit} bytes (truncated or corrupt file)"
                    ) from None
                want = min(limit, want * 4)

    def _read_range(self, info: ObjectInfo, start: int, end: int) -> bytes:
        """Bytes [start, end) of the object."""
        kwargs: dict[str, Any] = {"Bucket": info.bucket, "Key": info.key, "Range": f"bytes={start}-{end - 1}"}
        if info.version_id:
            kwargs["VersionId"] = info.version_id
        body = self._s3.get_object(**kwargs)["Body"]
        try:
            data: bytes = body.read(end - start)
        finally:
            body.close()
        self.header_bytes_read += len(data)
        return data

    def presign_get(self, info: ObjectInfo, expires_in: int) -> str:
        params: dict[str, Any] = {"Bucket": info.bucket, "Key": info.key}
        if info.version_id:
            params["VersionId"] = info.version_id
        url: str = self._s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)
        return url

    def presign_put(self, bucket: str, key: str, expires_in: int) -> str:
        # No ContentType in Params: Runware's PUT carries whatever it likes, and a signed header it
        # does not send would make S3 refuse the upload. The type is put right on completion.
        url: str = self._s3.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
        )
        return url

    def copy(self, source: ObjectInfo, key: str, content_type: str, metadata: dict[str, str]) -> str:
        """Server-side copy within the bucket with a new Content-Type and metadata; returns the new ETag."""
        response = self._s3.copy_object(
            Bucket=source.bucket,
            Key=key,
            CopySource={"Bucket": source.bucket, "Key": source.key},
            ContentType=content_type,
            Metadata=metadata,
            MetadataDirective="REPLACE",
        )
        return str(response.get("CopyObjectResult", {}).get("ETag", source.etag)).strip('"')

    def delete(self, bucket: str, key: str) -> None:
        self._s3.delete_object(Bucket=bucket, Key=key)


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
