"""Read an upload once: spool it and compute its sha256, md5 and size in the same pass."""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from dataclasses import dataclass
from types import TracebackType
from typing import IO

from server.storage.base import DEFAULT_CHUNK_SIZE, BlobTooLarge

SPOOL_MEMORY_BYTES = 1 << 20


@dataclass(frozen=True)
class SpooledBlob:
    """An upload's bytes (rewound, in memory up to 1 MiB, then on disk) and their digests."""

    file: IO[bytes]
    sha256: str
    md5: str
    size: int

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> SpooledBlob:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def spool_and_hash(stream: IO[bytes], *, max_bytes: int | None = None,
                   chunk_size: int = DEFAULT_CHUNK_SIZE) -> SpooledBlob:
    """Stops reading as soon as ``max_bytes`` is passed, so an oversized upload costs little."""
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    with contextlib.ExitStack() as close_on_error:
        spool: IO[bytes] = close_on_error.enter_context(
            tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES))
        while chunk := stream.read(chunk_size):
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise BlobTooLarge(f"more than {max_bytes} bytes")
            sha256.update(chunk)
            md5.update(chunk)
            spool.write(chunk)
        spool.seek(0)
        close_on_error.pop_all()
    return SpooledBlob(spool, sha256=sha256.hexdigest(), md5=md5.hexdigest(), size=size)


def hash_bytes(data: bytes) -> tuple[str, str]:
    """``(sha256, md5)`` hex digests of bytes already in memory."""
    return hashlib.sha256(data).hexdigest(), hashlib.md5(data, usedforsecurity=False).hexdigest()
