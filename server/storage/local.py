"""Blobs as files under a root directory: ``<root>/ab/cd/<sha256>``."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

from server.storage.base import (
    DEFAULT_CHUNK_SIZE,
    BlobIntegrityError,
    BlobNotFound,
    BlobStore,
    BlobStoreUnavailable,
    StoredObject,
    check_key,
    is_key,
    shard_path,
)

_TEMP_PREFIX = ".tmp-"


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / shard_path(key)

    def put(self, key: str, fileobj: IO[bytes], *, size: int, sha256: str, md5: str,
            content_type: str) -> None:
        """Write a temp file beside the target, fsync, verify, then rename it into place.

        The rename is atomic, so readers and concurrent puts of the same key only ever see
        a complete file; a file of the right size is therefore a finished earlier put.
        """
        path = self._path(key)
        try:
            if path.is_file() and path.stat().st_size == size:
                return
            self._make_dirs(path.parent)
            fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    written, digest = _copy_and_hash(fileobj, out)
                    out.flush()
                    os.fsync(out.fileno())
                if written != size or digest != sha256:
                    raise BlobIntegrityError(
                        f"blob {key}: wrote {written} bytes with sha256 {digest}, "
                        f"expected {size} bytes with sha256 {sha256}")
                os.replace(temp_name, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp_name)
                raise
            _fsync_dir(path.parent)
        except OSError as exc:
            raise BlobStoreUnavailable(f"blob {key}: cannot write: {exc}") from exc

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        except OSError as exc:
            raise BlobStoreUnavailable(f"blob {key}: cannot read: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise BlobStoreUnavailable(f"blob {key}: cannot delete: {exc}") from exc

    def download_url(self, key: str, *, filename: str, content_type: str,
                     expires_in: int) -> str | None:
        """There is no URL to hand out; the API streams the file itself."""
        check_key(key)
        return None

    def iter_objects(self) -> Iterator[StoredObject]:
        """Only files named by a key at that key's place: temp files and strays are skipped.
        A file that disappears while the tree is walked (deleted meanwhile) is skipped too."""
        for path in self.root.glob("??/??/*"):
            name = path.name
            if not (is_key(name) and path == self._path(name)):
                continue
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise BlobStoreUnavailable(f"blob {name}: cannot stat: {exc}") from exc
            if stat.S_ISREG(info.st_mode):
                yield StoredObject(name, info.st_size, _utc(info.st_mtime))

    def delete_stale_uploads(self, started_before: dt.datetime) -> int:
        """Temp files of puts that never finished (the process was killed mid-write)."""
        removed = 0
        for path in self.root.glob(f"??/??/{_TEMP_PREFIX}*"):
            try:
                if _utc(path.stat().st_mtime) < started_before:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise BlobStoreUnavailable(f"temp file {path.name}: cannot remove: {exc}") \
                    from exc
        return removed

    def check(self) -> None:
        """The root must exist (it is created on first use) and accept a new file."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(prefix=_TEMP_PREFIX, dir=self.root):
                pass
        except OSError as exc:
            raise BlobStoreUnavailable(f"blob store {self.root} is not writable: {exc}") from exc

    def _make_dirs(self, directory: Path) -> None:
        """New shard directories are fsynced into their parents so a crash cannot lose them."""
        if directory.is_dir():
            return
        directory.mkdir(parents=True, exist_ok=True)
        _fsync_dir(directory.parent)
        _fsync_dir(directory.parent.parent)


def _copy_and_hash(src: IO[bytes], dst: IO[bytes]) -> tuple[int, str]:
    digest = hashlib.sha256()
    written = 0
    while chunk := src.read(DEFAULT_CHUNK_SIZE):
        dst.write(chunk)
        digest.update(chunk)
        written += len(chunk)
    return written, digest.hexdigest()


def _utc(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
