"""Blobs as objects in an S3 (or S3-compatible) bucket: ``<prefix>/ab/cd/<sha256>``."""

from __future__ import annotations

import base64
import datetime as dt
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, BinaryIO
from urllib.parse import urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    FlexibleChecksumError,
    HTTPClientError,
)

from server.settings import Settings
from server.storage.base import (
    BlobIntegrityError,
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    BlobStoreUnavailable,
    StoredObject,
    attachment_disposition,
    is_key,
    shard_path,
)

_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_TRANSIENT_CODES = frozenset({"RequestTimeout", "SlowDown", "ServiceUnavailable",
                              "InternalError", "Throttling", "ThrottlingException",
                              "RequestLimitExceeded"})
_DIGEST_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"})
_SHA256_METADATA = "sha256"
_MAX_PART_BYTES = 8 * 1024 * 1024


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` → ``("bucket", "some/prefix")``."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an s3://bucket[/prefix] URL: {url!r}")
    return parts.netloc, parts.path.strip("/")


class S3BlobStore(BlobStore):
    def __init__(self, settings: Settings) -> None:
        self.bucket, self.prefix = parse_s3_url(settings.blob_store)
        self._checksum_mode = settings.s3_checksum_mode
        self._transfer = TransferConfig(
            multipart_threshold=settings.s3_multipart_threshold_bytes,
            multipart_chunksize=min(settings.s3_multipart_threshold_bytes, _MAX_PART_BYTES),
            max_concurrency=4,
        )
        # s3transfer holds the parts of a file object in memory: at most 4 × 8 MiB per upload.
        self._transfer.max_in_memory_upload_chunks = 4
        # A session per store: boto3 clients are thread-safe, the default session is not.
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": settings.s3_addressing_style},
                connect_timeout=settings.s3_connect_timeout_seconds,
                read_timeout=settings.s3_read_timeout_seconds,
                retries={"total_max_attempts": 2, "mode": "standard"},
                request_checksum_calculation=settings.s3_checksum_mode,
                response_checksum_validation=settings.s3_checksum_mode,
            ),
        )

    def object_key(self, key: str) -> str:
        path = shard_path(key)
        return f"{self.prefix}/{path}" if self.prefix else path

    def put(self, key: str, fileobj: IO[bytes], *, size: int, sha256: str, md5: str,
            content_type: str) -> None:
        """Single PUT with Content-MD5 below the multipart threshold, multipart above it.

        In ``when_supported`` mode S3 also verifies SHA-256 (of the whole object for a single
        PUT, of each part for multipart). ``when_required`` sends only Content-MD5, which
        every S3-compatible store understands. Either way the stored size is checked after.
        """
        object_key = self.object_key(key)
        with _translated(f"put {object_key}"):
            if self._stored_size(object_key) == size:
                return
            metadata = {_SHA256_METADATA: sha256}
            flexible = self._checksum_mode == "when_supported"
            if size >= self._transfer.multipart_threshold:
                extra: dict[str, Any] = {"ContentType": content_type, "Metadata": metadata}
                if flexible:
                    extra["ChecksumAlgorithm"] = "SHA256"
                self.client.upload_fileobj(fileobj, self.bucket, object_key,
                                           ExtraArgs=extra, Config=self._transfer)
            else:
                checksums = {"ContentMD5": _b64(md5)}
                if flexible:
                    checksums["ChecksumSHA256"] = _b64(sha256)
                self.client.put_object(Bucket=self.bucket, Key=object_key, Body=fileobj,
                                       ContentType=content_type, Metadata=metadata, **checksums)
            stored = self._stored_size(object_key)
            if stored != size:
                self.client.delete_object(Bucket=self.bucket, Key=object_key)
                raise BlobIntegrityError(
                    f"blob {key}: stored {stored} bytes, expected {size}; deleted it")

    def open(self, key: str) -> BinaryIO:
        object_key = self.object_key(key)
        with _translated(f"get {object_key}"):
            response = self.client.get_object(Bucket=self.bucket, Key=object_key)
        return io.BufferedReader(_BodyReader(response["Body"], object_key))

    def exists(self, key: str) -> bool:
        object_key = self.object_key(key)
        with _translated(f"head {object_key}"):
            return self._stored_size(object_key) is not None

    def delete(self, key: str) -> None:
        """S3 answers a delete of a missing key with success, so this is idempotent."""
        object_key = self.object_key(key)
        with _translated(f"delete {object_key}"):
            self.client.delete_object(Bucket=self.bucket, Key=object_key)

    def download_url(self, key: str, *, filename: str, content_type: str,
                     expires_in: int) -> str | None:
        """A presigned GET that makes S3 answer with our filename and type."""
        object_key = self.object_key(key)
        with _translated(f"presign {object_key}"):
            return self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": object_key,
                    "ResponseContentDisposition": attachment_disposition(filename),
                    "ResponseContentType": content_type,
                },
                ExpiresIn=expires_in,
            )

    def iter_objects(self) -> Iterator[StoredObject]:
        """Only objects at a key's place under the prefix: the rest of the bucket is not ours.
        S3 lists only completed uploads."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._list_prefix)
        with _translated(f"list {self.bucket}/{self._list_prefix}"):
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"].rpartition("/")[2]
                    if is_key(name) and item["Key"] == self.object_key(name):
                        yield StoredObject(name, int(item["Size"]),
                                           item["LastModified"].astimezone(dt.timezone.utc))

    def delete_stale_uploads(self, started_before: dt.datetime) -> int:
        """Multipart uploads a killed process never completed nor aborted: S3 keeps (and
        bills) their parts until they are aborted."""
        aborted = 0
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self._list_prefix)
        with _translated(f"list uploads {self.bucket}/{self._list_prefix}"):
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < started_before:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                        aborted += 1
        return aborted

    @property
    def _list_prefix(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def check(self) -> None:
        """Any failure means blobs cannot be stored: a missing bucket or refused access too."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise BlobStoreUnavailable(f"S3 bucket {self.bucket} is not usable: {exc}") from exc

    def _stored_size(self, object_key: str) -> int | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=object_key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND_CODES:
                return None
            raise
        return int(head["ContentLength"])


class _BodyReader(io.RawIOBase):
    """Streams a StreamingBody, turning network failures mid-read into BlobStoreUnavailable."""

    def __init__(self, body: Any, object_key: str) -> None:
        self._body = body
        self._object_key = object_key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with _translated(f"read {self._object_key}"):
            data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """botocore's many exceptions → the store's few, which the API knows how to answer."""
    try:
        yield
    except (ConnectionError, HTTPClientError) as exc:
        raise BlobStoreUnavailable(f"S3 {action}: {exc}") from exc
    except FlexibleChecksumError as exc:
        raise BlobIntegrityError(f"S3 {action}: {exc}") from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = f"S3 {action}: {code} {error.get('Message', '')}".rstrip()
        if status >= 500 or code in _TRANSIENT_CODES:
            raise BlobStoreUnavailable(message) from exc
        if code in _DIGEST_CODES:
            raise BlobIntegrityError(message) from exc
        if code in _NOT_FOUND_CODES:
            raise BlobNotFound(message) from exc
        raise BlobStoreError(message) from exc
    except BotoCoreError as exc:
        raise BlobStoreError(f"S3 {action}: {exc}") from exc


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")
