"""Per-form SQL views for analysts (PostgreSQL only).

For every form with a published version, one view for its submissions and one per repeat,
over the rows ingest flattens (``submission_rows``), so that a SQL user — psql, Metabase,
R, a read-only role — sees each form as ordinary tables:

- ``v{project}_{formid}``: one row per live (not deleted, not draft) submission, its
  current version: ``submission_id``, ``instance_id``, ``submitted_at``, ``updated_at``,
  ``review_state``, ``device_id``, ``form_version``, ``key``, then one column per field;
- ``v{project}_{formid}__{repeat}``: one row per repeat instance of those submissions:
  ``submission_id``, ``instance_id``, ``key``, ``parent_key``, ``position``, then the
  repeat's fields.

Field columns are named like Central's CSV headers (group path joined by ``-``; quote them). Fields
from every published version appear (the latest version's order first), so a view never
loses a column that older submissions filled. ``int`` fields are ``bigint`` and ``decimal``
fields ``numeric`` when the value is a well-formed number (else NULL: a view must never
fail on one bad value); everything else is text as submitted.

Views are rebuilt when a version is published and dropped with the form; each carries the
comment ``dodoso form <id>``, by which it is found again. Names are lowered, limited to
``[a-z0-9_]`` and cut to PostgreSQL's 63-byte identifiers with a hash suffix when needed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from forms.schema import FormSchema
from server.models import Form

VIEW_PREFIX = "v"
MAX_IDENTIFIER = 63
_UNSAFE = re.compile(r"[^a-z0-9_]+")
_INT = r"^\s*-?[0-9]{1,18}\s*$"
_DECIMAL = r"^\s*-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,3})?\s*$"
_SYSTEM_ROOT = ("submission_id", "instance_id", "submitted_at", "updated_at", "review_state",
                "device_id", "form_version", "key")
_SYSTEM_REPEAT = ("submission_id", "instance_id", "key", "parent_key", "position")


@dataclass(frozen=True)
class Column:
    name: str
    path: str
    type: str


@dataclass(frozen=True)
class ViewSpec:
    name: str
    table_path: str
    """``""`` for the submissions view, else the repeat's schema path."""
    columns: tuple[Column, ...]


def identifier(raw: str) -> str:
    """A safe, unquoted-style PostgreSQL identifier for ``raw``."""
    name = _UNSAFE.sub("_", raw.lower()).strip("_") or "x"
    if len(name) > MAX_IDENTIFIER:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        name = f"{name[:MAX_IDENTIFIER - 9]}_{digest}"
    return name


def view_specs(project_id: int, xml_form_id: str, schemas: list[FormSchema]) -> list[ViewSpec]:
    """The views of a form, from its published versions' schemas, newest first."""
    base = identifier(f"{VIEW_PREFIX}{project_id}_{xml_form_id}")
    tables: dict[str, list[Column]] = {}
    seen: dict[str, set[str]] = {}
    for schema in schemas:
        for f in schema.fields:
            if f.kind == "repeat" or f.type == "repeat":
                tables.setdefault(f.path, [])
                seen.setdefault(f.path, set())
        for f in schema.fields:
            if f.kind in ("group", "repeat") or f.type in ("repeat", "structure"):
                continue
            table = f.repeat or ""
            columns = tables.setdefault(table, [])
            names = seen.setdefault(table, set())
            if f.path in {c.path for c in columns}:
                continue
            relative = f.path[len(table):] if table else f.path
            name = _unique(column_name(relative.strip("/").replace("/", "-")), names,
                           _SYSTEM_ROOT if not table else _SYSTEM_REPEAT)
            columns.append(Column(name, f.path, f.type))
    specs = [ViewSpec(base, "", tuple(tables.pop("", [])))]
    for path, columns in tables.items():
        specs.append(ViewSpec(identifier(f"{base}__{path.strip('/').replace('/', '_')}"),
                              path, tuple(columns)))
    return specs


