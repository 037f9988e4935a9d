"""Review (one submission, and in bulk by each filter), comments, delete and restore: Central's
routes and shapes, audited, with each role's rights."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event, func, select, update

from server.models import AuditEvent, Submission, SubmissionComment
from tests.integration.test_openrosa import SURVEY
from tests.integration.test_submissions_api import instance
from tests.support.api import (
    XML,
    create_draft,
    openrosa_submit,
    publish_draft,
    submit_xml,
    upload_form,
)
from tests.support.forms import assigned_app_user
from tests.support.sql import QueryCounter


@pytest.fixture
def url(client, project, auth):
    upload_form(client, project, auth, SURVEY)
    return f"/v1/projects/{project.id}/forms/hh/submissions"


def submit(client, url, auth, n: int, *, device: str | None = None, version: str = "1"):
    query = f"?deviceID={device}" if device else ""
    submit_xml(client, f"{url}{query}", auth, instance(f"uuid:{n:04d}", version=version))
    return f"uuid:{n:04d}"


def states(db) -> dict[str, str]:
    db.expire_all()
    return dict(db.execute(select(Submission.instance_id, Submission.review_state)).all())


def events(db, action: str) -> list[AuditEvent]:
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)
                           .order_by(AuditEvent.id)))


# -- one submission ------------------------------------------------------------------------

def test_review__sets_the_state_audits_and_answers_the_submission(client, url, auth, db,
                                                                  manager):
    submit(client, url, auth, 1)
    r = client.patch(f"{url}/uuid:0001", json={"reviewState": "hasIssues"}, headers=auth)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["instanceId"] == "uuid:0001"
    assert body["reviewState"] == "hasIssues"
    assert body["updatedAt"] is not None
    [event] = events(db, "submission.update")
    assert event.actor_user_id == manager.id
    assert event.details == {"instanceId": "uuid:0001", "reviewState": "hasIssues",
                             "previous": "received"}
    again = client.patch(f"{url}/uuid:0001", json={"reviewState": "hasIssues"}, headers=auth)
    assert again.status_code == 200
    assert len(events(db, "submission.update")) == 1  # nothing changed, nothing audited
    back = client.patch(f"{url}/uuid:0001", json={"reviewState": None}, headers=auth)
    assert back.get_json()["reviewState"] is None
    assert states(db) == {"uuid:0001": "received"}


def test_review__each_state_and_bad_input(client, url, auth):
    submit(client, url, auth, 1)
    for state in ("received", "hasIssues", "edited", "approved", "rejected"):
        r = client.patch(f"{url}/uuid:0001", json={"reviewState": state}, headers=auth)
        assert r.status_code == 200
        assert r.get_json()["reviewState"] == (None if state == "received" else state)
    for body in ({"reviewState": "great"}, {}, {"reviewState": "approved", "other": 1}):
        r = client.patch(f"{url}/uuid:0001", json=body, headers=auth)
        assert r.status_code == 422, body
        assert r.get_json()["code"] == 422.1
    assert client.patch(f"{url}/uuid:nope", json={"reviewState": "approved"},
                        headers=auth).status_code == 404


def test_review__an_edit_sets_edited_as_central_does(client, url, auth):
    submit(client, url, auth, 1)
    client.patch(f"{url}/uuid:0001", json={"reviewState": "approved"}, headers=auth)
    edit = instance("uuid:0002", name="Amina J.", deprecated="uuid:0001")
    assert client.put(f"{url}/uuid:0001", data=edit, content_type=XML,
                      headers=auth).status_code == 200
    assert client.get(f"{url}/uuid:0001", headers=auth).get_json()["reviewState"] == "edited"


def test_review__rights(client, url, auth, make, project):
    submit(client, url, auth, 1)
    for role, status in (("viewer", 403), ("data-manager", 200), ("manager", 200)):
        headers = make.auth(make.member(project, role))
        r = client.patch(f"{url}/uuid:0001", json={"reviewState": "approved"}, headers=headers)
        assert r.status_code == status, role
        bulk = client.post(f"{url}/review", json={"reviewState": "rejected"}, headers=headers)
        assert bulk.status_code == status, role
    outsider = make.auth(make.member(make.project("Elsewhere"), "manager"))
    assert client.patch(f"{url}/uuid:0001", json={"reviewState": "approved"},
                        headers=outsider).status_code == 404
    assert client.patch(f"{url}/uuid:0001", json={"reviewState": "approved"}).status_code == 401


# -- bulk review by filter -----------------------------------------------------------------

def test_bulk_review__by_review_state_in_one_update_with_one_batch_of_audit_rows(
        client, url, auth, db, engine):
    for n in range(1, 6):
        submit(client, url, auth, n)
    client.patch(f"{url}/uuid:0001", json={"reviewState": "hasIssues"}, headers=auth)
    writes: list[str] = []

    def seen(conn, cursor, statement, *args):
        if not statement.lstrip().upper().startswith(("SELECT", "SAVEPOINT", "RELEASE")):
            writes.append(statement.split()[0].upper())

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with QueryCounter(engine) as counter:
            r = client.post(f"{url}/review?reviewState=received",
                            json={"reviewState": "approved", "comment": "Checked by phone"},
                            headers=auth)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"count": 4}
    assert states(db) == {"uuid:0001": "hasIssues", "uuid:0002": "approved",
                          "uuid:0003": "approved", "uuid:0004": "approved",
                          "uuid:0005": "approved"}
    # one UPDATE, one INSERT of comments, one INSERT of audit rows: no per-row loop
    assert writes.count("UPDATE") == 1
    assert writes.count("INSERT") == 2, writes
    assert len(counter.statements) < 10
    bulk = [e for e in events(db, "submission.update") if e.details.get("bulk")]
    assert sorted(e.details["instanceId"] for e in bulk) == [f"uuid:000{n}" for n in (2, 3, 4, 5)]
    assert all(e.request_id for e in bulk)
    assert db.scalar(select(func.count()).select_from(SubmissionComment)) == 4
    again = client.post(f"{url}/review?reviewState=approved", json={"reviewState": "approved"},
                        headers=auth)
    assert again.get_json() == {"count": 0}


def test_bulk_review__by_device_submitter_app_user_and_version(client, url, auth, db, make,
                                                               project, manager):
    submit(client, url, auth, 1, device="collect%3Aa")
    submit(client, url, auth, 2, device="collect%3Ab")
    other = make.member(project, "data-manager")
    submit(client, url, make.auth(other), 3)
    app_user, token = assigned_app_user(make, db, project, "hh")
    openrosa_submit(client, f"/v1/key/{token}/projects/{project.id}/submission"
                    "?deviceID=collect%3Aabc", instance("uuid:0004"))

    def bulk(query: str, state: str) -> int:
        r = client.post(f"{url}/review?{query}", json={"reviewState": state}, headers=auth)
        assert r.status_code == 200, r.get_json()
        return r.get_json()["count"]

    assert bulk("deviceId=collect:a", "approved") == 1
    assert bulk(f"submitterId={other.id}", "rejected") == 1
    assert bulk(f"appUserId={app_user.id}", "hasIssues") == 1
    assert states(db) == {"uuid:0001": "approved", "uuid:0002": "received",
                          "uuid:0003": "rejected", "uuid:0004": "hasIssues"}
    assert bulk(f"submitterId={manager.id}&appUserId={app_user.id}", "received") == 2

    create_draft(client, project, auth, "hh")
    publish_draft(client, project, auth, "hh", version="2")
    submit(client, url, auth, 5, version="2")
    assert bulk("formVersion=2", "approved") == 1
    assert states(db)["uuid:0005"] == "approved"
    assert bulk("formVersion=1&formVersion=2&reviewState=approved", "rejected") == 1


def test_bulk_review__by_submission_date_and_include_history(client, url, auth, db):
    for n in (1, 2, 3):
        submit(client, url, auth, n)
    old = dt.datetime(2026, 1, 10, tzinfo=dt.timezone.utc)
    db.execute(update(Submission).where(Submission.instance_id == "uuid:0001")
               .values(created_at=old))
    db.commit()
    r = client.post(f"{url}/review?submittedTo=2026-02-01T00:00:00Z",
                    json={"reviewState": "rejected"}, headers=auth)
    assert r.get_json() == {"count": 1}
    r = client.post(f"{url}/review?submittedFrom=2026-02-01T00:00:00Z",
                    json={"reviewState": "approved"}, headers=auth)
    assert r.get_json() == {"count": 2}
    edit = instance("uuid:0012", name="Edited", deprecated="uuid:0002")
    assert client.put(f"{url}/uuid:0002", data=edit, content_type=XML,
                      headers=auth).status_code == 200
    # every version matches with includeHistory, yet each submission is changed once
    r = client.post(f"{url}/review?includeHistory=true", json={"reviewState": "hasIssues"},
                    headers=auth)
    assert r.get_json() == {"count": 3}
    assert set(states(db).values()) == {"hasIssues"}


def test_bulk_review__expected_count_guards_the_change(client, url, auth, db):
    for n in (1, 2, 3):
        submit(client, url, auth, n)
    r = client.post(f"{url}/review", json={"reviewState": "approved", "expectedCount": 2},
                    headers=auth)
    assert r.status_code == 409
    assert r.get_json()["code"] == 409.13
    assert r.get_json()["details"] == {"count": 3, "expected": 2}
    assert set(states(db).values()) == {"received"}
    assert not events(db, "submission.update")
    ok = client.post(f"{url}/review", json={"reviewState": "approved", "expectedCount": 3},
                     headers=auth)
    assert ok.get_json() == {"count": 3}
    # all three already approved: nothing to change, and the guard still holds
    same = client.post(f"{url}/review", json={"reviewState": "approved", "expectedCount": 3},
                       headers=auth)
    assert same.status_code == 200 and same.get_json() == {"count": 0}
    for bad in ({"reviewState": "approved", "expectedCount": -1},
                {"reviewState": "approved", "expectedCount": "3"},
                {"reviewState": "approved", "comment": ""},
                {"reviewState": "ok"}):
        assert client.post(f"{url}/review", json=bad, headers=auth).status_code == 422, bad
    assert client.post(f"{url}/review?reviewState=nope", json={"reviewState": "approved"},
                       headers=auth).status_code == 422


def test_bulk_review__leaves_deleted_and_other_forms_alone(client, url, auth, db, project):
    submit(client, url, auth, 1)
    submit(client, url, auth, 2)
    assert client.delete(f"{url}/uuid:0002", headers=auth).status_code == 200
    r = client.post(f"{url}/review", json={"reviewState": "approved"}, headers=auth)
    assert r.get_json() == {"count": 1}
    assert states(db) == {"uuid:0001": "approved", "uuid:0002": "received"}


# -- comments ------------------------------------------------------------------------------

def test_comments__post_and_list_newest_first(client, url, auth, manager, db):
    submit(client, url, auth, 1)
    for body in ("First look: fine", "Village name misspelt"):
        r = client.post(f"{url}/uuid:0001/comments", json={"body": body}, headers=auth)
        assert r.status_code == 200, r.get_json()
        assert r.get_json()["body"] == body
        assert r.get_json()["actorId"] == manager.id
    listed = client.get(f"{url}/uuid:0001/comments", headers=auth).get_json()
    assert [c["body"] for c in listed] == ["Village name misspelt", "First look: fine"]
    assert set(listed[0]) == {"body", "actorId", "createdAt"}
    extended = client.get(f"{url}/uuid:0001/comments",
                          headers={**auth, "X-Extended-Metadata": "true"}).get_json()
    assert extended[0]["actor"]["id"] == manager.id
    assert len(events(db, "submission.comment")) == 2


def test_comments__rights_and_validation(client, url, auth, make, project):
    submit(client, url, auth, 1)
    viewer = make.auth(make.member(project, "viewer"))
    assert client.get(f"{url}/uuid:0001/comments", headers=viewer).status_code == 200
    assert client.post(f"{url}/uuid:0001/comments", json={"body": "x"},
                       headers=viewer).status_code == 403
    for bad in ({}, {"body": ""}, {"body": "x" * 10_001}, {"body": 3}):
        assert client.post(f"{url}/uuid:0001/comments", json=bad,
                           headers=auth).status_code == 422, bad
    assert client.post(f"{url}/uuid:nope/comments", json={"body": "x"},
                       headers=auth).status_code == 404


# -- delete and restore ----------------------------------------------------------------------

def test_delete__hides_the_submission_and_ingest_refuses_its_id_until_restored(
        client, url, auth, db):
    submit(client, url, auth, 1)
    submit(client, url, auth, 2)
    r = client.delete(f"{url}/uuid:0001", headers=auth)
    assert r.status_code == 200 and r.get_json() == {"success": True}
    assert client.get(f"{url}/uuid:0001", headers=auth).status_code == 404
    assert [s["instanceId"] for s in client.get(url, headers=auth).get_json()] == ["uuid:0002"]
    assert client.delete(f"{url}/uuid:0001", headers=auth).status_code == 404
    assert client.patch(f"{url}/uuid:0001", json={"reviewState": "approved"},
                        headers=auth).status_code == 404
    resent = client.post(url, data=instance("uuid:0001"), content_type=XML, headers=auth)
    assert resent.status_code == 409
    [deleted] = events(db, "submission.delete")
    assert deleted.details == {"instanceId": "uuid:0001"}

    assert client.post(f"{url}/uuid:0002/restore", headers=auth).status_code == 404
    r = client.post(f"{url}/uuid:0001/restore", headers=auth)
    assert r.status_code == 200 and r.get_json() == {"success": True}
    got = client.get(f"{url}/uuid:0001", headers=auth).get_json()
    assert got["deletedAt"] is None and got["updatedAt"] is not None
    assert len(events(db, "submission.restore")) == 1
    assert client.post(f"{url}/uuid:0001/restore", headers=auth).status_code == 404


def test_delete__only_managers_delete_and_restore(client, url, auth, make, project):
    submit(client, url, auth, 1)
    for role in ("viewer", "data-manager", "designer"):
        headers = make.auth(make.member(project, role))
        assert client.delete(f"{url}/uuid:0001", headers=headers).status_code == 403, role
    assert client.delete(f"{url}/uuid:0001", headers=auth).status_code == 200
    data_manager = make.auth(make.member(project, "data-manager"))
    assert client.post(f"{url}/uuid:0001/restore", headers=data_manager).status_code == 403
    admin = make.auth(make.user(admin=True))
    assert client.post(f"{url}/uuid:0001/restore", headers=admin).status_code == 200
