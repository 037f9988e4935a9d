"""Projects, role assignments, and access across projects."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from server.auth.roles import ROLE_VERBS
from server.models import Project


def test_create_project__admin_only(client, make, admin_headers):
    r = client.post("/v1/projects", json={"name": "Remittance flows",
                                          "description": "Uganda–Tanzania corridor"},
                    headers=admin_headers)
    assert r.status_code == 200
    body = r.get_json()
    assert body["name"] == "Remittance flows"
    assert body["description"] == "Uganda–Tanzania corridor"
    assert {"id", "archived", "createdAt", "updatedAt", "deletedAt"} <= set(body)

    project = make.project()
    manager = make.member(project, "manager")
    r = client.post("/v1/projects", json={"name": "x"}, headers=make.auth(manager))
    assert r.status_code == 403


def test_create_project__validation(client, admin_headers):
    assert client.post("/v1/projects", json={"name": ""}, headers=admin_headers).status_code == 422
    assert client.post("/v1/projects", json={"name": "x" * 201},
                       headers=admin_headers).status_code == 422
    r = client.post("/v1/projects", json={"name": "x", "colour": "red"}, headers=admin_headers)
    assert r.status_code == 422
    assert r.get_json()["errors"]["json"] == {"colour": ["Unknown field."]}


def test_list_projects__shows_only_projects_with_a_role(client, make, admin_headers):
    mine, other = make.project("Mine"), make.project("Other")
    viewer = make.member(mine, "viewer")
    names = [p["name"] for p in client.get("/v1/projects", headers=make.auth(viewer)).get_json()]
    assert names == ["Mine"]
    all_names = {p["name"] for p in client.get("/v1/projects", headers=admin_headers).get_json()}
    assert {"Mine", "Other"} <= all_names
    assert other.id


def test_project__read_update_by_role(client, make):
    project = make.project()
    viewer = make.member(project, "viewer")
    manager = make.member(project, "manager")
    url = f"/v1/projects/{project.id}"
    assert client.get(url, headers=make.auth(viewer)).status_code == 200
    r = client.patch(url, json={"name": "Renamed"}, headers=make.auth(viewer))
    assert r.status_code == 403
    assert r.get_json()["code"] == 403.1
    r = client.patch(url, json={"name": "Renamed", "archived": True}, headers=make.auth(manager))
    assert r.status_code == 200
    assert r.get_json()["name"] == "Renamed"
    assert r.get_json()["archived"] is True
    assert r.get_json()["updatedAt"] is not None


def test_project__another_projects_resource_is_404_like_a_missing_one(client, make):
    mine, theirs = make.project("Mine"), make.project("Theirs")
    manager = make.member(mine, "manager")
    headers = make.auth(manager)
    missing = client.get("/v1/projects/999999", headers=headers)
    foreign = client.get(f"/v1/projects/{theirs.id}", headers=headers)
    assert missing.status_code == foreign.status_code == 404
    assert missing.get_json() == foreign.get_json()
    # Writes too: nothing reveals that the project exists.
    for method, path, body in [
        ("patch", f"/v1/projects/{theirs.id}", {"name": "pwned"}),
        ("delete", f"/v1/projects/{theirs.id}", None),
        ("get", f"/v1/projects/{theirs.id}/app-users", None),
        ("post", f"/v1/projects/{theirs.id}/app-users", {"displayName": "x"}),
        ("get", f"/v1/projects/{theirs.id}/assignments", None),
        ("post", f"/v1/projects/{theirs.id}/assignments/viewer/{manager.id}", None),
        ("get", f"/v1/projects/{theirs.id}/audits", None),
    ]:
        r = getattr(client, method)(path, json=body, headers=headers)
        assert r.status_code == 404, (method, path, r.status_code)


def test_project__delete_is_admin_only_and_soft(client, make, admin_headers, db):
    project = make.project()
    manager = make.member(project, "manager")
    url = f"/v1/projects/{project.id}"
    assert client.delete(url, headers=make.auth(manager)).status_code == 403
    assert client.delete(url, headers=admin_headers).status_code == 200
    assert client.get(url, headers=admin_headers).status_code == 404
    stored = db.scalar(select(Project).where(Project.id == project.id))
    assert stored.deleted_at is not None


def test_assignments__grant_list_revoke(client, make):
    project = make.project()
    manager = make.member(project, "manager")
    designer = make.user()
    headers = make.auth(manager)
    url = f"/v1/projects/{project.id}/assignments/designer/{designer.id}"
    assert client.post(url, headers=headers).status_code == 200
    assert client.post(url, headers=headers).status_code == 200  # idempotent
    listed = client.get(f"/v1/projects/{project.id}/assignments", headers=headers).get_json()
    assert {(a["role"], a["actorId"]) for a in listed} == {("manager", manager.id),
                                                           ("designer", designer.id)}
    assert client.get(f"/v1/projects/{project.id}",
                      headers=make.auth(designer)).status_code == 200
    assert client.delete(url, headers=headers).status_code == 200
    assert client.delete(url, headers=headers).status_code == 404


def test_assignments__unknown_role_or_user_is_404(client, make):
    project = make.project()
    headers = make.auth(make.member(project, "manager"))
    other = make.user()
    assert client.post(f"/v1/projects/{project.id}/assignments/overlord/{other.id}",
                       headers=headers).status_code == 404
    assert client.post(f"/v1/projects/{project.id}/assignments/viewer/999999",
                       headers=headers).status_code == 404


def test_role_change__takes_effect_on_the_next_request(client, make, admin_headers):
    project = make.project()
    user = make.member(project, "manager")
    headers = make.auth(user)
    url = f"/v1/projects/{project.id}"
    assert client.patch(url, json={"name": "A"}, headers=headers).status_code == 200
    client.delete(f"{url}/assignments/manager/{user.id}", headers=admin_headers)
    client.post(f"{url}/assignments/viewer/{user.id}", headers=admin_headers)
    assert client.patch(url, json={"name": "B"}, headers=headers).status_code == 403


@pytest.mark.parametrize("role", sorted(ROLE_VERBS))
def test_roles__every_role_can_read_its_project(client, make, role):
    project = make.project()
    user = make.member(project, role)
    assert client.get(f"/v1/projects/{project.id}", headers=make.auth(user)).status_code == 200


def test_roles__catalogue(client, make):
    roles = client.get("/v1/roles", headers=make.auth(make.user())).get_json()
    assert {r["system"] for r in roles} == {"manager", "designer", "data-manager", "viewer"}
    designer = next(r for r in roles if r["system"] == "designer")
    assert "form.publish" in designer["verbs"]
    assert "submission.update" not in designer["verbs"]
