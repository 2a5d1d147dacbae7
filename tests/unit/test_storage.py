"""create_s3_client() names the regional S3 endpoint of the region's partition (no network: the
client is only built and URLs only signed, which botocore does locally)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from upscaler.storage import create_s3_client


@pytest.fixture
def region_env(environment, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)

    def set_region(region: str) -> None:
        monkeypatch.setenv("AWS_REGION", region)
        monkeypatch.setenv("AWS_DEFAULT_REGION", region)

    return set_region


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [
        ("us-east-1", "https://s3.us-east-1.amazonaws.com"),  # regional, not the global s3.amazonaws.com
        ("eu-west-1", "https://s3.eu-west-1.amazonaws.com"),
        ("cn-north-1", "https://s3.cn-north-1.amazonaws.com.cn"),
        ("cn-northwest-1", "https://s3.cn-northwest-1.amazonaws.com.cn"),
        ("us-gov-west-1", "https://s3.us-gov-west-1.amazonaws.com"),
        ("eusc-de-east-1", "https://s3.eusc-de-east-1.amazonaws.eu"),
        # Regions newer than the installed botocore: the partition comes from its region pattern.
        ("cn-south-7", "https://s3.cn-south-7.amazonaws.com.cn"),
        ("us-gov-central-9", "https://s3.us-gov-central-9.amazonaws.com"),
    ],
)
def test_client_and_presigned_urls_use_the_partitions_regional_endpoint(region_env, region, endpoint):
    region_env(region)
    s3 = create_s3_client()
    assert s3.meta.endpoint_url == endpoint
    host = urlsplit(endpoint).netloc
    for method, params in (("get_object", {"VersionId": "v1"}), ("put_object", {})):
        url = s3.generate_presigned_url(method, Params={"Bucket": "photos", "Key": "a.png", **params}, ExpiresIn=60)
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("https", f"photos.{host}")  # virtual-hosted, same partition
        credential = dict(parse_qsl(parts.query))["X-Amz-Credential"].split("/")
        assert credential[2:4] == [region, "s3"]


def test_a_region_of_no_known_partition_falls_back_to_the_commercial_one(region_env):
    region_env("zz-nowhere-1")
    assert create_s3_client().meta.endpoint_url == "https://s3.zz-nowhere-1.amazonaws.com"


def test_a_custom_s3_endpoint_wins_and_is_path_style(region_env, monkeypatch):
    region_env("cn-north-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:4566")
    s3 = create_s3_client()
    assert s3.meta.endpoint_url == "http://127.0.0.1:4566"
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": "a.png"}, ExpiresIn=60)
    assert url.startswith("http://127.0.0.1:4566/photos/a.png?")
