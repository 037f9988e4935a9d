from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import AuditEvent


def insert(db: Session, event: AuditEvent) -> AuditEvent:
    db.add(event)
    db.flush()
    return event


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
