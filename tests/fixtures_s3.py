"""S3 for tests: moto as a real HTTP server on 127.0.0.1, so botocore's whole stack runs.

The root conftest registers this module as a plugin: one moto server per test run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from server.settings import Settings

S3_REGION = "us-east-1"
S3_TEST_KEY = "testing"


def s3_client(endpoint: str) -> Any:
    """A plain boto3 client, independent of the code under test, to look at the bucket."""
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=S3_REGION,
        aws_access_key_id=S3_TEST_KEY, aws_secret_access_key=S3_TEST_KEY)


def s3_settings(base: Settings, endpoint: str, bucket: str, prefix: str = "blobs") -> Settings:
    return base.replace(
        blob_store=f"s3://{bucket}/{prefix}",
        s3_endpoint_url=endpoint,
        s3_region=S3_REGION,
        s3_access_key_id=S3_TEST_KEY,
        s3_secret_access_key=S3_TEST_KEY,
        s3_addressing_style="path",
    )


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Port 0: the OS picks a free port while binding, so two test runs cannot race for one."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> Iterator[str]:
    """A fresh bucket per test; emptied (all versions) and removed afterwards."""
    name = f"test-{uuid.uuid4().hex[:20]}"
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=name)
    yield name
    for page in client.get_paginator("list_object_versions").paginate(Bucket=name):
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            client.delete_object(Bucket=name, Key=item["Key"], VersionId=item["VersionId"])
    client.delete_bucket(Bucket=name)
