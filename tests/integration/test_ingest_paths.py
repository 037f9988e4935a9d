"""On PostgreSQL a new submission is written by one statement (data-modifying CTEs); on
SQLite by one statement per table. Both must store exactly the same thing: this test sends
the same submissions through each and compares every column that is not an id or a clock.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import delete, select

from server import queries
from server.db import utcnow
from server.errors import Problems
from server.models import (
    AppUser,
    AuditEvent,
    Form,
    FormAssignment,
    Project,
    Submission,
    SubmissionAttachment,
    SubmissionDef,
    SubmissionRow,
)
from server.queries import ingest as ingest_queries
from sync import ingest as sync_ingest
from tests.integration.test_openrosa_hostile import (  # noqa: F401
    collect,
    count,
    created,
    expect,
    instance,
    stored_def,
    submit,
)

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
    monkeypatch.setattr(sync_ingest, "_KNOWN", {})  # no guarded write: the full path
    created(submit(client, collect.url, instance("uuid:path-portable", photo="a.jpg",
                                                 sketch="b.jpg"), {"a.jpg": b"photo"}))
    one, other = stored(db, "uuid:path-pg"), stored(db, "uuid:path-portable")
    assert one["rows"] and one["audit"] and len(one["attachments"]) == 2
    assert one == other


# -- the guarded write: a new submission to a form this process already took one for --------

@pytest.fixture
def guarded(db, monkeypatch) -> list[bool]:
    """Each guarded write attempted, in order: whether its guard held (PostgreSQL only)."""
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("the guarded write is PostgreSQL's")
    attempts: list[bool] = []
    real = ingest_queries.insert_new_postgresql

    def spy(*args, guard=None, **kwargs):
        found = real(*args, guard=guard, **kwargs)
        if guard is not None:
            attempts.append(found is not None)
        return found
    monkeypatch.setattr(ingest_queries, "insert_new_postgresql", spy)
    return attempts


def test_a_guarded_write_stores_what_the_full_path_stores(client, collect, db, guarded):  # noqa: F811
    created(submit(client, collect.url, instance("uuid:full", photo="a.jpg", sketch="b.jpg"),
                   {"a.jpg": b"photo"}))
    assert guarded == []  # the first one for this form takes the full path
    created(submit(client, collect.url, instance("uuid:guarded", photo="a.jpg",
                                                 sketch="b.jpg"), {"a.jpg": b"photo"}))
    assert guarded == [True]
    one, other = stored(db, "uuid:full"), stored(db, "uuid:guarded")
    assert one["rows"] and one["audit"] and len(one["attachments"]) == 2
    assert one == other


def _close(db, c) -> None:
    db.get(Form, queries.forms.get(db, c.project.id, "hh").id).state = "closed"


def _unassign(db, c) -> None:
    form = queries.forms.get(db, c.project.id, "hh")
    db.execute(delete(FormAssignment).where(FormAssignment.form_id == form.id))


def _revoke(db, c) -> None:  # as another worker would: this process's cache not told
    db.get(AppUser, c.app_user.id).revoked_at = utcnow()


def _delete_project(db, c) -> None:
    db.get(Project, c.project.id).deleted_at = utcnow()


def _delete_form(db, c) -> None:
    db.get(Form, queries.forms.get(db, c.project.id, "hh").id).deleted_at = utcnow()


@pytest.mark.parametrize(("change", "answer"), [
    (_close, Problems.not_accepting),
    (_unassign, Problems.auth_required),
    (_revoke, Problems.forbidden),
    (_delete_project, Problems.forbidden),
    (_delete_form, Problems.not_found),
])
def test_when_the_guard_fails_nothing_is_written_and_the_full_path_answers(
        client, collect, db, guarded, change, answer):  # noqa: F811
    created(submit(client, collect.url, instance("uuid:before")))
    change(db, collect)
    db.commit()
    before = collect.snapshot(db)
    expect(submit(client, collect.url, instance("uuid:after")), answer)
    assert guarded == [False]
    collect.assert_nothing_stored(db, before)


def test_a_stored_instance_id_fails_the_guard_and_is_a_resend_or_a_conflict(
        client, collect, db, guarded):  # noqa: F811
    xml = instance("uuid:again", photo="a.jpg")
    created(submit(client, collect.url, xml))
    created(submit(client, collect.url, instance("uuid:other")))  # fills nothing new
    guarded.clear()
    created(submit(client, collect.url, xml, {"a.jpg": b"late photo"}))  # the split upload
    expect(submit(client, collect.url, instance("uuid:again", name="Other")),
           Problems.xml_conflict)
    assert guarded == [False, False]
    definition = stored_def(db, "uuid:again")
    assert count(db, SubmissionDef, SubmissionDef.instance_id == "uuid:again") == 1
    assert definition.attachments_present == 1


def test_a_body_flattening_refuses_is_answered_by_the_full_path(
        client, collect, db, guarded, monkeypatch):  # noqa: F811
    """Refused before the guarded write is tried: the full path checks the key, the form
    and the assignment first, and then refuses the body the same way."""
    real = sync_ingest.flatten
    monkeypatch.setattr(sync_ingest, "flatten",
                        lambda instance, schema: real(instance, schema, row_count_limit=2))
    created(submit(client, collect.url, instance("uuid:fine")))
    before = collect.snapshot(db)
    many = "".join("<members><m_name>x</m_name></members>" for _ in range(3))
    r = submit(client, collect.url, instance("uuid:too-many", body=many))
    expect(r, Problems.submission_unparseable)
    assert guarded == []
    collect.assert_nothing_stored(db, before)
    _unassign(db, collect)
    db.commit()
    expect(submit(client, collect.url, instance("uuid:too-many-2", body=many)),
           Problems.auth_required)
