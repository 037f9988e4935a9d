"""The statements on ingest's hot path.

Every Collect upload runs these, so they are built once (no statement construction per
request), read only the columns ingest needs (never a version's XForm or schema unless its
schema is not cached yet), and write through Core inserts rather than the ORM's unit of
work. One SELECT finds the form, the version the instance names, whether the app user is
assigned the form, and any version already stored under the instanceID. On PostgreSQL
both the lookup and the write of a new submission run on psycopg's own connection
(``server.db.DriverStatement``), inside the session's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Integer, String, and_, bindparam, exists, insert, select, text, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from server.db import DriverStatement, utcnow
from server.models import (
    AppUser,
    AuditEvent,
    Form,
    FormAssignment,
    FormDef,
    Project,
    Submission,
    SubmissionAttachment,
    SubmissionDef,
    SubmissionRow,
)
from server.queries import audit as audit_queries

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
    key_valid: bool = True
    """Whether the app-user key recalled from the cache is still valid (True when the
    caller was verified by its own query)."""


def _target_statement(draft: bool, key_check: bool):
    version_match = (_defs.c.published_at.is_(None) if draft else
                     and_(_defs.c.published_at.is_not(None),
                          _defs.c.version == bindparam("version")))
    assigned = exists().where(FormAssignment.form_id == _forms.c.id,
                              FormAssignment.app_user_id == bindparam("app_user_id"))
    # A key verified earlier by this process is re-checked here, in the same statement.
    key_valid = (exists().where(AppUser.id == bindparam("app_user_id"),
                                AppUser.token_hash == bindparam("key_hash"),
                                AppUser.revoked_at.is_(None),
                                Project.id == AppUser.project_id,
                                Project.deleted_at.is_(None))
                 if key_check else true())
    return (
        select(_forms.c.id, _forms.c.project_id, _forms.c.xml_form_id, _forms.c.state,
               assigned.label("assigned"), key_valid.label("key_valid"),
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


_TARGET = {(draft, key_check): DriverStatement(_target_statement(draft, key_check))
           for draft in (False, True) for key_check in (False, True)}


def target(db: Session, *, project_id: int, xml_form_id: str, version: str, draft: bool,
           instance_id: str, app_user_id: int | None,
           key_hash: str | None = None) -> Target | None:
    """``key_hash``: the hash of an app-user key recalled from the process's cache, to
    check again (``Target.key_valid``)."""
    params = {"project_id": project_id, "xml_form_id": xml_form_id, "version": version,
              "instance_id": instance_id, "app_user_id": app_user_id}
    if key_hash is not None:
        params["key_hash"] = key_hash
    statement = _TARGET[draft, key_hash is not None]
    if _on_postgresql(db):
        row = statement.execute(db, params).fetchone()
    else:
        row = db.execute(statement.statement, params).first()
    if row is None:
        return None
    (form_id, project_id, xml_form_id, state, assigned, key_valid, def_id, version,
     encryption_key, xml_sha256, existing_def_id) = row
    form = FormRef(form_id, project_id, xml_form_id, state, bool(assigned))
    version_ref = (VersionRef(def_id, version, encryption_key, xml_sha256)
                   if def_id is not None else None)
    return Target(form, version_ref, existing_def_id, bool(key_valid))


def _on_postgresql(db: Session) -> bool:
    return db.get_bind().dialect.name == "postgresql"


_SCHEMA = select(_defs.c.schema).where(_defs.c.id == bindparam("id"))


def version_schema(db: Session, form_def_id: int) -> dict[str, Any]:
    return db.execute(_SCHEMA, {"id": form_def_id}).scalar_one()


_INSERT_SUBMISSION = insert(_subs).returning(_subs.c.id)
_INSERT_DEF = insert(_sub_defs).returning(_sub_defs.c.id)
_INSERT_ATTACHMENTS = insert(SubmissionAttachment.__table__)
_INSERT_ROWS = insert(SubmissionRow.__table__).execution_options(render_nulls=True)


def insert_new(db: Session, *, submission: dict[str, Any], definition: dict[str, Any],
               rows: list[dict[str, Any]], audit: dict[str, Any]) -> tuple[int, int]:
    """A new submission: its row, its first version, its flattened rows (without
    ``submission_def_id``) and its audit event (without ``target_id``). Returns the
    submission's id and the version's. One statement on PostgreSQL, four elsewhere; the
    submission row goes in first either way, so a request racing another with the same
    instanceID stops there."""
    if _on_postgresql(db):
        return insert_new_postgresql(db, submission=submission, definition=definition,
                                     rows=rows, audit=audit)
    return insert_new_portable(db, submission=submission, definition=definition, rows=rows,
                               audit=audit)


def can_guard(db: Session) -> bool:
    """Whether ``insert_new_postgresql`` can take a ``Guard`` here (PostgreSQL only)."""
    return _on_postgresql(db)


def insert_new_portable(db: Session, *, submission: dict[str, Any],
                        definition: dict[str, Any], rows: list[dict[str, Any]],
                        audit: dict[str, Any]) -> tuple[int, int]:
    submission_id = db.execute(_INSERT_SUBMISSION, submission).scalar_one()
    def_id = db.execute(_INSERT_DEF, {**definition, "submission_id": submission_id}
                        ).scalar_one()
    insert_rows(db, [{**row, "submission_def_id": def_id} for row in rows])
    audit_queries.insert(db, {**audit, "target_id": str(submission_id)})
    return submission_id, def_id


# PostgreSQL: data-modifying CTEs write all four in one round trip, in one statement that
# psycopg prepares once per connection. Every column is listed, defaults included, because
# a raw statement gets none of the models' Python-side defaults.
_NEW_SUBMISSION = ("form_id", "draft", "instance_id", "review_state", "submitter_user_id",
                   "submitter_app_user_id", "device_id", "created_at")
_NEW_DEF = ("form_id", "draft", "form_def_id", "instance_id", "deprecated_id",
            "instance_name", "xml", "xml_sha256", "encrypted", "current", "submitter_user_id",
            "submitter_app_user_id", "device_id", "user_agent", "attachments_expected",
            "attachments_present", "created_at")
_NEW_AUDIT = ("logged_at", "actor_user_id", "actor_app_user_id", "action", "project_id",
              "target_type", "details", "request_id")
_ROW_FIELDS = ("table_path text, row_key text, parent_key text, position integer, "
               "data jsonb, extra jsonb")


def _placeholders(prefix: str, names: tuple[str, ...]) -> str:
    return ", ".join(f":{prefix}{name}" for name in names)


@dataclass(frozen=True)
class Guard:
    """What ``target`` would have to find for a new submission to be stored, checked by the
    write itself instead of by a lookup before it (one round trip less): the form is live,
    not closed, in the project; the version is its published one; the app user is assigned
    the form, and its key (by hash) is current, not revoked, in a live project; and no
    version is stored under the instanceID yet."""

    form_id: int
    project_id: int
    form_def_id: int
    app_user_id: int
    key_hash: str
    instance_id: str


_GUARD = """ok AS (
    SELECT 1 FROM forms f
    WHERE f.id = :g_form_id AND f.project_id = :g_project_id AND f.deleted_at IS NULL
      AND f.state <> 'closed'
      AND EXISTS (SELECT 1 FROM form_defs fd WHERE fd.id = :g_form_def_id
                  AND fd.form_id = f.id AND fd.published_at IS NOT NULL)
      AND EXISTS (SELECT 1 FROM form_assignments fa WHERE fa.form_id = f.id
                  AND fa.app_user_id = :g_app_user_id)
      AND EXISTS (SELECT 1 FROM app_users u JOIN projects p ON p.id = u.project_id
                  WHERE u.id = :g_app_user_id AND u.token_hash = :g_key_hash
                  AND u.revoked_at IS NULL AND u.project_id = f.project_id
                  AND p.deleted_at IS NULL)
      AND NOT EXISTS (SELECT 1 FROM submission_defs sd WHERE sd.form_id = f.id
                      AND sd.draft IS false AND sd.instance_id = :g_instance_id)
), """


def _new_submission_statement(guarded: bool) -> DriverStatement:
    source = f"SELECT {_placeholders('s_', _NEW_SUBMISSION)} FROM ok" if guarded else \
        f"VALUES ({_placeholders('s_', _NEW_SUBMISSION)})"
    statement = text(f"""
