from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, delete, func, insert, select, update
from sqlalchemy.orm import Session, aliased

from server.models import (
    AppUser,
    Blob,
    FormDef,
    Submission,
    SubmissionAttachment,
    SubmissionDef,
    SubmissionRow,
    User,
)


def get_def_by_instance_id(db: Session, form_id: int, draft: bool,
                           instance_id: str) -> SubmissionDef | None:
    return db.scalar(select(SubmissionDef).where(SubmissionDef.form_id == form_id,
                                                 SubmissionDef.draft.is_(draft),
                                                 SubmissionDef.instance_id == instance_id))


def get(db: Session, submission_id: int) -> Submission | None:
    return db.get(Submission, submission_id)


def get_by_instance_id(db: Session, form_id: int, instance_id: str, *,
                       draft: bool = False) -> Submission | None:
    """The logical submission whose first instanceID this is (Central's submission id)."""
    return db.scalar(select(Submission).where(Submission.form_id == form_id,
                                              Submission.draft.is_(draft),
                                              Submission.instance_id == instance_id,
                                              Submission.deleted_at.is_(None)))


def current_def(db: Session, submission_id: int) -> SubmissionDef | None:
    return db.scalar(select(SubmissionDef).where(SubmissionDef.submission_id == submission_id,
                                                 SubmissionDef.current.is_(True)))


def list_(db: Session, form_id: int, *, draft: bool = False, limit: int = 100,
          offset: int = 0) -> list[tuple[Submission, SubmissionDef]]:
    rows = db.execute(
        select(Submission, SubmissionDef)
        .join(SubmissionDef, (SubmissionDef.submission_id == Submission.id)
              & SubmissionDef.current.is_(True))
        .where(Submission.form_id == form_id, Submission.draft.is_(draft),
               Submission.deleted_at.is_(None))
        .order_by(Submission.created_at.desc(), Submission.id.desc())
        .limit(limit).offset(offset)
    ).all()
    return [(s, d) for s, d in rows]


def count(db: Session, form_id: int, *, draft: bool = False) -> int:
    return db.scalar(select(func.count()).select_from(Submission).where(
        Submission.form_id == form_id, Submission.draft.is_(draft),
        Submission.deleted_at.is_(None))) or 0


def versions(db: Session, submission_id: int) -> list[SubmissionDef]:
    return list(db.scalars(select(SubmissionDef)
                           .where(SubmissionDef.submission_id == submission_id)
                           .order_by(SubmissionDef.created_at.desc(), SubmissionDef.id.desc())))


def insert_submission(db: Session, submission: Submission) -> Submission:
    db.add(submission)
    db.flush()
    return submission


def insert_def(db: Session, submission_def: SubmissionDef) -> SubmissionDef:
    db.add(submission_def)
    db.flush()
    return submission_def


def retire_current(db: Session, submission_id: int) -> None:
    db.execute(update(SubmissionDef).where(SubmissionDef.submission_id == submission_id,
                                           SubmissionDef.current.is_(True))
               .values(current=False))


def attachments(db: Session, submission_def_id: int
                ) -> list[tuple[SubmissionAttachment, Blob | None]]:
    rows = db.execute(
        select(SubmissionAttachment, Blob)
        .outerjoin(Blob, Blob.id == SubmissionAttachment.blob_id)
        .where(SubmissionAttachment.submission_def_id == submission_def_id)
        .order_by(SubmissionAttachment.id)
    ).all()
    return [(a, b) for a, b in rows]


def insert_attachments(db: Session, submission_def_id: int, names: Iterable[str]) -> None:
    values = [{"submission_def_id": submission_def_id, "name": n} for n in names]
    if values:
        db.execute(insert(SubmissionAttachment), values)


def insert_rows(db: Session, rows: list[dict[str, Any]]) -> None:
    """One statement for all of a submission's rows (nulls rendered, so the root row and
    the repeat rows share one parameter set)."""
    if rows:
        db.execute(insert(SubmissionRow).execution_options(render_nulls=True), rows)


def delete_drafts(db: Session, form_id: int) -> int:
    """Test submissions to a draft go when the draft is published or deleted."""
    return db.execute(delete(Submission).where(Submission.form_id == form_id,
                                               Submission.draft.is_(True))).rowcount


