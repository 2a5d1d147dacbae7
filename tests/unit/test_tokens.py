"""upscaler.tokens: per-job webhook tokens and the URL that carries one."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

from upscaler.tokens import token_is_valid, webhook_token, webhook_url_for

JOB = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"


def test_the_token_is_the_hmac_sha256_of_the_job_id_under_the_key():
    assert webhook_token(JOB, "key") == hmac.new(b"key", JOB.encode(), hashlib.sha256).hexdigest()
    assert webhook_token(JOB, "key") != webhook_token(JOB, "other key")
    assert webhook_token(JOB, "key") != webhook_token(JOB.replace("1", "2"), "key")


def test_only_the_jobs_own_token_under_the_same_key_is_valid():
    token = webhook_token(JOB, "key")
    assert token_is_valid(JOB, token, "key")
    assert not token_is_valid(JOB, token, "other key")
    assert not token_is_valid("another-job", token, "key")
    assert not token_is_valid(JOB, token[:-1], "key")
    assert not token_is_valid(JOB, "", "key")


def test_a_non_ascii_token_is_refused_not_an_error():
    assert not token_is_valid(JOB, "é" * 64, "key")


def test_the_url_carries_the_job_and_its_token():
    url = webhook_url_for("https://hooks.example.test/webhook", JOB, "key")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://hooks.example.test/webhook"
    assert parse_qs(parts.query) == {"job": [JOB], "token": [webhook_token(JOB, "key")]}


def test_a_base_url_with_a_query_keeps_it():
    url = webhook_url_for("https://hooks.example.test/webhook?stage=prod", JOB, "key")
    assert parse_qs(urlsplit(url).query) == {"stage": ["prod"], "job": [JOB], "token": [webhook_token(JOB, "key")]}