def column_name(raw: str) -> str:
    """A field's column: its CSV header as is (always quoted), cut to 63 bytes if longer."""
    if len(raw.encode()) <= MAX_IDENTIFIER:
        return raw
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return raw.encode()[:MAX_IDENTIFIER - 9].decode(errors="ignore") + "_" + digest


def _unique(name: str, taken: set[str], reserved: tuple[str, ...]) -> str:
    candidate, n = name, 1
    while candidate in taken or candidate in reserved:
        n += 1
        candidate = column_name(f"{name}_{n}")
    taken.add(candidate)
    return candidate


def _value(column: Column) -> str:
    raw = f"r.data ->> {_literal(column.path)}"
    if column.type == "int":
        return f"CASE WHEN {raw} ~ '{_INT}' THEN ({raw})::bigint END"
    if column.type == "decimal":
        return f"CASE WHEN {raw} ~ '{_DECIMAL}' THEN ({raw})::numeric END"
    return raw


def _quoted(name: str) -> str:
    return name.replace('"', '""')


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def view_sql(spec: ViewSpec, form_id: int) -> str:
    fields = "".join(f',\n  {_value(c)} AS "{_quoted(c.name)}"' for c in spec.columns)
    live = ("JOIN submission_defs d ON d.id = r.submission_def_id AND d.current\n"
            "JOIN submissions s ON s.id = d.submission_id AND s.deleted_at IS NULL"
            " AND NOT s.draft\n")
    if spec.table_path == "":
        return (
            f'CREATE VIEW "{spec.name}" AS SELECT\n'
            "  s.id AS submission_id, s.instance_id, s.created_at AS submitted_at,\n"
            "  s.updated_at, s.review_state, s.device_id, fd.version AS form_version,\n"
            f"  r.row_key AS key{fields}\n"
            f"FROM submission_rows r\n{live}"
            "JOIN form_defs fd ON fd.id = d.form_def_id\n"
            f"WHERE r.form_id = {int(form_id)} AND r.table_path = ''")
    return (
        f'CREATE VIEW "{spec.name}" AS SELECT\n'
        "  s.id AS submission_id, s.instance_id, r.row_key AS key,\n"
        f"  r.parent_key, r.position{fields}\n"
        f"FROM submission_rows r\n{live}"
        f"WHERE r.form_id = {int(form_id)} AND r.table_path = {_literal(spec.table_path)}")


def _comment(form_id: int) -> str:
    return f"dodoso form {int(form_id)}"


def existing(db: Session, form_id: int) -> list[str]:
    """The views made for this form (found by the comment each carries, whatever its name)."""
    return list(db.scalars(text(
        "SELECT c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() "
        "JOIN pg_description d ON d.objoid = c.oid AND d.objsubid = 0 "
        "WHERE c.relkind = 'v' AND d.description = :comment ORDER BY c.relname"),
        {"comment": _comment(form_id)}))


def all_views(db: Session | Connection) -> list[str]:
    """Every form's views in the current schema."""
    return list(db.scalars(text(
        "SELECT c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema() "
        "JOIN pg_description d ON d.objoid = c.oid AND d.objsubid = 0 "
        "WHERE c.relkind = 'v' AND d.description LIKE 'dodoso form %' ORDER BY c.relname")))


def replace(db: Session, form_id: int, specs: list[ViewSpec], old: list[str]) -> None:
    """Drop the form's old views and create the new ones, in the caller's transaction."""
    for name in old:
        db.execute(text(f'DROP VIEW IF EXISTS "{_quoted(name)}"'))
    for spec in specs:
        db.execute(text(view_sql(spec, form_id)))
        db.execute(text(f'COMMENT ON VIEW "{spec.name}" IS {_literal(_comment(form_id))}'))


def drop(db: Session | Connection, names: list[str]) -> None:
    for name in names:
        db.execute(text(f'DROP VIEW IF EXISTS "{_quoted(name)}"'))


def live_forms(db: Session) -> list[Form]:
    return list(db.scalars(select(Form).where(Form.deleted_at.is_(None)).order_by(Form.id)))
