from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import insert as sql_insert
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import AuditEvent

_INSERT = sql_insert(AuditEvent.__table__)


def insert(db: Session, values: dict[str, Any]) -> None:
    """A Core insert, built once: every write request records one, so it stays cheap."""
    db.execute(_INSERT, values)


def list_(db: Session, *, project_id: int | None = None, action: str | None = None,
          start: dt.datetime | None = None, end: dt.datetime | None = None,
          limit: int = 100, offset: int = 0) -> list[AuditEvent]:
    stmt = select(AuditEvent)
    if project_id is not None:
        stmt = stmt.where(AuditEvent.project_id == project_id)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action) if "*" not in action else stmt.where(
            AuditEvent.action.like(action.replace("*", "%")))
    if start is not None:
        stmt = stmt.where(AuditEvent.logged_at >= start)
    if end is not None:
        stmt = stmt.where(AuditEvent.logged_at < end)
    stmt = stmt.order_by(AuditEvent.logged_at.desc(), AuditEvent.id.desc())
    return list(db.scalars(stmt.limit(limit).offset(offset)))
