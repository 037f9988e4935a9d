"""On PostgreSQL a new submission is written by one statement (data-modifying CTEs); on
SQLite by one statement per table. Both must store exactly the same thing: this test sends
the same submissions through each and compares every column that is not an id or a clock.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from server.models import AuditEvent, Submission, SubmissionAttachment, SubmissionDef, SubmissionRow
from server.queries import ingest as ingest_queries
from tests.integration.test_openrosa_hostile import collect, created, instance, submit  # noqa: F401

VOLATILE = {"id", "submission_id", "submission_def_id", "target_id", "created_at",
            "logged_at", "updated_at", "instance_id", "xml", "xml_sha256", "request_id"}


def _columns(obj) -> dict:
    return {c.key: getattr(obj, c.key) for c in obj.__table__.columns if c.key not in VOLATILE}


def stored(db, instance_id: str) -> dict:
    definition = db.scalar(select(SubmissionDef).where(SubmissionDef.instance_id == instance_id))
    submission = db.get(Submission, definition.submission_id)
    rows = db.scalars(select(SubmissionRow).where(
        SubmissionRow.submission_def_id == definition.id).order_by(SubmissionRow.id))
    attachments = db.scalars(select(SubmissionAttachment).where(
        SubmissionAttachment.submission_def_id == definition.id).order_by(
        SubmissionAttachment.name))
    events = db.scalars(select(AuditEvent).where(
        AuditEvent.target_type == "submission", AuditEvent.target_id == str(submission.id)))
    found = {"submission": _columns(submission), "definition": _columns(definition),
             "rows": [_columns(r) for r in rows],
             "attachments": [_columns(a) for a in attachments],
             "audit": [_columns(e) for e in events]}
    # The instanceID is in keys, answers and audit details: compare everything else.
    return json.loads(json.dumps(found, default=str).replace(instance_id, "<instanceID>"))


def test_one_statement_on_postgresql_stores_what_the_portable_path_stores(
        client, collect, db, monkeypatch):  # noqa: F811
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("the one-statement path is PostgreSQL's")
    used = []
    real = ingest_queries.insert_new_postgresql
    monkeypatch.setattr(ingest_queries, "insert_new_postgresql",
                        lambda *a, **k: used.append("pg") or real(*a, **k))
    created(submit(client, collect.url, instance("uuid:path-pg", photo="a.jpg",
                                                 sketch="b.jpg"), {"a.jpg": b"photo"}))
    assert used == ["pg"]
    monkeypatch.setattr(ingest_queries, "insert_new_postgresql",
                        ingest_queries.insert_new_portable)
    created(submit(client, collect.url, instance("uuid:path-portable", photo="a.jpg",
                                                 sketch="b.jpg"), {"a.jpg": b"photo"}))
    one, other = stored(db, "uuid:path-pg"), stored(db, "uuid:path-portable")
    assert one["rows"] and one["audit"] and len(one["attachments"]) == 2
    assert one == other
