"""Review, comments and deletion of submissions: set-based writes (one statement however
many submissions a bulk review touches) and their audit rows, inserted in one batch."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from server.models import AuditEvent, Submission, SubmissionComment, User
from server.queries.filters import SubmissionFilter, matching


def get_submission(db: Session, form_id: int, instance_id: str, *,
                   deleted: bool = False) -> Submission | None:
    """A published (not draft) submission by its first instanceID: a live one, or with
    ``deleted`` a soft-deleted one."""
    state = Submission.deleted_at.is_not(None) if deleted else Submission.deleted_at.is_(None)
    return db.scalar(select(Submission).where(Submission.form_id == form_id,
                                              Submission.draft.is_(False),
                                              Submission.instance_id == instance_id, state))


def set_review_state(db: Session, submission: Submission, state: str, now: dt.datetime) -> None:
    submission.review_state = state
    submission.updated_at = now
    db.flush()


def set_deleted(db: Session, submission: Submission, deleted_at: dt.datetime | None,
                now: dt.datetime) -> None:
    submission.deleted_at = deleted_at
    submission.updated_at = now
    db.flush()


def _matched_ids(f: SubmissionFilter, form_id: int):
    # One row per submission: a filter with include_history matches every version.
    return (matching(f, form_id).with_only_columns(Submission.id).distinct()
            .correlate(None))  # not to the UPDATE's own ``submissions``


def count_matching(db: Session, f: SubmissionFilter, form_id: int) -> int:
    return db.scalar(select(func.count()).select_from(_matched_ids(f, form_id).subquery())) or 0


def review_matching(db: Session, f: SubmissionFilter, form_id: int, state: str,
                    now: dt.datetime, *, expected: int | None = None
                    ) -> list[tuple[int, str]]:
    """Set ``state`` on every submission the filter selects that is not in it yet, in one
    UPDATE. With ``expected``, the same statement changes nothing unless the filter selects
    exactly that many submissions (one snapshot: no submission can slip in between the count
    and the change). Returns ``(id, instanceId)`` of the submissions changed."""
    ids = _matched_ids(f, form_id)
    stmt = (update(Submission)
            .where(Submission.id.in_(ids.scalar_subquery()),
                   Submission.review_state != state)
            .values(review_state=state, updated_at=now)
            .returning(Submission.id, Submission.instance_id)
            .execution_options(synchronize_session=False))
    if expected is not None:
        counted = select(func.count()).select_from(ids.subquery()).scalar_subquery()
        stmt = stmt.where(counted == expected)
    return [(row.id, row.instance_id) for row in db.execute(stmt)]


def insert_audit_events(db: Session, events: Sequence[dict[str, Any]]) -> None:
    """Many audit rows in one batched INSERT (``insertmanyvalues``)."""
    if events:
        db.execute(insert(AuditEvent), list(events))


def insert_comments(db: Session, submission_ids: Sequence[int], author_user_id: int | None,
                    body: str, now: dt.datetime) -> None:
    if submission_ids:
        db.execute(insert(SubmissionComment), [
            {"submission_id": i, "author_user_id": author_user_id, "body": body,
             "created_at": now} for i in submission_ids])


def insert_comment(db: Session, comment: SubmissionComment) -> SubmissionComment:
    db.add(comment)
    db.flush()
    return comment


def list_comments(db: Session, submission_id: int
                  ) -> list[tuple[SubmissionComment, User | None]]:
    """Newest first, with their authors (Central's order)."""
    rows = db.execute(select(SubmissionComment, User)
                      .outerjoin(User, User.id == SubmissionComment.author_user_id)
                      .where(SubmissionComment.submission_id == submission_id)
                      .order_by(SubmissionComment.created_at.desc(),
                                SubmissionComment.id.desc()))
    return [(c, u) for c, u in rows]