WITH {_GUARD if guarded else ""}s AS (
    INSERT INTO submissions ({", ".join(_NEW_SUBMISSION)})
    {source}
    RETURNING id
), d AS (
    INSERT INTO submission_defs (submission_id, {", ".join(_NEW_DEF)})
    SELECT s.id, {_placeholders("d_", _NEW_DEF)} FROM s
    RETURNING id
), r AS (
    INSERT INTO submission_rows (submission_def_id, form_id, table_path, row_key,
                                 parent_key, position, data, extra)
    SELECT d.id, :r_form_id, x.table_path, x.row_key, x.parent_key, x.position, x.data,
           x.extra
    FROM d, ROWS FROM (jsonb_to_recordset(:rows) AS ({_ROW_FIELDS})) WITH ORDINALITY
         AS x(table_path, row_key, parent_key, position, data, extra, n)
    ORDER BY x.n
), a AS (
    INSERT INTO audit_events (target_id, {", ".join(_NEW_AUDIT)})
    SELECT s.id::text, {_placeholders("a_", _NEW_AUDIT)} FROM s
)
SELECT s.id AS submission_id, d.id AS def_id FROM s, d
""").bindparams(
        *(bindparam(f"s_{c}", type_=_subs.c[c].type) for c in _NEW_SUBMISSION),
        *(bindparam(f"d_{c}", type_=_sub_defs.c[c].type) for c in _NEW_DEF),
        *(bindparam(f"a_{c}", type_=AuditEvent.__table__.c[c].type) for c in _NEW_AUDIT),
        bindparam("r_form_id"), bindparam("rows", type_=JSONB()),
        *((bindparam("g_form_id", type_=Integer()), bindparam("g_project_id", type_=Integer()),
           bindparam("g_form_def_id", type_=Integer()),
           bindparam("g_app_user_id", type_=Integer()),
           bindparam("g_key_hash", type_=String()), bindparam("g_instance_id", type_=String()))
          if guarded else ()),
    )
    return DriverStatement(statement)


_INSERT_NEW_POSTGRESQL = {guarded: _new_submission_statement(guarded)
                          for guarded in (False, True)}


def insert_new_postgresql(db: Session, *, submission: dict[str, Any],
                          definition: dict[str, Any], rows: list[dict[str, Any]],
                          audit: dict[str, Any], guard: Guard | None = None
                          ) -> tuple[int, int] | None:
    """None when ``guard`` does not hold (nothing was written)."""
    now = utcnow()
    submission = {"review_state": "received", "created_at": now, **submission}
    definition = {"current": True, "created_at": now, **definition}
    audit = {"logged_at": now, **audit, "details": Jsonb(audit.get("details"))}
    params: dict[str, Any] = {
        **{f"s_{c}": submission.get(c) for c in _NEW_SUBMISSION},
        **{f"d_{c}": definition.get(c) for c in _NEW_DEF},
        **{f"a_{c}": audit.get(c) for c in _NEW_AUDIT},
        "r_form_id": submission["form_id"],
        # jsonb_to_recordset reads the columns it names and ignores the rest
        "rows": Jsonb(rows),
    }
    if guard is not None:
        params.update({f"g_{name}": getattr(guard, name) for name in (
            "form_id", "project_id", "form_def_id", "app_user_id", "key_hash", "instance_id")})
    found = _INSERT_NEW_POSTGRESQL[guard is not None].execute(db, params).fetchone()
    if found is None:
        return None
    submission_id, def_id = found
    return submission_id, def_id


def insert_attachments(db: Session, values: list[dict[str, Any]]) -> None:
    """Every attachment a new version expects, with its blob when it came along."""
    if values:
        db.execute(_INSERT_ATTACHMENTS, values)


def insert_rows(db: Session, rows: list[dict[str, Any]]) -> None:
    """One statement for all of a submission's rows (nulls rendered, so the root row and
    the repeat rows share one parameter set)."""
    if rows:
        db.execute(_INSERT_ROWS, rows)
