from __future__ import annotations

import datetime as dt

from sqlalchemy import Column, ColumnElement, and_, delete, exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from server.db import Base, utcnow
from server.models import Blob


def get(db: Session, blob_id: int) -> Blob | None:
    return db.get(Blob, blob_id)


def get_by_sha256(db: Session, sha256: str) -> Blob | None:
    return db.scalar(select(Blob).where(Blob.sha256 == sha256))


def insert_if_absent(db: Session, *, sha256: str, md5: str, size: int, content_type: str) -> Blob:
    """Insert the blob row unless one with this sha256 exists; race-free on both databases."""
    values = dict(sha256=sha256, md5=md5, size=size, content_type=content_type)
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    db.execute(insert(Blob).values(**values).on_conflict_do_nothing(index_elements=["sha256"]))
    blob = get_by_sha256(db, sha256)
    assert blob is not None
    return blob


def remove_inserted(db: Session, blob: Blob) -> None:
    """Take back a row this transaction just inserted (its bytes never made it)."""
    db.delete(blob)
    db.flush()


# -- clean-up (server/services/gc.py) -------------------------------------------------------

def _references() -> list[Column]:
    """Every column that refers to a blob, read from the models' foreign keys: a table that
    refers to blobs later is protected from the clean-up without touching it."""
    blobs = Blob.__table__
    return [fk.parent for table in Base.metadata.sorted_tables
            for fk in table.foreign_keys if fk.references(blobs)]


def blob_references() -> list[str]:
    """``table.column`` of every reference to a blob (for the clean-up's report and tests)."""
    return [f"{column.table.name}.{column.name}" for column in _references()]


def _unreferenced() -> ColumnElement[bool]:
    return and_(*(~exists().where(column == Blob.id) for column in _references()))


def list_unreferenced(db: Session, *, created_before: dt.datetime, after_id: int = 0,
                      limit: int = 500) -> list[tuple[int, str, int]]:
    """``(id, sha256, size)`` of blobs nothing refers to, oldest id first, ``after_id`` on."""
    return [tuple(row) for row in db.execute(
        select(Blob.id, Blob.sha256, Blob.size)
        .where(Blob.id > after_id, Blob.created_at < created_before, _unreferenced())
        .order_by(Blob.id).limit(limit))]


def lock_unreferenced(db: Session, ids: list[int]) -> list[tuple[int, str, int]]:
    """Lock these blob rows, then keep those still referenced by nothing.

    On PostgreSQL the rows are locked ``FOR UPDATE SKIP LOCKED``: a row a transaction is
    referring to right now (its foreign-key check holds ``FOR KEY SHARE`` on it until it
    ends) is skipped, and once locked no transaction can refer to it until this one ends.
    The second statement sees everything committed before the locks were taken (READ
    COMMITTED takes a new snapshot per statement), so "referenced by nothing" is then true
    and stays true. SQLite transactions hold the database's write lock throughout."""
    if not ids:
        return []
    lock = select(Blob.id).where(Blob.id.in_(ids))
    if db.get_bind().dialect.name == "postgresql":
        lock = lock.with_for_update(skip_locked=True)
    locked = list(db.scalars(lock))
    if not locked:
        return []
    return [tuple(row) for row in db.execute(
        select(Blob.id, Blob.sha256, Blob.size)
        .where(Blob.id.in_(locked), _unreferenced()).order_by(Blob.id))]


def delete_unreferenced(db: Session, ids: list[int]) -> list[str]:
    """Delete these blob rows if nothing refers to them; the deleted rows' sha256."""
    if not ids:
        return []
    return list(db.scalars(
        delete(Blob).where(Blob.id.in_(ids), _unreferenced()).returning(Blob.sha256)))


def existing_sha256(db: Session, sha256s: list[str]) -> set[str]:
    """Which of these have a blob row."""
    if not sha256s:
        return set()
    return set(db.scalars(select(Blob.sha256).where(Blob.sha256.in_(sha256s))))


def reserve_sha256(db: Session, sha256: str) -> bool:
    """Insert a placeholder row for ``sha256`` unless a row exists or is being inserted: the
    caller then holds the key (another insert of it waits) until it rolls back, which it
    always does. False when a row exists (a concurrent insert is waited for first)."""
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return bool(db.execute(
        insert(Blob).values(sha256=sha256, md5="", size=0, content_type="", created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["sha256"]).returning(Blob.id)).first())
