"""The SQL of the change feed: which submissions of a form changed (were created, edited,
reviewed, deleted or restored) since a point that no late commit can slip behind.

PostgreSQL: the point is a transaction snapshot (``pg_current_snapshot()``). A row changed
since snapshot S is one whose last writer (its ``xmin``) is not visible in S: either it had
not started when S was taken, or it was still in progress, however early it stamped its
timestamps or took its ids. So a transaction that commits late is never skipped.

SQLite: writers take the database's one write lock when their transaction begins (``BEGIN
IMMEDIATE``) and hold it until they commit, so transactions commit in the order they stamp
``updated_at``/``created_at``: the point is the last ``(stamp, id)`` handed out.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, text
from sqlalchemy.orm import Session

from server.models import Submission, SubmissionDef

# xmin is a 32-bit transaction id; pg_visible_in_snapshot takes a 64-bit one (xid8). The
# 64-bit id is the largest one at or below the snapshot's xmax with the same low 32 bits.
_XMIN8 = ("((SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint) - "
          "((((SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint) % 4294967296) "
          "- submissions.xmin::text::bigint + 4294967296) % 4294967296))::text::xid8")


def stamp() -> ColumnElement[dt.datetime]:
    """When a submission last changed: every change after creation sets ``updated_at``."""
    return func.coalesce(Submission.updated_at, Submission.created_at)


def _select(form_id: int):
    return (select(Submission.id, Submission.instance_id, Submission.review_state,
                   Submission.created_at, Submission.updated_at, Submission.deleted_at,
                   SubmissionDef.instance_id.label("current_instance_id"),
                   SubmissionDef.created_at.label("current_created_at"),
                   stamp().label("stamp"))
            .join(SubmissionDef, and_(SubmissionDef.submission_id == Submission.id,
                                      SubmissionDef.current.is_(True)))
            .where(Submission.form_id == form_id, Submission.draft.is_(False)))


def current_snapshot(db: Session) -> str:
    """PostgreSQL's snapshot of this moment, as text (``xmin:xmax:xip,…``)."""
    return db.scalar(text("SELECT pg_current_snapshot()::text"))


def changed_since_snapshot(db: Session, form_id: int, since: str | None, after_id: int | None,
                           limit: int) -> list[Any]:
    """Submissions whose last change is not visible in snapshot ``since`` (all of them
    without one), by id, after ``after_id``."""
    query = _select(form_id)
    if since is not None:
        query = query.where(text(f"NOT pg_visible_in_snapshot({_XMIN8}, "
                                 "CAST(:since AS pg_snapshot))").bindparams(since=since))
    if after_id is not None:
        query = query.where(Submission.id > after_id)
    return list(db.execute(query.order_by(Submission.id).limit(limit)))


def changed_after_stamp(db: Session, form_id: int, after: tuple[dt.datetime, int] | None,
                        limit: int) -> list[Any]:
    """Submissions changed after ``(stamp, id)`` (all without it), in that order."""
    query = _select(form_id)
    if after is not None:
        when, last_id = after
        query = query.where(or_(Submission.created_at > when, Submission.updated_at > when),
                            or_(stamp() > when, and_(stamp() == when, Submission.id > last_id)))
    return list(db.execute(query.order_by(stamp(), Submission.id).limit(limit)))