# -- the REST API's reads ---------------------------------------------------------------------

@dataclass(frozen=True)
class SubmissionListing:
    """A submission as the REST API shows it: the logical submission, its current version,
    its first version's user agent (Central reports the initial one), and both submitters."""

    submission: Submission
    current: SubmissionDef
    user_agent: str | None
    submitter: User | AppUser | None
    current_submitter: User | AppUser | None


def _listing_select() -> Select:
    root = aliased(SubmissionDef, name="root_def")
    user, app_user = aliased(User, name="submitter_user"), aliased(AppUser, name="submitter_app")
    cur_user = aliased(User, name="current_user")
    cur_app_user = aliased(AppUser, name="current_app")
    return (
        select(Submission, SubmissionDef, root.user_agent, user, app_user, cur_user, cur_app_user)
        .join(SubmissionDef, (SubmissionDef.submission_id == Submission.id)
              & SubmissionDef.current.is_(True))
        .outerjoin(root, (root.submission_id == Submission.id)
                   & (root.instance_id == Submission.instance_id))
        .outerjoin(user, user.id == Submission.submitter_user_id)
        .outerjoin(app_user, app_user.id == Submission.submitter_app_user_id)
        .outerjoin(cur_user, cur_user.id == SubmissionDef.submitter_user_id)
        .outerjoin(cur_app_user, cur_app_user.id == SubmissionDef.submitter_app_user_id)
        .where(Submission.deleted_at.is_(None))
    )


def _listing(row: Row) -> SubmissionListing:
    submission, current, user_agent, user, app_user, cur_user, cur_app_user = row
    return SubmissionListing(submission, current, user_agent, user or app_user,
                             cur_user or cur_app_user)


def list_listings(db: Session, form_id: int, *, draft: bool = False, limit: int | None = None,
                  offset: int = 0) -> list[SubmissionListing]:
    """One page of a form's submissions, newest first, in one query."""
    query = (_listing_select()
             .where(Submission.form_id == form_id, Submission.draft.is_(draft))
             .order_by(Submission.created_at.desc(), Submission.id.desc())
             .limit(limit).offset(offset))
    return [_listing(row) for row in db.execute(query)]


def get_listing(db: Session, form_id: int, instance_id: str, *,
                draft: bool = False) -> SubmissionListing | None:
    row = db.execute(_listing_select().where(Submission.form_id == form_id,
                                             Submission.draft.is_(draft),
                                             Submission.instance_id == instance_id)).first()
    return _listing(row) if row is not None else None


@dataclass(frozen=True)
class VersionListing:
    definition: SubmissionDef
    submitter: User | AppUser | None
    form_version: str


def _version_select(submission_id: int) -> Select:
    user, app_user = aliased(User), aliased(AppUser)
    return (select(SubmissionDef, user, app_user, FormDef.version)
            .join(FormDef, FormDef.id == SubmissionDef.form_def_id)
            .outerjoin(user, user.id == SubmissionDef.submitter_user_id)
            .outerjoin(app_user, app_user.id == SubmissionDef.submitter_app_user_id)
            .where(SubmissionDef.submission_id == submission_id))


def list_versions(db: Session, submission_id: int) -> list[VersionListing]:
    """Every version of a submission, newest first, with who sent it and to which form
    version."""
    query = _version_select(submission_id).order_by(SubmissionDef.created_at.desc(),
                                                    SubmissionDef.id.desc())
    return [VersionListing(d, u or a, v) for d, u, a, v in db.execute(query)]


def get_version(db: Session, submission_id: int, instance_id: str) -> VersionListing | None:
    row = db.execute(_version_select(submission_id)
                     .where(SubmissionDef.instance_id == instance_id)).first()
    return VersionListing(row[0], row[1] or row[2], row[3]) if row is not None else None


def get_attachment(db: Session, submission_def_id: int, name: str
                   ) -> tuple[SubmissionAttachment, Blob | None] | None:
    row = db.execute(
        select(SubmissionAttachment, Blob)
        .outerjoin(Blob, Blob.id == SubmissionAttachment.blob_id)
        .where(SubmissionAttachment.submission_def_id == submission_def_id,
               SubmissionAttachment.name == name)
    ).first()
    return (row[0], row[1]) if row is not None else None
