"""Reads of encrypted sources refused in the moto server as S3 refuses them, where moto reads anything.

moto has no IAM and keeps no SSE-C key, so it returns every object's bytes. S3 does not:
- SSE-KMS: a GET needs kms:Decrypt on the object's key (S3 User Guide, "Using server-side
  encryption with AWS KMS keys"); a caller without it gets AccessDenied (403) naming the action and
  the key, in IAM's form ("... is not authorized to perform: kms:Decrypt on resource: <key> because
  no identity-based policy allows the kms:Decrypt action"; IAM User Guide, "Troubleshoot access
  denied error messages"). The submit function's role has kms:Decrypt on the keys the template's
  SourceKmsKeyArns parameter names, and on no other; here a GET of an inbox object encrypted with
  any other named key is refused that way. HEAD needs no KMS permission, and is left alone.
- SSE-C: a GET or HEAD must carry the customer key's headers (API reference, GetObject and
  HeadObject); without them S3 answers 400 InvalidRequest (its wording is not documented; the
  message here is the one AWS returned in the exchange recorded in github.com/minio/minio/pull/4894).
  moto ignores those headers on PUT; here the object remembers that it was written with a customer
  key, and reads of it without one are refused (a read with another key is not modelled).
Objects encrypted with SSE-S3, or with aws:kms and no named key (the bucket's default key), read
as in AWS. Installed by the local stack, with the inbox bucket and the template's grant.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

SSE_C_ALGORITHM = "x-amz-server-side-encryption-customer-algorithm"
SSE_C_KEY_MD5 = "x-amz-server-side-encryption-customer-key-md5"
SSE_C_REFUSAL = (
    "The object was stored using a form of Server Side Encryption. The correct parameters must be "
    "provided to retrieve the object."
)
SUBMIT_ROLE_SESSION = "arn:aws:sts::{account}:assumed-role/SubmitFunctionRole/submit"


@dataclass
class SourceReadRules:
    inbox_bucket: str = ""
    granted_kms_keys: frozenset[str] = field(default_factory=frozenset)


_rules = SourceReadRules()
_installed = False


def refuse_ungranted_reads(inbox_bucket: str, granted_kms_keys: list[str]) -> None:
    """Apply the template's grant to the inbox bucket's objects (the last stack started decides)."""
    global _installed
    _rules.inbox_bucket = inbox_bucket
    _rules.granted_kms_keys = frozenset(key.strip() for key in granted_kms_keys if key.strip())
    if _installed:
        return
    from moto.s3.responses import S3Response

    S3Response.put_object = _remembering_customer_keys(S3Response.put_object)  # type: ignore[method-assign]
    S3Response.get_object = _refusing(S3Response.get_object, with_kms=True)  # type: ignore[method-assign]
    S3Response.head_object = _refusing_head(S3Response.head_object)  # type: ignore[method-assign]
    _installed = True


def granted(kms_key_id: str, keys: frozenset[str]) -> bool:
    """A key named by its ARN, or by the key id the ARN ends with, is granted."""
    return any(kms_key_id == key or key.endswith(f":key/{kms_key_id}") for key in keys)


def _remembering_customer_keys(put: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(put)
    def put_object(response: Any) -> Any:
        answer = put(response)
        algorithm = response.headers.get(SSE_C_ALGORITHM)
        if algorithm:
            _, headers, _ = answer
            key = response.backend.get_object(
                response.bucket_name, response.parse_key_name(), version_id=headers.get("x-amz-version-id")
            )
            if key is not None:
                key.local_sse_c_key_md5 = response.headers.get(SSE_C_KEY_MD5, "")
        return answer

    return put_object


def _refusing(read: Callable[[Any], Any], *, with_kms: bool) -> Callable[[Any], Any]:
    @functools.wraps(read)
    def get_object(response: Any) -> Any:
        version_id = response.querystring.get("versionId", [None])[0]
        key = response.backend.get_object(response.bucket_name, response.parse_key_name(), version_id=version_id)
        refusal = _refusal(response, key, response.headers, with_kms=with_kms)
        return refusal or read(response)

    return get_object


def _refusing_head(head: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(head)
    def head_object(response: Any, bucket_name: str, query: dict[str, Any], key_name: str, headers: Any) -> Any:
        version_id = query.get("versionId", [None])[0]
        try:
            key = response.backend.get_object(bucket_name, key_name, version_id=version_id)
        except Exception:  # moto's own HEAD answers what does not exist
            key = None
        refusal = _refusal(response, key, headers, with_kms=False)
        if refusal is not None:
            return refusal[0], refusal[1], ""  # a HEAD answer has no body
        return head(response, bucket_name, query, key_name, headers)

    return head_object


def _refusal(response: Any, key: Any, headers: Any, *, with_kms: bool) -> tuple[int, dict[str, str], str] | None:
    if key is None:
        return None
    stored_md5 = getattr(key, "local_sse_c_key_md5", None)
    # Only a read without the key is refused: what S3 answers to a wrong key is not modelled.
    if stored_md5 is not None and not headers.get(SSE_C_ALGORITHM):
        return _error(400, "InvalidRequest", SSE_C_REFUSAL)
    if not with_kms or response.bucket_name != _rules.inbox_bucket:
        return None
    kms_key_id = str(getattr(key, "kms_key_id", None) or "")
    encrypted = str(getattr(key, "encryption", "") or "").startswith("aws:kms")
    if not encrypted or not kms_key_id or granted(kms_key_id, _rules.granted_kms_keys):
        return None
    caller = SUBMIT_ROLE_SESSION.format(account=response.current_account)
    return _error(
        403,
        "AccessDenied",
        f"User: {caller} is not authorized to perform: kms:Decrypt on resource: {kms_key_id} "
        "because no identity-based policy allows the kms:Decrypt action",
    )


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], str]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message><RequestId>local</RequestId></Error>"
    )
    return status, {"Content-Type": "application/xml"}, body
