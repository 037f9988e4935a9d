"""The blob store interface: content-addressed bytes, keyed by their sha256 hex digest."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO
from urllib.parse import quote

DEFAULT_CHUNK_SIZE = 1 << 16

_KEY = re.compile(r"[0-9a-f]{64}")
_UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9._ -]")


class BlobStoreError(Exception):
    """Anything the blob store could not do."""


class BlobStoreUnavailable(BlobStoreError):
    """Transient: network, endpoint down, timeouts, 5xx, full disk. The API answers 503."""


class BlobIntegrityError(BlobStoreError):
    """The stored bytes do not verify against the size or checksum the caller gave."""


class BlobNotFound(BlobStoreError):
    """No blob is stored under the key."""


class BlobTooLarge(BlobStoreError):
    """An upload went past the size limit; reading stopped there."""


@dataclass(frozen=True)
class StoredObject:
    """A blob as the store sees it: its key, size and when it was last written (UTC)."""

    key: str
    size: int
    modified: dt.datetime


def is_key(name: object) -> bool:
    return isinstance(name, str) and _KEY.fullmatch(name) is not None


def check_key(key: str) -> str:
    """Only a sha256 hex digest is a key, so no caller-supplied name becomes a path or S3 key."""
    if not is_key(key):
        raise ValueError(f"blob key must be a lowercase sha256 hex digest, got {key!r}")
    return key


def shard_path(key: str) -> str:
    """``ab/cd/abcd…``: two directory levels keep any one directory small."""
    check_key(key)
    return f"{key[0:2]}/{key[2:4]}/{key}"


def attachment_disposition(filename: str) -> str:
    """A Content-Disposition with an ASCII fallback name and the exact UTF-8 name (RFC 6266/5987).

    Old clients read ``filename``, so it must be plain ASCII without quotes or separators;
    current browsers prefer ``filename*``.
    """
    decomposed = unicodedata.normalize("NFKD", filename)
    unaccented = "".join(c for c in decomposed if not unicodedata.combining(c))
    fallback = _UNSAFE_FILENAME_CHARS.sub("_", unaccented).strip(" .") or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


class BlobStore(ABC):
    """Durable storage of immutable blobs; the database holds their metadata."""

    @abstractmethod
    def put(self, key: str, fileobj: IO[bytes], *, size: int, sha256: str, md5: str,
            content_type: str) -> None:
        """Store the bytes read from ``fileobj`` (from its current position) under ``key``.

        Idempotent: a blob already stored under ``key`` is not written again. The bytes are
        verified against ``size`` and the checksums; a mismatch raises BlobIntegrityError and
        leaves nothing stored.
        """

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A readable stream of the blob; BlobNotFound if there is none."""

    def iter_chunks(self, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        """Opens eagerly, so a missing blob raises here and not after a response has started."""
        return _read_chunks(self.open(key), chunk_size)

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the blob; deleting a missing blob is not an error."""

    @abstractmethod
    def download_url(self, key: str, *, filename: str, content_type: str,
                     expires_in: int) -> str | None:
        """A URL clients can fetch the blob from directly, or None when the API must stream it."""

    def iter_keys(self) -> Iterator[str]:
        """Every stored key."""
        return (stored.key for stored in self.iter_objects())

    @abstractmethod
    def iter_objects(self) -> Iterator[StoredObject]:
        """Every stored blob with its age, for finding the ones no row refers to any more.

        Only complete blobs at a key's place: uploads in progress (or abandoned by a killed
        process) are not listed; ``delete_stale_uploads`` removes those.
        """

    @abstractmethod
    def delete_stale_uploads(self, started_before: dt.datetime) -> int:
        """Remove what unfinished uploads begun before ``started_before`` left behind (temp
        files, incomplete multipart uploads); returns how many were removed."""

    @abstractmethod
    def check(self) -> None:
        """Health check: raise BlobStoreUnavailable if the store cannot be used."""


def _read_chunks(stream: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(chunk_size):
            yield chunk
