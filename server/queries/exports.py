"""Exports' SQL: the published schemas of a form, the rows of each export table, the files,
and the ``exports`` records of background exports.

``stream_…`` functions run their query at once and return the open result, read with a
server-side cursor (``stream_results``/``yield_per``) on a
connection the caller opened for reading (on SQLite without the write lock, see
``server.db.read_only``): one query per table, ordered the way ODK Central orders an export
(newest submission first, ``created_at`` then id, then each version newest first, then
document order), so memory stays flat however many submissions there are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Result, Row, Select, func, select, update
from sqlalchemy.orm import Session, aliased

from server.models import (
    AppUser,
    Blob,
    Export,
    FormDef,
    Job,
    Submission,
    SubmissionAttachment,
    SubmissionDef,
    SubmissionRow,
    User,
)
from server.models.submissions import ROOT_TABLE
from server.queries.filters import SubmissionFilter, matching

STREAM_BATCH = 1000
_STREAM = {"stream_results": True, "yield_per": STREAM_BATCH}


def tune_for_export(conn: Connection) -> None:
    """Settings for a long read-only export transaction: on PostgreSQL, no JIT (compiling the
    export's many JSON extractions costs seconds and saves nothing in a one-pass read)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL jit = off")


def list_published_schemas(db: Session | Connection, form_id: int) -> list[Row]:
    """``(version, schema)`` of every published version, oldest first."""
    return list(db.execute(
        select(FormDef.version, FormDef.schema)
        .where(FormDef.form_id == form_id, FormDef.published_at.is_not(None))
        .order_by(FormDef.published_at, FormDef.id)))


def _newest_first(f: SubmissionFilter) -> tuple[Any, ...]:
    order: tuple[Any, ...] = (Submission.created_at.desc(), Submission.id.desc())
    return order + (SubmissionDef.id.desc(),) if f.include_history else order


def _versions(f: SubmissionFilter, form_id: int, *columns: Any) -> Select:
    """``columns`` of every submission version the filter selects."""
    return (select(*columns).select_from(Submission)
            .join(SubmissionDef, SubmissionDef.submission_id == Submission.id)
            .where(*f.conditions(form_id)))


def _values(paths: Sequence[str]) -> list[Any]:
    """The stored values at ``paths``, one column each, extracted by the database (cheaper
    than decoding every row's JSON in Python): ``data ->> path`` on PostgreSQL,
    ``json_extract`` on SQLite. None when the row has no such value."""
    return [SubmissionRow.data[path].as_string().label(f"v{i}") for i, path in enumerate(paths)]


def stream_root(conn: Connection, form_id: int, f: SubmissionFilter,
                paths: Sequence[str]) -> Result:
    """The root table's records: ``columns.ROOT_RECORD`` (``key`` is the submission's
    instanceID, or each version's own with history), then the values at ``paths`` (all None
    for an encrypted submission, which has no rows)."""
    first = aliased(SubmissionDef, name="first_def")
    own_form_def, first_form_def = aliased(FormDef, name="own_fd"), aliased(FormDef, name="fd")
    every = aliased(SubmissionDef, name="every_def")
    edits = (select(func.count()).where(every.submission_id == Submission.id)
             .scalar_subquery() - 1)
    history = f.include_history
    query = (
        _versions(
            f, form_id,
            Submission.created_at, Submission.review_state, Submission.device_id,
            func.coalesce(Submission.submitter_user_id,
                          Submission.submitter_app_user_id).label("submitter_id"),
            func.coalesce(User.display_name, AppUser.display_name).label("submitter_name"),
            (SubmissionDef.instance_id if history else Submission.instance_id).label("key"),
            SubmissionDef.encrypted, SubmissionDef.attachments_present,
            SubmissionDef.attachments_expected,
            (own_form_def.version if history else first_form_def.version).label("form_version"),
            edits.label("edits"), *_values(paths))
        .outerjoin(SubmissionRow, (SubmissionRow.submission_def_id == SubmissionDef.id)
                   & (SubmissionRow.table_path == ROOT_TABLE))
        .outerjoin(User, User.id == Submission.submitter_user_id)
        .outerjoin(AppUser, AppUser.id == Submission.submitter_app_user_id))
    if history:
        query = query.join(own_form_def, own_form_def.id == SubmissionDef.form_def_id)
    else:  # Central reports the version the submission was first sent with
        query = (query.outerjoin(first, (first.submission_id == Submission.id)
                                 & (first.instance_id == Submission.instance_id))
                 .outerjoin(first_form_def, first_form_def.id == first.form_def_id))
    return conn.execute(query.order_by(*_newest_first(f)), execution_options=_STREAM)


REPEAT_RECORD = ("row_key", "parent_key", "def_instance_id", "submission_instance_id")


def stream_repeat(conn: Connection, form_id: int, table_path: str, f: SubmissionFilter,
                  paths: Sequence[str]) -> Result:
    """One repeat table's rows: ``REPEAT_RECORD`` (keys are stored with the version's
    instanceID, so both instanceIDs come along), then the values at ``paths``."""
    query = (_versions(f, form_id, SubmissionRow.row_key, SubmissionRow.parent_key,
                       SubmissionDef.instance_id.label("def_instance_id"),
                       Submission.instance_id.label("submission_instance_id"), *_values(paths))
             .join(SubmissionRow, SubmissionRow.submission_def_id == SubmissionDef.id)
             .where(SubmissionRow.form_id == form_id, SubmissionRow.table_path == table_path)
             .order_by(*_newest_first(f), SubmissionRow.id))
    return conn.execute(query, execution_options=_STREAM)


def list_values(conn: Connection, form_id: int, table_path: str, field_path: str,
                f: SubmissionFilter) -> list[str | None]:
    """The distinct stored answers of one field (split into choices by the caller)."""
    value = SubmissionRow.data[field_path].as_string()
    query = (_versions(f, form_id, value)
             .join(SubmissionRow, SubmissionRow.submission_def_id == SubmissionDef.id)
             .where(SubmissionRow.form_id == form_id, SubmissionRow.table_path == table_path)
             .distinct())
    return list(conn.scalars(query))


def count_rows(conn: Connection, form_id: int, f: SubmissionFilter) -> dict[str, int]:
    """How many rows each table will have (``""`` counts versions, encrypted ones too)."""
    roots = conn.scalar(select(func.count()).select_from(matching(f, form_id).subquery()))
    repeats = conn.execute(
        _versions(f, form_id, SubmissionRow.table_path, func.count())
        .join(SubmissionRow, SubmissionRow.submission_def_id == SubmissionDef.id)
        .where(SubmissionRow.form_id == form_id, SubmissionRow.table_path != ROOT_TABLE)
        .group_by(SubmissionRow.table_path))
    return {ROOT_TABLE: roots or 0, **{path: n for path, n in repeats}}


def count_files(conn: Connection, form_id: int, f: SubmissionFilter) -> int:
    return conn.scalar(
        _versions(f, form_id, func.count())
        .join(SubmissionAttachment, SubmissionAttachment.submission_def_id == SubmissionDef.id)
        .where(SubmissionAttachment.blob_id.is_not(None))) or 0


def stream_files(conn: Connection, form_id: int, f: SubmissionFilter) -> Result:
    """The stored files of the selected versions: ``key`` (as in the root table), ``name``,
    ``sha256``, ``size``, ``content_type``; newest submission first, then by name."""
    key = SubmissionDef.instance_id if f.include_history else Submission.instance_id
    query = (_versions(f, form_id, key.label("key"), SubmissionAttachment.name, Blob.sha256,
                       Blob.size, Blob.content_type)
             .join(SubmissionAttachment,
                   SubmissionAttachment.submission_def_id == SubmissionDef.id)
             .join(Blob, Blob.id == SubmissionAttachment.blob_id)
             .order_by(*_newest_first(f), SubmissionAttachment.name))
    return conn.execute(query, execution_options=_STREAM)


def stream_media(conn: Connection, form_id: int, f: SubmissionFilter) -> Result:
    """The files of the selected (unencrypted) versions for a flat ``media/`` folder, each
    distinct ``(name, content)`` once: ``name``, ``sha256``, ``key``, and ``shared``, true
    when files with this name have more than one content (so the name alone is ambiguous)."""
    key = SubmissionDef.instance_id if f.include_history else Submission.instance_id
    name, sha = SubmissionAttachment.name, Blob.sha256
    ranked = (_versions(
        f, form_id, key.label("key"), name.label("name"), sha.label("sha256"),
        Blob.size.label("size"),
        (func.min(sha).over(partition_by=name) != func.max(sha).over(partition_by=name))
        .label("shared"),
        func.row_number().over(partition_by=(name, sha),
                               order_by=_newest_first(f)).label("copy"))
        .join(SubmissionAttachment, SubmissionAttachment.submission_def_id == SubmissionDef.id)
        .join(Blob, Blob.id == SubmissionAttachment.blob_id)
        .where(SubmissionDef.encrypted.is_(False))).subquery()
    query = (select(ranked.c.key, ranked.c.name, ranked.c.sha256, ranked.c.size,
                    ranked.c.shared)
             .where(ranked.c.shared | (ranked.c.copy == 1))
             .order_by(ranked.c.name, ranked.c.sha256, ranked.c.key))
    return conn.execute(query, execution_options=_STREAM)


# -- background exports ------------------------------------------------------------------------

def insert(db: Session, export: Export) -> Export:
    db.add(export)
    db.flush()
    return export


def get(db: Session, export_id: int) -> Export | None:
    return db.get(Export, export_id)


def get_for_form(db: Session, form_id: int, export_id: int) -> tuple[Export, Job | None] | None:
    row = db.execute(select(Export, Job).outerjoin(Job, Job.id == Export.job_id)
                     .where(Export.form_id == form_id, Export.id == export_id)).first()
    return (row[0], row[1]) if row is not None else None


def list_for_form(db: Session, form_id: int, *, limit: int,
                  offset: int) -> list[tuple[Export, Job | None]]:
    """Newest first."""
    rows = db.execute(select(Export, Job).outerjoin(Job, Job.id == Export.job_id)
                      .where(Export.form_id == form_id)
                      .order_by(Export.created_at.desc(), Export.id.desc())
                      .limit(limit).offset(offset))
    return [(e, j) for e, j in rows]


def get_by_token(db: Session, token_sha256: str) -> tuple[Export, Blob | None] | None:
    row = db.execute(select(Export, Blob).outerjoin(Blob, Blob.id == Export.blob_id)
                     .where(Export.token_sha256 == token_sha256)).first()
    return (row[0], row[1]) if row is not None else None


def get_blob(db: Session, blob_id: int) -> Blob | None:
    return db.get(Blob, blob_id)


def expire_due(db: Session, now: dt.datetime) -> int:
    """Finished exports past their expiry lose their file: the blob is no longer referenced
    (so orphan-blob clean-up may take it) and the download link answers 410."""
    return db.execute(
        update(Export).where(Export.status == "succeeded", Export.expires_at <= now)
        .values(status="expired", blob_id=None)
        .execution_options(synchronize_session=False)).rowcount
