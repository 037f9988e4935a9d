"""App users: Collect device credentials per project."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from server.auth.tokens import token_hash
from server.errors import Problem
from server.models import AppUser
from server.services.app_users import authenticate_key


def assert_key_refused(db, token: str) -> None:
    with pytest.raises(Problem) as refused:
        authenticate_key(db, token)
    assert refused.value.code == 403.1


def test_create__token_shown_once_and_stored_hashed(client, make, db):
    project = make.project()
    headers = make.auth(make.member(project, "manager"))
    r = client.post(f"/v1/projects/{project.id}/app-users", json={"displayName": "Tablet 7"},
                    headers=headers)
    assert r.status_code == 200
    body = r.get_json()
    assert body["displayName"] == "Tablet 7"
    assert body["type"] == "field_key"
    assert len(body["token"]) >= 43  # at least 256 bits
    stored = db.scalar(select(AppUser).where(AppUser.id == body["id"]))
    assert stored.token_hash == token_hash(body["token"])
    listed = client.get(f"/v1/projects/{project.id}/app-users", headers=headers).get_json()
    assert [a["id"] for a in listed] == [body["id"]]
    assert listed[0]["token"] is None


def test_create__requires_manager(client, make):
    project = make.project()
    for role in ("viewer", "data-manager", "designer"):
        headers = make.auth(make.member(project, role))
        r = client.post(f"/v1/projects/{project.id}/app-users", json={"displayName": "x"},
                        headers=headers)
        assert r.status_code == 403, role


def test_revoke__the_key_stops_working(client, make, db):
    project = make.project()
    headers = make.auth(make.member(project, "manager"))
    app_user, token = make.app_user(project)
    assert authenticate_key(db, token).app_user.id == app_user.id
    url = f"/v1/projects/{project.id}/app-users/{app_user.id}"
    assert client.delete(url, headers=headers).status_code == 200
    r = client.delete(url, headers=headers)
    assert r.status_code == 409
    assert r.get_json()["code"] == 409.4
    assert_key_refused(db, token)
    listed = client.get(f"/v1/projects/{project.id}/app-users", headers=headers).get_json()
    assert listed == []
    everything = client.get(f"/v1/projects/{project.id}/app-users?includeRevoked=true",
                            headers=headers).get_json()
    assert everything[0]["revokedAt"] is not None


def test_app_user__of_another_project_is_404(client, make):
    mine, theirs = make.project("Mine"), make.project("Theirs")
    headers = make.auth(make.member(mine, "manager"))
    foreign, _ = make.app_user(theirs)
    assert client.delete(f"/v1/projects/{mine.id}/app-users/{foreign.id}",
                         headers=headers).status_code == 404


def test_app_user_key__cannot_use_the_management_api(client, make):
    project = make.project()
    _, token = make.app_user(project)
    r = client.get(f"/v1/projects/{project.id}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_deleting_the_project__revokes_its_app_users(client, make, db, admin_headers):
    project = make.project()
    _, token = make.app_user(project)
    assert client.delete(f"/v1/projects/{project.id}", headers=admin_headers).status_code == 200
    assert_key_refused(db, token)
