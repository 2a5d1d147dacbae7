"""Per-job webhook tokens: HMAC-SHA256 of the job id under a secret key.

Runware documents no signature header for webhooks; a token in the URL's query string is its
documented way, so each job's URL carries one that only this deployment can produce.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode


def webhook_token(job_id: str, key: str) -> str:
    return hmac.new(key.encode(), job_id.encode(), hashlib.sha256).hexdigest()


def token_is_valid(job_id: str, token: str, key: str) -> bool:
    # Bytes, not str: compare_digest raises TypeError on non-ASCII text, and the token is caller input.
    return hmac.compare_digest(webhook_token(job_id, key).encode(), token.encode())


def webhook_url_for(base_url: str, job_id: str, key: str) -> str:
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}{urlencode({'job': job_id, 'token': webhook_token(job_id, key)})}"
