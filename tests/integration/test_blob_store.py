"""The same behaviour checked on local disk and on S3 (moto as a real HTTP server)."""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import os
import socket
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.settings import Settings
from server.storage import (
    BlobIntegrityError,
    BlobNotFound,
    BlobStore,
    BlobStoreUnavailable,
    LocalBlobStore,
    S3BlobStore,
    open_blob_store,
)
from tests.fixtures_s3 import s3_client, s3_settings

MiB = 1 << 20
BASE = Settings(env="test")
BAD_KEYS = [
    "../etc/passwd",
    "../" + "a" * 61,
    "a" * 63,
    "a" * 65,
    "A" * 64,
    "g" * 64,
    "a" * 64 + "\n",
    "aa/bb/" + "a" * 58,
    "",
]


@dataclass(frozen=True)
class Blob:
    data: bytes

    @property
    def key(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data).hexdigest()


def put(store: BlobStore, blob: Blob, **overrides: Any) -> None:
    args: dict[str, Any] = dict(size=len(blob.data), sha256=blob.key, md5=blob.md5,
                                content_type="application/octet-stream")
    args.update(overrides)
    store.put(blob.key, io.BytesIO(blob.data), **args)


def object_key(key: str, prefix: str = "blobs") -> str:
    """Where the blob must land in the bucket, spelled out independently of the code."""
    return f"{prefix}/{key[0:2]}/{key[2:4]}/{key}" if prefix else f"{key[0:2]}/{key[2:4]}/{key}"


