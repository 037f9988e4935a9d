"""Reviewing submissions (one, or every one a filter selects), commenting on them, and
deleting and restoring them, as ODK Central does. Every change sets ``updated_at`` (so the
change feed and OData's ``__system/updatedAt`` see it) and is audited.

Bulk review writes one audit event per submission changed, in one batched INSERT, rather
than one event listing the ids: "what happened to this submission" stays one indexed lookup
on the audit log (``target``), each event looks like the single review's, and a bulk review
of 100k submissions does not make a single 100k-id JSON value.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from server.auth.actor import Actor
from server.db import utcnow
from server.errors import Problems
from server.logs import current_request_id
from server.models import Form, Submission, SubmissionComment, User
from server.queries import review as review_queries
from server.queries.filters import SubmissionFilter
from server.services import audit

REVIEW_ACTION = "submission.update"
DELETE_ACTION = "submission.delete"
RESTORE_ACTION = "submission.restore"
COMMENT_ACTION = "submission.comment"


def _live(db: Session, form: Form, instance_id: str) -> Submission:
    found = review_queries.get_submission(db, form.id, instance_id)
    if found is None:
        raise Problems.not_found()
    return found


def review(db: Session, actor: Actor, form: Form, instance_id: str, state: str) -> Submission:
    """Set one submission's review state (a no-op when it already has it)."""
    submission = _live(db, form, instance_id)
    if submission.review_state != state:
        previous = submission.review_state
        review_queries.set_review_state(db, submission, state, utcnow())
        audit.record(db, actor, REVIEW_ACTION, project_id=form.project_id,
                     target=("submission", submission.id),
                     details={"instanceId": instance_id, "reviewState": state,
                              "previous": previous})
    return submission


@dataclass(frozen=True)
class BulkReview:
    count: int
    """Submissions whose state changed (those already in it are left alone)."""


def review_matching(db: Session, actor: Actor, form: Form, f: SubmissionFilter, state: str,
                    *, comment: str | None = None,
                    expected_count: int | None = None) -> BulkReview:
    """Set ``state`` on every live submission ``f`` selects, with a set-based UPDATE.
    ``expected_count`` guards against a filter that selects more (or fewer) than the
    reviewer saw: then nothing changes and 409.13 says how many it selects now. The optional
    comment goes on each submission changed."""
    now = utcnow()
    changed = review_queries.review_matching(db, f, form.id, state, now,
                                             expected=expected_count)
    if expected_count is not None and not changed:
        selected = review_queries.count_matching(db, f, form.id)
        if selected != expected_count:
            raise Problems.review_count_mismatch(count=selected, expected=expected_count)
    ids = [i for i, _ in changed]
    if comment is not None:
        review_queries.insert_comments(db, ids, actor.user_id, comment, now)
    request_id = current_request_id()
    review_queries.insert_audit_events(db, [{
        "logged_at": now, "actor_user_id": actor.user_id,
        "actor_app_user_id": actor.app_user.id if actor.app_user else None,
        "action": REVIEW_ACTION, "project_id": form.project_id,
        "target_type": "submission", "target_id": str(i),
        "details": {"instanceId": instance_id, "reviewState": state, "bulk": True,
                    "comment": comment is not None},
        "request_id": request_id,
    } for i, instance_id in changed])
    db.expire_all()  # the UPDATE bypassed the identity map
    return BulkReview(len(changed))


def delete(db: Session, actor: Actor, form: Form, instance_id: str) -> None:
    """Soft delete: out of every listing, export and feed; its instanceID refused by ingest
    (409.12) until it is restored."""
    submission = _live(db, form, instance_id)
    now = utcnow()
    review_queries.set_deleted(db, submission, now, now)
    audit.record(db, actor, DELETE_ACTION, project_id=form.project_id,
                 target=("submission", submission.id), details={"instanceId": instance_id})


def restore(db: Session, actor: Actor, form: Form, instance_id: str) -> None:
    """Undo a delete (Central's ``POST …/restore``); a submission not deleted is 404."""
    submission = review_queries.get_submission(db, form.id, instance_id, deleted=True)
    if submission is None:
        raise Problems.not_found()
    review_queries.set_deleted(db, submission, None, utcnow())
    audit.record(db, actor, RESTORE_ACTION, project_id=form.project_id,
                 target=("submission", submission.id), details={"instanceId": instance_id})


@dataclass(frozen=True)
class AuthoredComment:
    comment: SubmissionComment
    author: User | None


def comments(db: Session, form: Form, instance_id: str) -> list[AuthoredComment]:
    return [AuthoredComment(c, u) for c, u in
            review_queries.list_comments(db, _live(db, form, instance_id).id)]


def add_comment(db: Session, actor: Actor, form: Form, instance_id: str,
                body: str) -> AuthoredComment:
    submission = _live(db, form, instance_id)
    comment = review_queries.insert_comment(db, SubmissionComment(
        submission_id=submission.id, author_user_id=actor.user_id, body=body,
        created_at=utcnow()))
    audit.record(db, actor, COMMENT_ACTION, project_id=form.project_id,
                 target=("submission", submission.id),
                 details={"instanceId": instance_id, "commentId": comment.id})
    return AuthoredComment(comment, actor.user)
