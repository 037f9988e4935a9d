"""Content-addressed blob storage on local disk or S3, chosen by ``settings.blob_store``."""

from __future__ import annotations

from server.settings import Settings, resolve_path
from server.storage.base import (
    BlobIntegrityError,
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    BlobStoreUnavailable,
    BlobTooLarge,
    StoredObject,
    attachment_disposition,
    check_key,
    is_key,
)
from server.storage.hashing import SpooledBlob, hash_bytes, spool_and_hash
from server.storage.local import LocalBlobStore
from server.storage.s3 import S3BlobStore

__all__ = [
    "BlobIntegrityError",
    "BlobNotFound",
    "BlobStore",
    "BlobStoreError",
    "BlobStoreUnavailable",
    "BlobTooLarge",
    "LocalBlobStore",
    "S3BlobStore",
    "SpooledBlob",
    "StoredObject",
    "attachment_disposition",
    "check_key",
    "hash_bytes",
    "is_key",
    "open_blob_store",
    "spool_and_hash",
]


def open_blob_store(settings: Settings) -> BlobStore:
    """``s3://bucket[/prefix]`` is S3; anything else is a directory (relative to the cwd)."""
    if settings.blob_store_is_s3:
        return S3BlobStore(settings)
    return LocalBlobStore(resolve_path(settings.blob_store))