class UnreadableStream(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise AssertionError("the store read the bytes of a blob it already holds")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_store(backend: str, request: pytest.FixtureRequest,
               tmp_path: Path) -> Callable[..., BlobStore]:
    """Builds a store for the backend; S3 starts moto only for the tests that need it."""
    def make(**changes: Any) -> BlobStore:
        if backend == "local":
            return open_blob_store(BASE.replace(blob_store=str(tmp_path / "blobs"), **changes))
        settings = s3_settings(BASE, request.getfixturevalue("s3_endpoint"),
                               request.getfixturevalue("s3_bucket"))
        return open_blob_store(settings.replace(**changes))
    return make


@pytest.fixture
def store(make_store: Callable[..., BlobStore]) -> BlobStore:
    return make_store()


def raw_s3_for(request: pytest.FixtureRequest) -> Any:
    return s3_client(request.getfixturevalue("s3_endpoint"))


def test_put_open__small_blob_round_trips(store: BlobStore, backend: str,
                                          request: pytest.FixtureRequest) -> None:
    blob = Blob(b"<data>hello</data>")
    put(store, blob, content_type="text/xml")

    with store.open(blob.key) as f:
        assert f.read(6) == b"<data>"
        assert f.read() == b"hello</data>"
    assert b"".join(store.iter_chunks(blob.key, chunk_size=4)) == blob.data
    if backend == "s3":
        raw = raw_s3_for(request).get_object(Bucket=request.getfixturevalue("s3_bucket"),
                                             Key=object_key(blob.key))
        assert raw["Body"].read() == blob.data
        assert raw["ContentType"] == "text/xml"
        assert raw["Metadata"] == {"sha256": blob.key}


def test_put_open__multipart_sized_blob_round_trips(make_store: Callable[..., BlobStore],
                                                    backend: str,
                                                    request: pytest.FixtureRequest) -> None:
    store = make_store(s3_multipart_threshold_bytes=5 * MiB)
    blob = Blob(os.urandom(6 * MiB + 123))
    put(store, blob)

    with store.open(blob.key) as f:
        assert f.read() == blob.data
    assert b"".join(store.iter_chunks(blob.key)) == blob.data
    if backend == "s3":
        raw = raw_s3_for(request).get_object(Bucket=request.getfixturevalue("s3_bucket"),
                                             Key=object_key(blob.key))
        assert "-" in raw["ETag"], "a multipart upload's ETag is <md5 of md5s>-<parts>"
        assert raw["Body"].read() == blob.data


def test_put__identical_bytes_are_stored_once(store: BlobStore, backend: str,
                                              request: pytest.FixtureRequest,
                                              tmp_path: Path) -> None:
    blob = Blob(b"same bytes")
    if backend == "s3":
        raw = raw_s3_for(request)
        bucket = request.getfixturevalue("s3_bucket")
        raw.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    put(store, blob)
    if backend == "local":
        path = tmp_path / "blobs" / blob.key[0:2] / blob.key[2:4] / blob.key
        before = path.stat()

    store.put(blob.key, UnreadableStream(), size=len(blob.data), sha256=blob.key,
              md5=blob.md5, content_type="application/octet-stream")
    put(store, blob)

    if backend == "local":
        after = path.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    else:
        versions = raw.list_object_versions(Bucket=bucket)["Versions"]
        assert [v["Key"] for v in versions] == [object_key(blob.key)]


def test_exists_delete__are_idempotent(store: BlobStore) -> None:
    blob = Blob(b"to be deleted")
    assert not store.exists(blob.key)
    store.delete(blob.key)

    put(store, blob)
    assert store.exists(blob.key)
    store.delete(blob.key)
    store.delete(blob.key)

    assert not store.exists(blob.key)
    with pytest.raises(BlobNotFound):
        store.open(blob.key)


def test_open__missing_blob_raises_not_found_before_streaming(store: BlobStore) -> None:
    missing = Blob(b"never stored").key
    with pytest.raises(BlobNotFound):
        store.open(missing)
    with pytest.raises(BlobNotFound):
        store.iter_chunks(missing)


@pytest.mark.parametrize("bad_key", BAD_KEYS)
def test_bad_key__is_rejected_by_every_method(store: BlobStore, bad_key: str) -> None:
    blob = Blob(b"payload")
    calls: list[Callable[[], object]] = [
        lambda: store.put(bad_key, io.BytesIO(blob.data), size=len(blob.data),
                          sha256=blob.key, md5=blob.md5, content_type="text/plain"),
        lambda: store.open(bad_key),
        lambda: store.iter_chunks(bad_key),
        lambda: store.exists(bad_key),
        lambda: store.delete(bad_key),
        lambda: store.download_url(bad_key, filename="x", content_type="text/plain",
                                   expires_in=60),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()
    assert list(store.iter_keys()) == []


def test_put__sha256_mismatch_raises_and_leaves_no_file(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    blob = Blob(b"the real bytes")
    claimed = Blob(b"other bytes").key

    with pytest.raises(BlobIntegrityError):
        store.put(claimed, io.BytesIO(blob.data), size=len(blob.data), sha256=claimed,
                  md5=blob.md5, content_type="text/plain")

    assert not store.exists(claimed)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_put__size_mismatch_raises_and_leaves_nothing_stored(store: BlobStore, backend: str,
                                                             request: pytest.FixtureRequest,
                                                             tmp_path: Path) -> None:
    blob = Blob(b"twelve bytes")
    with pytest.raises(BlobIntegrityError):
        put(store, blob, size=len(blob.data) + 1)

    assert not store.exists(blob.key)
    if backend == "local":
        assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    else:
        listing = raw_s3_for(request).list_objects_v2(Bucket=request.getfixturevalue("s3_bucket"))
        assert listing.get("Contents", []) == []


def test_put__disk_error_is_unavailable_and_leaves_no_temp_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    blob = Blob(b"no room for me")

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(BlobStoreUnavailable):
        put(store, blob)

    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_put__concurrent_puts_of_one_key_all_succeed(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    blob = Blob(os.urandom(2 * MiB))
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            put(store, blob)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    with store.open(blob.key) as f:
        assert f.read() == blob.data
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [blob.key]


def test_iter_keys__lists_stored_blobs_and_nothing_else(store: BlobStore, backend: str,
                                                        request: pytest.FixtureRequest,
                                                        tmp_path: Path) -> None:
    blobs = [Blob(f"blob {i}".encode()) for i in range(3)]
    for blob in blobs:
        put(store, blob)
    stray = Blob(b"stray").key
    if backend == "local":
        root = tmp_path / "blobs"
        (root / "README").write_text("not a blob")
        (root / blobs[0].key[0:2] / blobs[0].key[2:4] / f".tmp-{stray}").write_bytes(b"x")
        misplaced = root / "00" / "00" / stray
        misplaced.parent.mkdir(parents=True)
        misplaced.write_bytes(b"x")
    else:
        raw, bucket = raw_s3_for(request), request.getfixturevalue("s3_bucket")
        for key in ("README", f"other/{object_key(stray)}", f"blobs/00/00/{stray}"):
            raw.put_object(Bucket=bucket, Key=key, Body=b"x")

    assert sorted(store.iter_keys()) == sorted(b.key for b in blobs)


def test_check__healthy_store_passes(store: BlobStore) -> None:
    store.check()


def test_download_url__local_is_none(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    blob = Blob(b"bytes")
    put(store, blob)
    assert store.download_url(blob.key, filename="a.txt", content_type="text/plain",
                              expires_in=60) is None


def test_download_url__s3_presigned_url_serves_the_blob_as_attachment(
        s3_endpoint: str, s3_bucket: str) -> None:  # noqa: F811
    store = open_blob_store(s3_settings(BASE, s3_endpoint, s3_bucket))
    blob = Blob(b"%PDF-1.4 pretend")
    put(store, blob)

    url = store.download_url(blob.key, filename='Résumé 2024 "final".pdf',
                             content_type="application/pdf", expires_in=60)

    assert url is not None and "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == blob.data
        assert response.headers["Content-Type"] == "application/pdf"
        disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert 'filename="Resume 2024 _final_.pdf"' in disposition
    assert "filename*=UTF-8''R%C3%A9sum%C3%A9%202024%20%22final%22.pdf" in disposition


@pytest.mark.parametrize("mode", ["when_supported", "when_required"])
def test_s3_put__checksum_headers_follow_the_mode(s3_endpoint: str, s3_bucket: str,  # noqa: F811
                                                  mode: str) -> None:
    store = open_blob_store(s3_settings(BASE, s3_endpoint, s3_bucket).replace(
        s3_checksum_mode=mode, s3_multipart_threshold_bytes=5 * MiB))
    assert isinstance(store, S3BlobStore)
    sent: dict[str, list[dict[str, str]]] = {"PutObject": [], "UploadPart": []}
    for operation, requests in sent.items():
        store.client.meta.events.register(
            f"before-send.s3.{operation}",
            lambda request, requests=requests, **_: requests.append(
                {k.lower(): (v.decode() if isinstance(v, bytes) else v)
                 for k, v in request.headers.items()}))
    small, large = Blob(b"small"), Blob(os.urandom(6 * MiB))

    put(store, small)
    put(store, large)

    [single] = sent["PutObject"]
    assert single["content-md5"] == base64.b64encode(hashlib.md5(small.data).digest()).decode()
    parts = sent["UploadPart"]
    assert len(parts) == 2
    sha256_b64 = base64.b64encode(hashlib.sha256(small.data).digest()).decode()
    if mode == "when_supported":
        assert single["x-amz-checksum-sha256"] == sha256_b64
        assert all("x-amz-checksum-sha256" in h for h in parts)
    else:
        assert not [k for h in [single, *parts] for k in h if "checksum" in k]
    for blob in (small, large):
        with store.open(blob.key) as f:
            assert f.read() == blob.data


def test_s3_put__without_prefix_lands_at_the_bucket_root(s3_endpoint: str,  # noqa: F811
                                                         s3_bucket: str) -> None:  # noqa: F811
    store = open_blob_store(s3_settings(BASE, s3_endpoint, s3_bucket, prefix=""))
    blob = Blob(b"at the root")
    put(store, blob)

    raw = s3_client(s3_endpoint).get_object(Bucket=s3_bucket,
                                            Key=object_key(blob.key, prefix=""))
    assert raw["Body"].read() == blob.data
    assert list(store.iter_keys()) == [blob.key]


def test_s3__unreachable_endpoint_is_unavailable() -> None:
    settings = s3_settings(BASE, f"http://127.0.0.1:{closed_port()}", "bucket").replace(
        s3_connect_timeout_seconds=0.5, s3_read_timeout_seconds=0.5)
    store = open_blob_store(settings)
    blob = Blob(b"nowhere to go")

    with pytest.raises(BlobStoreUnavailable):
        put(store, blob)
    with pytest.raises(BlobStoreUnavailable):
        store.check()
    with pytest.raises(BlobStoreUnavailable):
        store.open(blob.key)


def test_s3_check__missing_bucket_is_unavailable(s3_endpoint: str) -> None:  # noqa: F811
    store = open_blob_store(s3_settings(BASE, s3_endpoint, "no-such-bucket"))
    with pytest.raises(BlobStoreUnavailable):
        store.check()


def test_open_blob_store__relative_local_path_is_under_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_blob_store(BASE.replace(blob_store="data/blobs"))
    assert isinstance(store, LocalBlobStore)
    assert store.root == tmp_path / "data" / "blobs"


@pytest.mark.parametrize(("url", "bucket", "prefix"), [
    ("s3://bk/a/b/", "bk", "a/b"),
    ("s3://bk/blobs", "bk", "blobs"),
    ("s3://bk", "bk", ""),
])
def test_open_blob_store__s3_url_gives_bucket_and_prefix(url: str, bucket: str,
                                                         prefix: str) -> None:
    store = open_blob_store(BASE.replace(blob_store=url, s3_region="us-east-1"))
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix) == (bucket, prefix)
    key = Blob(b"k").key
    assert store.object_key(key) == object_key(key, prefix=prefix)
