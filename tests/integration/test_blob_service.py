"""Content-addressed blobs through the service: bytes once, rows once, bytes before rows."""

from __future__ import annotations

import hashlib
import io

import pytest
from sqlalchemy import func, select

from server.models import Blob
from server.services.blobs import store_blob
from server.storage import BlobStoreUnavailable, BlobTooLarge, LocalBlobStore, open_blob_store
from tests.fixtures_s3 import s3_client, s3_settings


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, settings):
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return open_blob_store(s3_settings(settings, endpoint, bucket))


def count_blobs(db) -> int:
    return db.scalar(select(func.count()).select_from(Blob))


def test_store_blob__records_hashes_and_stores_bytes(db, store):
    data = b"photo bytes \x00\xff" * 1000
    blob = store_blob(db, store, io.BytesIO(data), content_type="image/jpeg")
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert blob.md5 == hashlib.md5(data).hexdigest()
    assert blob.size == len(data)
    assert blob.content_type == "image/jpeg"
    assert b"".join(store.iter_chunks(blob.sha256)) == data


def test_store_blob__identical_bytes_are_one_row_and_one_object(db, store):
    before = count_blobs(db)
    first = store_blob(db, store, io.BytesIO(b"same"), content_type="text/csv")
    second = store_blob(db, store, io.BytesIO(b"same"), content_type="application/octet-stream")
    assert first.id == second.id
    assert count_blobs(db) == before + 1
    assert list(store.iter_keys()).count(first.sha256) == 1


def test_store_blob__over_the_limit_stores_nothing(db, store):
    before = count_blobs(db)
    with pytest.raises(BlobTooLarge):
        store_blob(db, store, io.BytesIO(b"x" * 101), max_bytes=100)
    assert count_blobs(db) == before
    assert list(store.iter_keys()) == []


def test_store_blob__store_outage_leaves_no_row(db, settings):
    dead = open_blob_store(settings.replace(
        blob_store="s3://nowhere/blobs", s3_endpoint_url="http://127.0.0.1:1",
        s3_region="us-east-1", s3_access_key_id="x", s3_secret_access_key="x",
        s3_connect_timeout_seconds=0.5, s3_read_timeout_seconds=0.5))
    before = count_blobs(db)
    with pytest.raises(BlobStoreUnavailable):
        store_blob(db, dead, io.BytesIO(b"never stored"))
    assert count_blobs(db) == before


def test_store_blob__through_s3_settings_lands_in_the_bucket(db, settings, s3_endpoint,
                                                             s3_bucket):
    store = open_blob_store(s3_settings(settings, s3_endpoint, s3_bucket, prefix="dodoso"))
    data = b"interview audio" * 5000
    blob = store_blob(db, store, io.BytesIO(data), content_type="audio/amr")
    key = f"dodoso/{blob.sha256[:2]}/{blob.sha256[2:4]}/{blob.sha256}"
    raw = s3_client(s3_endpoint).get_object(Bucket=s3_bucket, Key=key)
    assert raw["Body"].read() == data
