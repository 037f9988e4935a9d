"""The SQL of the OData feeds: ``$filter``/``$orderby`` made SQL, and keyset pages.

Pages are keyset pages, never OFFSET ones: each page reads on from the sort key of the last
row of the page before (``after``), so the thousandth page of a repeat table costs what the
first does. Submissions are in Central's order (newest first: ``createdAt`` descending, then
id), or in ``$orderby``'s with the id as the last key; a repeat table's rows follow their
submissions' order, then document order (row id).
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from server.db import UTCDateTime, utcnow
from server.models import (
    AppUser,
    FormDef,
    Submission,
    SubmissionAttachment,
    SubmissionDef,
    SubmissionRow,
    User,
)
from server.models.submissions import ROOT_TABLE
from server.odata import filter as f

# -- $filter ---------------------------------------------------------------------------------


def field_column(name: str) -> ColumnElement[Any]:
    """A ``__system`` field as SQL. ``reviewState`` is ``null`` for received submissions
    and ``submitterId`` is the web user's id, else the app user's (as the REST API shows)."""
    return {
        "submissionDate": lambda: Submission.created_at,
        "updatedAt": lambda: Submission.updated_at,
        "deletedAt": lambda: Submission.deleted_at,
        "submitterId": lambda: func.coalesce(Submission.submitter_user_id,
                                             Submission.submitter_app_user_id),
        "reviewState": lambda: func.nullif(Submission.review_state, "received"),
    }[name]()


class _Extract(FunctionElement[int]):
    """``year(x)`` … ``second(x)`` of a UTC instant, as an integer, on either database."""

    type = Integer()
    inherit_cache = True
    name = "odata_extract"
    # The part is in the statement cache key: year() and month() must not share SQL.
    _traverse_internals = [*FunctionElement._traverse_internals,
                           ("part", InternalTraversal.dp_string)]

    def __init__(self, part: str, expr: ColumnElement[Any]) -> None:
        assert part in f.EXTRACTS, part
        self.part = part
        super().__init__(expr)


_STRFTIME = {"year": "%Y", "month": "%m", "day": "%d", "hour": "%H", "minute": "%M",
             "second": "%S"}


@compiles(_Extract)
def _extract_default(element: _Extract, compiler: Any, **kw: Any) -> str:
    inner = compiler.process(element.clauses, **kw)
    return f"CAST(FLOOR(EXTRACT({element.part.upper()} FROM {inner})) AS INTEGER)"


@compiles(_Extract, "postgresql")
def _extract_postgresql(element: _Extract, compiler: Any, **kw: Any) -> str:
    inner = compiler.process(element.clauses, **kw)
    return (f"CAST(FLOOR(EXTRACT({element.part.upper()} FROM ({inner}) AT TIME ZONE 'UTC')) "
            "AS INTEGER)")


@compiles(_Extract, "sqlite")
def _extract_sqlite(element: _Extract, compiler: Any, **kw: Any) -> str:
    inner = compiler.process(element.clauses, **kw)
    return f"CAST(STRFTIME('{_STRFTIME[element.part]}', {inner}) AS INTEGER)"


def _as_instant(value: object) -> object:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    return value


def _value(node: f.Value, other: f.Value | None = None) -> ColumnElement[Any]:
    if isinstance(node, f.FieldRef):
        return field_column(node.name)
    if isinstance(node, f.Now):
        return bindparam(None, utcnow(), type_=UTCDateTime())
    if isinstance(node, f.Extract):
        return _Extract(node.part, _value(node.operand))
    value = node.value
    if isinstance(value, dt.date):
        return bindparam(None, _as_instant(value), type_=UTCDateTime())
    if other is not None and not isinstance(other, f.Literal) \
            and not isinstance(value, decimal.Decimal):
        return bindparam(None, value, type_=_value(other).type)
    return literal(value)


def filter_clause(expr: f.Expr) -> ColumnElement[bool]:
    """The parsed ``$filter`` as a WHERE term, with Central's semantics: ``eq``/``ne`` are
    null-safe (``ne 'approved'`` keeps received submissions, whose state is null)."""
    if isinstance(expr, f.Literal):
        return true() if expr.value else false()
    if isinstance(expr, f.Not):
        return not_(filter_clause(expr.operand))
    if isinstance(expr, f.Logical):
        join = and_ if expr.op == "and" else or_
        return join(filter_clause(expr.left), filter_clause(expr.right))
    left_null = isinstance(expr.left, f.Literal) and expr.left.value is None
    right_null = isinstance(expr.right, f.Literal) and expr.right.value is None
    if left_null and right_null:
        return true() if expr.op == "eq" else false()
    if left_null or right_null:
        operand = _value(expr.right if left_null else expr.left)
        return operand.is_(None) if expr.op == "eq" else operand.is_not(None)
    left, right = _value(expr.left, expr.right), _value(expr.right, expr.left)
    return {
        "eq": lambda: left.is_not_distinct_from(right),
        "ne": lambda: left.is_distinct_from(right),
        "lt": lambda: left < right,
        "le": lambda: left <= right,
        "gt": lambda: left > right,
        "ge": lambda: left >= right,
    }[expr.op]()


# -- ordering and keysets --------------------------------------------------------------------

@dataclass(frozen=True)
class SortKey:
    name: str
    """A ``__system`` field, ``__id`` (the submission) or ``__row`` (the repeat row)."""
    expr: ColumnElement[Any]
    descending: bool
    nullable: bool

    def clause(self) -> ColumnElement[Any]:
        ordered = self.expr.desc() if self.descending else self.expr.asc()
        if not self.nullable:
            return ordered
        return ordered.nulls_last() if self.descending else ordered.nulls_first()


_NON_NULL = frozenset({"submissionDate"})


def sort_keys(orderby: Sequence[f.OrderKey], *, rows: bool = False) -> list[SortKey]:
    """``$orderby`` (Central: ascending puts nulls first, descending last), or Central's
    newest-first; then the submission id, then (for a repeat table) the row id."""
    if orderby:
        keys = [SortKey(k.field, field_column(k.field), k.descending,
                        k.field not in _NON_NULL) for k in orderby]
    else:
        keys = [SortKey("submissionDate", Submission.created_at, True, False)]
    keys.append(SortKey("__id", Submission.id, keys[0].descending, False))
    if rows:
        keys.append(SortKey("__row", SubmissionRow.id, False, False))
    return keys


def after(keys: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the order ``keys`` define (nulls placed as
    ``SortKey.clause`` places them)."""
    terms = []
    for i, key in enumerate(keys):
        equal = [k.expr.is_(None) if v is None else k.expr == v
                 for k, v in zip(keys[:i], values[:i], strict=True)]
        terms.append(and_(*equal, _beyond(key, values[i])))
    clause = or_(*terms)
    first, value = keys[0], values[0]
    if not first.nullable:  # a plain range on the leading key, which an index can serve
        bound = first.expr <= value if first.descending else first.expr >= value
        clause = and_(bound, clause)
    return clause


