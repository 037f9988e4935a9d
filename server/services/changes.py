"""The change feed ("changes since"): the submissions of a form created, edited, reviewed,
deleted or restored since the caller's last cursor, in pages, with the next cursor.

Guarantee: every change committed after a cursor was handed out is in a later page (at
least once; a change can come twice when it commits while a page is being read). Nothing is
held back to wait for slow writers and nothing depends on clocks agreeing: on PostgreSQL
the cursor is a transaction snapshot (see ``server.queries.changes``), so a transaction
that stamped an earlier time or took a lower id but committed later is still seen. Each
entry is the submission's state now (a submission changed twice between polls comes once).

Cursors are opaque (URL-safe base64 of JSON), bound to the form and the database kind.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from server.errors import Problems
from server.models import Form
from server.queries import changes as queries

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Change:
    instance_id: str
    kind: str
    """``created`` (never changed since), ``updated`` (edited, reviewed or restored) or
    ``deleted``."""
    review_state: str | None
    created_at: dt.datetime
    updated_at: dt.datetime | None
    deleted_at: dt.datetime | None
    current_version: dict[str, Any]


@dataclass(frozen=True)
class ChangePage:
    changes: list[Change]
    cursor: str
    has_more: bool


def _encode(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, form: Form, backend: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise Problems.invalid_cursor() from None
    if not isinstance(data, dict) or data.get("f") != form.id or data.get("b") != backend:
        raise Problems.invalid_cursor()
    return data


def changes_since(db: Session, form: Form, cursor: str | None,
                  limit: int = DEFAULT_LIMIT) -> ChangePage:
    postgres = db.get_bind().dialect.name == "postgresql"
    state = _decode(cursor, form, "pg" if postgres else "sqlite") if cursor else None
    return (_postgres if postgres else _sqlite)(db, form, state, limit)


def _change(row: Any) -> Change:
    kind = "deleted" if row.deleted_at else "created" if row.updated_at is None else "updated"
    return Change(row.instance_id, kind,
                  None if row.review_state == "received" else row.review_state,
                  row.created_at, row.updated_at, row.deleted_at,
                  {"instanceId": row.current_instance_id, "createdAt": row.current_created_at})


def _postgres(db: Session, form: Form, state: dict[str, Any] | None, limit: int) -> ChangePage:
    """A window is "changed since snapshot ``prev``", read page by page in id order. Its
    upper snapshot ``next`` is taken before its first page is read, so whatever commits
    while the window is read is also changed since ``next``: the next window has it."""
    state = state or {}
    after = state.get("after")
    if (after is not None and (not isinstance(after, int) or isinstance(after, bool))) \
            or not all(_snapshot(state.get(k)) for k in ("prev", "next")):
        raise Problems.invalid_cursor()
    window_start = state.get("next") or queries.current_snapshot(db)
    rows = queries.changed_since_snapshot(db, form.id, state.get("prev"), after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    if more:
        following = {"prev": state.get("prev"), "next": window_start, "after": rows[-1].id}
    else:
        following = {"prev": window_start, "next": None, "after": None}
    cursor = _encode({"b": "pg", "f": form.id, **following})
    return ChangePage([_change(r) for r in rows], cursor, more)


def _snapshot(value: object) -> bool:
    """A snapshot as ``pg_current_snapshot()::text`` writes it (``xmin:xmax:xip,…``), or
    none: checked here so that a forged cursor is a 400, not a database error."""
    if value is None:
        return True
    if not isinstance(value, str) or len(value) > 100_000:
        return False
    parts = value.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts[:2]):
        return False
    xmin, xmax = int(parts[0]), int(parts[1])
    xip = parts[2].split(",") if parts[2] else []
    return (0 < xmin <= xmax < 2 ** 63 and all(x.isdigit() for x in xip)
            and all(xmin <= int(x) < xmax for x in xip))


def _sqlite(db: Session, form: Form, state: dict[str, Any] | None, limit: int) -> ChangePage:
    after = None
    if state is not None and ("t" in state or "id" in state):
        try:
            after = (dt.datetime.fromisoformat(state["t"]), int(state["id"]))
        except (KeyError, TypeError, ValueError):
            raise Problems.invalid_cursor() from None
        if after[0].tzinfo is None:
            raise Problems.invalid_cursor()
    rows = queries.changed_after_stamp(db, form.id, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    if rows:
        after = (rows[-1].stamp, rows[-1].id)
    position = {"t": after[0].isoformat(), "id": after[1]} if after else {}
    cursor = _encode({"b": "sqlite", "f": form.id, **position})
    return ChangePage([_change(r) for r in rows], cursor, more)
