"""Content-addressed blobs: identical bytes are stored once, bytes before rows.

The bytes go to the blob store (durably, verified) before the row is flushed, so a committed
row always has its bytes; a failure in between leaves at most an orphan object for clean-up.
"""

from __future__ import annotations

from typing import BinaryIO

from sqlalchemy.orm import Session

from server import queries
from server.models import Blob
from server.storage import BlobStore, spool_and_hash

DEFAULT_CONTENT_TYPE = "application/octet-stream"


def store_blob(db: Session, store: BlobStore, stream: BinaryIO, *,
               content_type: str | None = None, max_bytes: int | None = None) -> Blob:
    with spool_and_hash(stream, max_bytes=max_bytes) as spooled:
        existing = queries.blobs.get_by_sha256(db, spooled.sha256)
        if existing is not None:
            return existing
        store.put(spooled.sha256, spooled.file, size=spooled.size, sha256=spooled.sha256,
                  md5=spooled.md5, content_type=content_type or DEFAULT_CONTENT_TYPE)
        return queries.blobs.insert_if_absent(
            db, sha256=spooled.sha256, md5=spooled.md5, size=spooled.size,
            content_type=content_type or DEFAULT_CONTENT_TYPE)
