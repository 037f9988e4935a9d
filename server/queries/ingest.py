"""The statements on ingest's hot path.

Every Collect upload runs these, so they are built once (no statement construction per
request), read only the columns ingest needs (never a version's XForm or schema unless its
schema is not cached yet), and write through Core inserts rather than the ORM's unit of
work. One SELECT finds the form, the version the instance names, whether the app user is
assigned the form, and any version already stored under the instanceID.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, exists, insert, select
from sqlalchemy.orm import Session

from server.models import (
    Form,
    FormAssignment,
    FormDef,
    Submission,
    SubmissionAttachment,
    SubmissionDef,
    SubmissionRow,
)

_forms, _defs = Form.__table__, FormDef.__table__
_sub_defs, _subs = SubmissionDef.__table__, Submission.__table__


@dataclass(frozen=True)
class FormRef:
    """The form a submission names, as ingest needs it."""

    id: int
    project_id: int
    xml_form_id: str
    state: str
    assigned: bool
    """Whether the submitting app user is assigned this form (False for anyone else)."""


@dataclass(frozen=True)
class VersionRef:
    id: int
    version: str
    encryption_key: str | None
    xml_sha256: str


@dataclass(frozen=True)
class Target:
    form: FormRef
    version: VersionRef | None
    """The published version named by the instance (the draft, for test submissions)."""
    existing_def_id: int | None
    """A version already stored under the instanceID."""


def _target_statement(draft: bool):
    version_match = (_defs.c.published_at.is_(None) if draft else
                     and_(_defs.c.published_at.is_not(None),
                          _defs.c.version == bindparam("version")))
    assigned = exists().where(FormAssignment.form_id == _forms.c.id,
                              FormAssignment.app_user_id == bindparam("app_user_id"))
    return (
        select(_forms.c.id, _forms.c.project_id, _forms.c.xml_form_id, _forms.c.state,
               assigned.label("assigned"),
               _defs.c.id.label("def_id"), _defs.c.version, _defs.c.encryption_key,
               _defs.c.xml_sha256, _sub_defs.c.id.label("existing_def_id"))
        .select_from(
            _forms.outerjoin(_defs, and_(_defs.c.form_id == _forms.c.id, version_match))
            .outerjoin(_sub_defs, and_(_sub_defs.c.form_id == _forms.c.id,
                                       _sub_defs.c.draft.is_(draft),
                                       _sub_defs.c.instance_id == bindparam("instance_id"))))
        .where(_forms.c.project_id == bindparam("project_id"),
               _forms.c.xml_form_id == bindparam("xml_form_id"),
               _forms.c.deleted_at.is_(None))
    )


_TARGET = {False: _target_statement(False), True: _target_statement(True)}


def target(db: Session, *, project_id: int, xml_form_id: str, version: str, draft: bool,
           instance_id: str, app_user_id: int | None) -> Target | None:
    row = db.execute(_TARGET[draft], {
        "project_id": project_id, "xml_form_id": xml_form_id, "version": version,
        "instance_id": instance_id, "app_user_id": app_user_id}).first()
    if row is None:
        return None
    form = FormRef(row.id, row.project_id, row.xml_form_id, row.state, bool(row.assigned))
    version_ref = (VersionRef(row.def_id, row.version, row.encryption_key, row.xml_sha256)
                   if row.def_id is not None else None)
    return Target(form, version_ref, row.existing_def_id)


_SCHEMA = select(_defs.c.schema).where(_defs.c.id == bindparam("id"))


def version_schema(db: Session, form_def_id: int) -> dict[str, Any]:
    return db.execute(_SCHEMA, {"id": form_def_id}).scalar_one()


_INSERT_SUBMISSION = insert(_subs).returning(_subs.c.id)
_INSERT_DEF = insert(_sub_defs).returning(_sub_defs.c.id)
_INSERT_ATTACHMENTS = insert(SubmissionAttachment.__table__)
_INSERT_ROWS = insert(SubmissionRow.__table__).execution_options(render_nulls=True)


def insert_submission(db: Session, values: dict[str, Any]) -> int:
    return db.execute(_INSERT_SUBMISSION, values).scalar_one()


def insert_def(db: Session, values: dict[str, Any]) -> int:
    return db.execute(_INSERT_DEF, values).scalar_one()


def insert_attachments(db: Session, values: list[dict[str, Any]]) -> None:
    """Every attachment a new version expects, with its blob when it came along."""
    if values:
        db.execute(_INSERT_ATTACHMENTS, values)


def insert_rows(db: Session, rows: list[dict[str, Any]]) -> None:
    """One statement for all of a submission's rows (nulls rendered, so the root row and
    the repeat rows share one parameter set)."""
    if rows:
        db.execute(_INSERT_ROWS, rows)