def _beyond(key: SortKey, value: Any) -> ColumnElement[bool]:
    if key.descending:  # nulls last
        if value is None:
            return false()
        below = key.expr < value
        return or_(below, key.expr.is_(None)) if key.nullable else below
    if value is None:  # ascending, nulls first
        return key.expr.is_not(None)
    return key.expr > value


# -- what the feed reads ---------------------------------------------------------------------

@dataclass(frozen=True)
class Scope:
    """Which submissions: a form's (or its draft's), through ``$filter``, or just one."""

    form_id: int
    draft: bool = False
    filter: f.Expr | None = None
    instance_id: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        terms: list[ColumnElement[bool]] = [Submission.form_id == self.form_id,
                                            Submission.draft.is_(self.draft)]
        # As in Central, a filter on __system/deletedAt is the way to see deleted ones.
        if self.filter is None or not f.mentions(self.filter, "deletedAt"):
            terms.append(Submission.deleted_at.is_(None))
        if self.filter is not None:
            terms.append(filter_clause(self.filter))
        if self.instance_id is not None:
            terms.append(Submission.instance_id == self.instance_id)
        return terms


def _current() -> ColumnElement[bool]:
    return and_(SubmissionDef.submission_id == Submission.id, SubmissionDef.current.is_(True))


def _with_keys(query: Select, keys: Sequence[SortKey]) -> Select:
    return query.add_columns(*(k.expr.label(f"k{i}") for i, k in enumerate(keys)))


def _page(query: Select, keys: Sequence[SortKey], after_values: Sequence[Any] | None,
          limit: int | None, offset: int) -> Select:
    if after_values is not None:
        query = query.where(after(keys, after_values))
    return query.order_by(*(k.clause() for k in keys)).limit(limit).offset(offset or None)


