"""Content-addressed blobs: identical bytes are stored once, bytes before rows.

The bytes go to the blob store (durably, verified) before the request commits, so a
committed row always has its bytes; a failure in between leaves at most an orphan object for
clean-up.
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
    """The row first, then the bytes, then (the caller's) commit: the row, uncommitted,
    holds the sha256's key, so the clean-up cannot take the bytes away meanwhile (see
    ``server.services.gc``), and a failed put rolls the row back with the request. The
    bytes are put even when a row already exists (``put`` skips bytes already stored), so a
    row whose bytes a clean-up removed before losing its commit gets them back."""
    with spool_and_hash(stream, max_bytes=max_bytes) as spooled:
        content_type = content_type or DEFAULT_CONTENT_TYPE
        blob = queries.blobs.get_by_sha256(db, spooled.sha256)
        inserted = blob is None
        if blob is None:
            blob = queries.blobs.insert_if_absent(
                db, sha256=spooled.sha256, md5=spooled.md5, size=spooled.size,
                content_type=content_type)
        try:
            store.put(spooled.sha256, spooled.file, size=spooled.size, sha256=spooled.sha256,
                      md5=spooled.md5, content_type=content_type)
        except BaseException:
            if inserted:  # nothing half-stored, even for a caller that carries on
                queries.blobs.remove_inserted(db, blob)
            raise
        return blob
