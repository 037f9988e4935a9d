from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

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