def submissions_page(db: Session, scope: Scope, keys: Sequence[SortKey],
                     after_values: Sequence[Any] | None = None, *, limit: int | None = None,
                     offset: int = 0) -> list[Any]:
    """Submissions with their ``__system`` values, their current version's root row, and
    their sort key (``k0``, ``k1``…), one page in one statement."""
    user, app_user = aliased(User), aliased(AppUser)
    root = aliased(SubmissionRow)
    edits = (select(func.count()).where(SubmissionDef.submission_id == Submission.id)
             .correlate(Submission).scalar_subquery() - 1)
    attachments = aliased(SubmissionAttachment)
    has_data = exists().where(attachments.submission_def_id == SubmissionDef.id,
                              attachments.blob_id.is_not(None),
                              attachments.name.like("%.enc"))
    query = (
        select(Submission.id, Submission.instance_id,
               SubmissionDef.id.label("def_id"),
               SubmissionDef.instance_id.label("def_instance_id"),
               Submission.created_at, Submission.updated_at, Submission.deleted_at,
               Submission.review_state, Submission.device_id,
               func.coalesce(Submission.submitter_user_id,
                             Submission.submitter_app_user_id).label("submitter_id"),
               func.coalesce(user.display_name, app_user.display_name).label("submitter_name"),
               SubmissionDef.attachments_present, SubmissionDef.attachments_expected,
               SubmissionDef.encrypted, has_data.label("has_data"), edits.label("edits"),
               FormDef.version.label("form_version"), root.data)
        .join(SubmissionDef, _current())
        .join(FormDef, FormDef.id == SubmissionDef.form_def_id)
        .outerjoin(root, and_(root.submission_def_id == SubmissionDef.id,
                              root.form_id == Submission.form_id,
                              root.table_path == ROOT_TABLE))
        .outerjoin(user, user.id == Submission.submitter_user_id)
        .outerjoin(app_user, app_user.id == Submission.submitter_app_user_id)
        .where(*scope.conditions())
    )
    return list(db.execute(_page(_with_keys(query, keys), keys, after_values, limit, offset)))


def _rows_select(scope: Scope, table_path: str) -> Select:
    return (
        select(SubmissionRow.id, SubmissionRow.row_key, SubmissionRow.parent_key,
               SubmissionRow.table_path, SubmissionRow.data, Submission.instance_id,
               SubmissionDef.id.label("def_id"),
               SubmissionDef.instance_id.label("def_instance_id"))
        .select_from(Submission)
        .join(SubmissionDef, _current())
        .join(SubmissionRow, and_(SubmissionRow.submission_def_id == SubmissionDef.id,
                                  SubmissionRow.form_id == scope.form_id,
                                  SubmissionRow.table_path == table_path))
        .where(*scope.conditions())
    )


def rows_page(db: Session, scope: Scope, table_path: str, keys: Sequence[SortKey],
              after_values: Sequence[Any] | None = None, *, limit: int | None = None,
              offset: int = 0) -> list[Any]:
    """One page of a repeat table's rows (of live submissions ``scope`` selects)."""
    query = _with_keys(_rows_select(scope, table_path), keys)
    return list(db.execute(_page(query, keys, after_values, limit, offset)))


def rows_under(db: Session, form_id: int, def_ids: Sequence[int],
               table_paths: Sequence[str]) -> list[Any]:
    """The rows of these repeat tables in these versions, in document order
    (``$expand=*``: one query per page, however many submissions it holds)."""
    if not def_ids or not table_paths:
        return []
    return list(db.execute(
        select(SubmissionRow.row_key, SubmissionRow.parent_key, SubmissionRow.table_path,
               SubmissionRow.data, SubmissionRow.submission_def_id)
        .where(SubmissionRow.form_id == form_id,
               SubmissionRow.table_path.in_(table_paths),
               SubmissionRow.submission_def_id.in_(def_ids))
        .order_by(SubmissionRow.id)))


def count_submissions(db: Session, scope: Scope) -> int:
    return db.scalar(select(func.count()).select_from(Submission)
                     .where(*scope.conditions())) or 0


def count_rows(db: Session, scope: Scope, table_path: str) -> int:
    query = _rows_select(scope, table_path).with_only_columns(func.count())
    return db.scalar(query) or 0
