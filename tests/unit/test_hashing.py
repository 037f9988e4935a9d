from __future__ import annotations

import hashlib
import io
import os

import pytest

from server.storage import BlobTooLarge, hash_bytes, spool_and_hash
from server.storage.hashing import SPOOL_MEMORY_BYTES


class TrickleStream(io.RawIOBase):
    """Returns at most ``step`` bytes per read, like a socket, and counts what was consumed."""

    def __init__(self, data: bytes, step: int = 1000) -> None:
        self._data = data
        self._step = step
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = self._step if size < 0 else min(size, self._step)
        chunk = self._data[self.consumed:self.consumed + n]
        self.consumed += len(chunk)
        return chunk


def test_spool_and_hash__digests_and_size_match_hashlib() -> None:
    data = os.urandom(300_000)
    with spool_and_hash(io.BytesIO(data), chunk_size=4096) as blob:
        assert blob.sha256 == hashlib.sha256(data).hexdigest()
        assert blob.md5 == hashlib.md5(data).hexdigest()
        assert blob.size == len(data)
        assert blob.file.read() == data


def test_spool_and_hash__short_reads_are_all_collected() -> None:
    data = os.urandom(50_000)
    with spool_and_hash(TrickleStream(data, step=777)) as blob:
        assert blob.size == len(data)
        assert blob.file.read() == data


def test_spool_and_hash__empty_stream() -> None:
    with spool_and_hash(io.BytesIO(b"")) as blob:
        assert blob.size == 0
        assert blob.sha256 == hashlib.sha256(b"").hexdigest()
        assert blob.file.read() == b""


def test_spool_and_hash__large_upload_spills_to_disk_and_round_trips() -> None:
    data = os.urandom(SPOOL_MEMORY_BYTES + 12345)
    with spool_and_hash(io.BytesIO(data)) as blob:
        assert blob.file.tell() == 0
        assert blob.file._rolled  # type: ignore[attr-defined]  # spilled to a real file
        assert blob.file.read() == data


def test_spool_and_hash__small_upload_stays_in_memory() -> None:
    with spool_and_hash(io.BytesIO(b"x" * 1000)) as blob:
        assert not blob.file._rolled  # type: ignore[attr-defined]


def test_spool_and_hash__exactly_max_bytes_is_accepted() -> None:
    with spool_and_hash(io.BytesIO(b"a" * 100), max_bytes=100) as blob:
        assert blob.size == 100


def test_spool_and_hash__over_max_bytes_stops_reading_early() -> None:
    stream = TrickleStream(b"a" * 10_000_000, step=1 << 16)
    with pytest.raises(BlobTooLarge):
        spool_and_hash(stream, max_bytes=100_000, chunk_size=1 << 16)
    assert stream.consumed <= 100_000 + (1 << 16)


def test_spooled_blob__context_manager_closes_the_file() -> None:
    with spool_and_hash(io.BytesIO(b"data")) as blob:
        pass
    assert blob.file.closed


def test_hash_bytes__matches_hashlib() -> None:
    assert hash_bytes(b"hello") == (hashlib.sha256(b"hello").hexdigest(),
                                    hashlib.md5(b"hello").hexdigest())
