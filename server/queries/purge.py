"""Purging soft-deleted submissions for good (``server.services.purge``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.models import Form, Submission


def purgeable(db: Session, cutoff: dt.datetime, limit: int, after_id: int = 0) -> list[Any]:
    """Up to ``limit`` submissions deleted before ``cutoff``, by id, after ``after_id``:
    ``(id, instance_id, form_id, xml_form_id, project_id)``."""
    return list(db.execute(
        select(Submission.id, Submission.instance_id, Submission.form_id, Form.xml_form_id,
               Form.project_id)
        .join(Form, Form.id == Submission.form_id)
        .where(Submission.deleted_at.is_not(None), Submission.deleted_at < cutoff,
               Submission.id > after_id)
        .order_by(Submission.id)
        .limit(limit)))


def delete_deleted(db: Session, ids: list[int], cutoff: dt.datetime) -> list[int]:
    """Delete these submissions (their versions, rows, attachment rows and comments go with
    them by cascade) if they are still deleted before ``cutoff``: one restored meanwhile is
    kept. Returns the ids deleted."""
    if not ids:
        return []
    return list(db.scalars(
        delete(Submission)
        .where(Submission.id.in_(ids), Submission.deleted_at.is_not(None),
               Submission.deleted_at < cutoff)
        .returning(Submission.id)))
