"""The blob clean-up: blob rows nothing refers to, and stored bytes no blob row owns.

Where garbage comes from:
- a row nothing refers to: an export that expired, a form draft or media file replaced, a
  request that stored a blob and then lost a race for the same instanceID;
- bytes without a row: a request that stored a file and then failed before its transaction
  committed (the database went away, the worker was killed, a later file was refused) —
  bytes are written before rows, so a failure leaves bytes, never a row without bytes;
- temp files and incomplete multipart uploads of a process killed mid-upload.

Only what is older than a grace period is touched (default a day): well past the longest
request, and it leaves time to notice a bad restore before its evidence is cleaned away.

Why this is safe while submissions keep arriving. Ingest (``server.services.blobs
.store_blob``) looks a blob up by sha256 and reuses the row it finds; otherwise it writes the
bytes and inserts the row, and the request commits after both.

1. A row nothing refers to is deleted, and its bytes with it, in one transaction that holds
   the row locked. The row is locked ``FOR UPDATE SKIP LOCKED`` (a row some transaction is
   referring to right now is skipped: its foreign-key check holds ``FOR KEY SHARE`` on it),
   then checked again for references in a new statement, which sees every reference
   committed before the lock was taken; from then on nobody can add one, since that needs
   the lock. The bytes are deleted while the row's deletion is uncommitted, so:
   - a request that still sees the row reuses it, and its foreign-key check waits for this
     transaction and then fails; the OpenRosa route runs the request again, which finds no
     row and writes the bytes afresh (they are already gone, so nothing deletes them later);
   - a request that no longer sees the row starts after the commit, when the bytes are
     already gone, and writes them again.
   If deleting bytes fails, the row is deleted anyway: the bytes left are an orphan for a
   later run, never a row without bytes. If the commit itself fails after the bytes went
   (the database lost at that very moment), the row stays without bytes until the next
   request that stores those bytes: ``store_blob`` always calls ``put`` (which skips bytes
   already stored), so it writes them back (tests/integration/test_blob_gc.py).
2. Bytes without a row are deleted while holding their sha256's key in the blobs table: a
   placeholder row is inserted (waiting for any insert of that sha256 in flight; refused if
   a row exists) and rolled back once the bytes are gone. The grace period covers requests
   in flight, whose bytes are younger than it. When the same bytes arrive again while
   their old orphan copy is collected, ``store_blob`` has inserted the row before it puts
   the bytes, so the placeholder waits for that row and the clean-up leaves them alone.

On SQLite every transaction holds the database's write lock from its start, so a request's
look-up, bytes and rows cannot interleave with a clean-up transaction at all.

The clean-up commits as it goes (a batch of rows per transaction, one orphan per
transaction): the order of the commits is what makes it safe, so unlike other services it
ends its own transactions.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from server import queries
from server.db import utcnow
from server.logs import log
from server.models import Job
from server.services.jobs import blob_store, handler, run_every
from server.storage import BlobStore, BlobStoreError, StoredObject

DEFAULT_GRACE = dt.timedelta(hours=24)
ROWS_PER_TRANSACTION = 200
OBJECTS_PER_LOOKUP = 500

T = TypeVar("T")


@dataclass
class GcReport:
    dry_run: bool
    grace_seconds: float
    rows_deleted: int = 0
    """Blob rows referenced by nothing, deleted with their bytes."""
    orphans_deleted: int = 0
    """Stored blobs with no row, deleted."""
    bytes_freed: int = 0
    stale_uploads_removed: int = 0
    skipped_in_use: int = 0
    """Candidates a request was referring to (or inserting) as they were looked at."""
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {_camel(k): v for k, v in asdict(self).items()}


def collect_garbage(db: Session, store: BlobStore, *, grace: dt.timedelta = DEFAULT_GRACE,
                    dry_run: bool = False, now: dt.datetime | None = None) -> GcReport:
    """Delete what nothing refers to and is older than ``grace``; with ``dry_run`` only
    count it. A blob store failure stops the run (reported in ``errors``); what was done
    until then is committed."""
    if grace < dt.timedelta(0):
        raise ValueError("the grace period cannot be negative")
    cutoff = (now or utcnow()) - grace
    report = GcReport(dry_run=dry_run, grace_seconds=grace.total_seconds())
    try:
        _unreferenced_rows(db, store, cutoff, report)
        _orphan_objects(db, store, cutoff, report)
        if not dry_run:
            report.stale_uploads_removed = store.delete_stale_uploads(cutoff)
    except BlobStoreError as exc:
        db.rollback()
        report.errors.append(f"{type(exc).__name__}: {exc}")
    log.info("blobs_gc", **report.to_json())
    return report


def _unreferenced_rows(db: Session, store: BlobStore, cutoff: dt.datetime,
                       report: GcReport) -> None:
    after = 0
    while candidates := queries.blobs.list_unreferenced(
            db, created_before=cutoff, after_id=after, limit=ROWS_PER_TRANSACTION):
        after = candidates[-1][0]
        if report.dry_run:
            db.rollback()
            report.rows_deleted += len(candidates)
            report.bytes_freed += sum(size for _, _, size in candidates)
            continue
        confirmed = queries.blobs.lock_unreferenced(db, [blob_id for blob_id, _, _ in candidates])
        report.skipped_in_use += len(candidates) - len(confirmed)
        sizes = {sha256: size for _, sha256, size in confirmed}
        deleted = queries.blobs.delete_unreferenced(db, [blob_id for blob_id, _, _ in confirmed])
        failure = None
        for sha256 in deleted:
            try:
                store.delete(sha256)
            except BlobStoreError as exc:  # the bytes left are an orphan for a later run
                failure = exc
                break
            report.bytes_freed += sizes[sha256]
        db.commit()
        report.rows_deleted += len(deleted)
        if failure is not None:
            raise failure


def _orphan_objects(db: Session, store: BlobStore, cutoff: dt.datetime,
                    report: GcReport) -> None:
    for chunk in _chunks(store.iter_objects(), OBJECTS_PER_LOOKUP):
        old = {o.key: o for o in chunk if o.modified < cutoff}
        owned = queries.blobs.existing_sha256(db, list(old))
        db.rollback()
        for key in sorted(old.keys() - owned):
            if report.dry_run or _delete_orphan(db, store, old[key]):
                report.orphans_deleted += 1
                report.bytes_freed += old[key].size
            else:
                report.skipped_in_use += 1


def _delete_orphan(db: Session, store: BlobStore, stored: StoredObject) -> bool:
    try:
        if not queries.blobs.reserve_sha256(db, stored.key):
            return False  # a row appeared meanwhile: the bytes are in use
        store.delete(stored.key)
        return True
    finally:
        db.rollback()


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


# -- the background job ---------------------------------------------------------------------

@handler("blobs.gc")
def gc_job(db: Session, job: Job) -> dict[str, Any]:
    """Payload: ``graceMinutes`` (default a day), ``dryRun``. A blob store failure fails the
    attempt (retried later) after committing what was done."""
    minutes = job.payload.get("graceMinutes")
    grace = DEFAULT_GRACE if minutes is None else dt.timedelta(minutes=float(minutes))
    report = collect_garbage(db, blob_store(db), grace=grace,
                             dry_run=bool(job.payload.get("dryRun", False)))
    if report.errors:
        raise RuntimeError("; ".join(report.errors))
    return report.to_json()


run_every("blobs.gc", dt.timedelta(hours=6))
