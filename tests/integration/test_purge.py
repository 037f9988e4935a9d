"""Soft-deleted submissions are purged for good 30 days after their deletion (as Central
does): everything stored for them goes, the audit log says which were purged, a restore
meanwhile keeps one, and their files become garbage for the blob clean-up."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from server.db import utcnow
from server.models import (
    AuditEvent,
    Blob,
    Submission,
    SubmissionAttachment,
    SubmissionComment,
    SubmissionDef,
    SubmissionRow,
)
from server.services import jobs
from server.services.purge import PURGE_ACTION, purge_deleted
from tests.support.api import submit_xml, upload_form

SURVEY = """
| survey   |              |         |            |
|          | type         | name    | label      |
|          | text         | name    | Name       |
|          | begin repeat | kids    | Children   |
|          | text         | kid     | Child      |
|          | end repeat   |         |            |
| settings |              |         |            |
|          | form_title   | form_id | version    |
|          | Purge        | purge   | 1          |
"""


def instance(instance_id: str) -> bytes:
    return (f'<data id="purge" version="1"><name>{instance_id}</name>'
            f"<kids><kid>a</kid></kids><kids><kid>b</kid></kids>"
            f"<meta><instanceID>{instance_id}</instanceID></meta></data>").encode()


def count(db, model, *where) -> int:
    return db.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def submissions_url(client, project, auth) -> str:
    upload_form(client, project, auth, SURVEY)
    return f"/v1/projects/{project.id}/forms/purge/submissions"


def submit(client, url, auth, instance_id: str) -> None:
    submit_xml(client, url, auth, instance(instance_id))


def delete(client, url, auth, instance_id: str, *, days_ago: float, db) -> None:
    assert client.delete(f"{url}/{instance_id}", headers=auth).status_code == 200
    db.execute(update(Submission).where(Submission.instance_id == instance_id)
               .values(deleted_at=utcnow() - dt.timedelta(days=days_ago)))
    db.commit()


def test_purge__only_what_was_deleted_over_30_days_ago_goes_with_everything_it_held(
        client, db, submissions_url, auth):
    url = submissions_url
    for name in ("uuid:old", "uuid:recent", "uuid:live"):
        submit(client, url, auth, name)
    assert client.post(f"{url}/uuid:old/comments", json={"body": "check"},
                       headers=auth).status_code == 200
    delete(client, url, auth, "uuid:old", days_ago=31, db=db)
    delete(client, url, auth, "uuid:recent", days_ago=29, db=db)
    old = db.scalar(select(Submission.id).where(Submission.instance_id == "uuid:old"))

    report = purge_deleted(db)
    db.commit()

    assert report.purged == 1 and list(report.by_form.values()) == [1]
    assert db.get(Submission, old) is None
    assert count(db, SubmissionDef, SubmissionDef.submission_id == old) == 0
    assert count(db, SubmissionRow, SubmissionRow.submission_def_id.in_(
        select(SubmissionDef.id).where(SubmissionDef.submission_id == old))) == 0
    assert count(db, SubmissionComment, SubmissionComment.submission_id == old) == 0
    assert {i for (i,) in db.execute(select(Submission.instance_id))} == {
        "uuid:recent", "uuid:live"}
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == PURGE_ACTION))
    assert event.details["instanceIds"] == ["uuid:old"] and event.details["count"] == 1
    # The recent one can still be restored; the purged one cannot, and its id is free.
    assert client.post(f"{url}/uuid:recent/restore", headers=auth).status_code == 200
    assert client.post(f"{url}/uuid:old/restore", headers=auth).status_code == 404
    submit(client, url, auth, "uuid:old")


def test_purge__a_dry_run_counts_and_changes_nothing(client, db, submissions_url, auth):
    for name in ("uuid:a", "uuid:b", "uuid:c"):
        submit(client, submissions_url, auth, name)
        delete(client, submissions_url, auth, name, days_ago=40, db=db)
    report = purge_deleted(db, dry_run=True, batch=2)  # two batches
    assert report.purged == 3 and report.dry_run
    assert count(db, Submission) == 3
    assert count(db, AuditEvent, AuditEvent.action == PURGE_ACTION) == 0
    assert purge_deleted(db, batch=2).purged == 3
    assert count(db, Submission) == 0


def test_purge__a_submission_restored_meanwhile_is_kept(client, db, submissions_url, auth,
                                                        monkeypatch):
    from server.queries import purge as purge_queries

    submit(client, submissions_url, auth, "uuid:back")
    delete(client, submissions_url, auth, "uuid:back", days_ago=45, db=db)
    real = purge_queries.purgeable

    def restored_in_between(*args, **kw):
        found = real(*args, **kw)
        if found:  # restored after the purge looked, before it deleted
            db.execute(update(Submission).values(deleted_at=None))
        return found

    monkeypatch.setattr(purge_queries, "purgeable", restored_in_between)
    assert purge_deleted(db).purged == 0
    assert count(db, Submission, Submission.deleted_at.is_(None)) == 1


def test_purge__the_files_of_a_purged_submission_become_garbage(
        client, db, project, auth, make):
    from server.services.gc import collect_garbage
    from tests.support.api import openrosa_submit
    from tests.support.forms import assigned_app_user

    upload_form(client, project, auth, SURVEY.replace(
        "|          | begin repeat | kids    | Children   |",
        "|          | image        | photo   | Photo      |\n"
        "|          | begin repeat | kids    | Children   |"))
    _, token = assigned_app_user(make, db, project, "purge")
    xml = instance("uuid:photo").replace(b"<kids>", b"<photo>p.jpg</photo><kids>", 1)
    openrosa_submit(client, f"/v1/key/{token}/projects/{project.id}/submission", xml,
                    {"p.jpg": b"a photo nobody else sent"})
    blob_id = db.scalar(select(SubmissionAttachment.blob_id).where(
        SubmissionAttachment.name == "p.jpg"))
    url = f"/v1/projects/{project.id}/forms/purge/submissions"
    delete(client, url, auth, "uuid:photo", days_ago=31, db=db)
    assert purge_deleted(db).purged == 1
    db.commit()
    store = client.application.extensions["dodoso"].blob_store
    collect_garbage(db, store, grace=dt.timedelta(0))
    assert db.get(Blob, blob_id) is None


def test_purge__runs_daily_as_a_job(client, db, submissions_url, auth):
    from server.models import Job

    assert jobs.PERIODIC["submissions.purge"] == dt.timedelta(days=1)
    submit(client, submissions_url, auth, "uuid:job")
    delete(client, submissions_url, auth, "uuid:job", days_ago=31, db=db)
    result = jobs.HANDLERS["submissions.purge"](db, Job(kind="submissions.purge", payload={}))
    assert result["purged"] == 1 and count(db, Submission) == 0
