"""Every write is recorded in the audit log: who, what, when; secrets never."""

from __future__ import annotations

from sqlalchemy import select

from server.models import AuditEvent
from tests.conftest import PASSWORD


def actions(db) -> list[str]:
    return list(db.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_writes_through_the_api__are_all_audited_with_their_actor(client, make, admin, db):
    headers = make.auth(admin)
    project = client.post("/v1/projects", json={"name": "Diaspora registry"},
                          headers=headers).get_json()
    pid = project["id"]
    client.patch(f"/v1/projects/{pid}", json={"description": "MIDA"}, headers=headers)
    app_user = client.post(f"/v1/projects/{pid}/app-users", json={"displayName": "T1"},
                           headers=headers).get_json()
    client.delete(f"/v1/projects/{pid}/app-users/{app_user['id']}", headers=headers)
    other = make.user()
    client.post(f"/v1/projects/{pid}/assignments/viewer/{other.id}", headers=headers)
    client.delete(f"/v1/projects/{pid}/assignments/viewer/{other.id}", headers=headers)
    client.delete(f"/v1/projects/{pid}", headers=headers)

    events = db.scalars(select(AuditEvent).where(AuditEvent.project_id == pid)
                        .order_by(AuditEvent.id)).all()
    assert [e.action for e in events] == [
        "project.create", "project.update", "app_user.create", "app_user.revoke",
        "project.role.assign", "project.role.unassign", "project.delete",
    ]
    assert all(e.actor_user_id == admin.id for e in events)
    assert all(e.request_id for e in events)
    assert all(e.logged_at is not None for e in events)


def test_secrets__never_reach_the_audit_log(client, make, admin, db):
    headers = make.auth(admin)
    client.post("/v1/users", json={"email": "n@example.org", "password": "a secret password"},
                headers=headers)
    project = make.project()
    token = client.post(f"/v1/projects/{project.id}/app-users", json={"displayName": "T"},
                        headers=headers).get_json()["token"]
    dump = repr([(e.action, e.details) for e in db.scalars(select(AuditEvent))])
    assert "a secret password" not in dump
    assert token not in dump
    assert PASSWORD not in dump


def test_failed_logins__are_audited_for_existing_accounts(client, make, db):
    user = make.user()
    client.post("/v1/sessions", json={"email": user.email, "password": "wrong wrong"})
    failed = db.scalars(select(AuditEvent).where(AuditEvent.action == "user.session.failed"))
    assert [e.target_id for e in failed] == [str(user.id)]


def test_audit_api__admins_see_all_managers_see_their_project(client, make, admin_headers):
    project = make.project()
    manager = make.member(project, "manager")
    headers = make.auth(manager)
    client.patch(f"/v1/projects/{project.id}", json={"name": "Renamed"}, headers=headers)
    mine = client.get(f"/v1/projects/{project.id}/audits", headers=headers).get_json()
    assert "project.update" in [e["action"] for e in mine]
    assert all(e["projectId"] == project.id for e in mine)
    assert client.get("/v1/audits", headers=headers).status_code == 403
    every = client.get("/v1/audits?action=project.*&limit=5", headers=admin_headers).get_json()
    assert every and all(e["action"].startswith("project.") for e in every)
    viewer = make.member(project, "viewer")
    assert client.get(f"/v1/projects/{project.id}/audits",
                      headers=make.auth(viewer)).status_code == 403


def test_lockout__is_audited_once(client, make, db, settings):
    user = make.user()
    for _ in range(settings.login_max_failures + 2):
        client.post("/v1/sessions", json={"email": user.email, "password": "wrong wrong"})
    assert actions(db).count("user.lockout") == 1
