"""Web users: creation, profile, passwords, site administrators."""

from __future__ import annotations

from tests.conftest import PASSWORD, bearer


def test_create_user__admin_only(client, make, admin_headers):
    r = client.post("/v1/users", json={"email": "Neema@Example.org", "password": PASSWORD,
                                       "displayName": "Neema"}, headers=admin_headers)
    assert r.status_code == 200
    body = r.get_json()
    assert body["email"] == "neema@example.org"
    assert body["type"] == "user"
    assert "password" not in body and "passwordHash" not in body
    assert client.post("/v1/sessions", json={"email": "neema@example.org",
                                             "password": PASSWORD}).status_code == 200
    nobody = make.auth(make.user())
    assert client.post("/v1/users", json={"email": "x@example.org"},
                       headers=nobody).status_code == 403


def test_create_user__duplicate_email_is_409_3(client, make, admin_headers):
    make.user("taken@example.org")
    r = client.post("/v1/users", json={"email": "TAKEN@example.org"}, headers=admin_headers)
    assert r.status_code == 409
    assert r.get_json()["code"] == 409.3


def test_create_user__bad_email_and_weak_password(client, admin_headers):
    r = client.post("/v1/users", json={"email": "not-an-email"}, headers=admin_headers)
    assert r.status_code == 422
    assert "email" in r.get_json()["errors"]["json"]
    r = client.post("/v1/users", json={"email": "ok@example.org", "password": "short"},
                    headers=admin_headers)
    assert r.status_code == 400
    assert r.get_json()["code"] == 400.3
    assert "short" not in r.get_data(as_text=True)


def test_user_without_password__cannot_log_in(client, admin_headers):
    client.post("/v1/users", json={"email": "invited@example.org"}, headers=admin_headers)
    r = client.post("/v1/sessions", json={"email": "invited@example.org", "password": ""})
    assert r.status_code == 401


def test_list_users__admin_only_and_paginated(client, make, admin_headers):
    for _ in range(3):
        make.user()
    page = client.get("/v1/users?limit=2&offset=1", headers=admin_headers).get_json()
    assert len(page) == 2
    assert client.get("/v1/users", headers=make.auth(make.user())).status_code == 403


def test_current_user(client, make):
    user = make.user()
    r = client.get("/v1/users/current", headers=make.auth(user))
    assert r.get_json()["id"] == user.id
    assert r.get_json()["isAdmin"] is False


def test_update_self__and_not_others(client, make):
    me, other = make.user(), make.user()
    headers = make.auth(me)
    r = client.patch(f"/v1/users/{me.id}", json={"displayName": "Zawadi"}, headers=headers)
    assert r.status_code == 200
    assert r.get_json()["displayName"] == "Zawadi"
    assert client.patch(f"/v1/users/{other.id}", json={"displayName": "x"},
                        headers=headers).status_code == 404
    assert client.get(f"/v1/users/{other.id}", headers=headers).status_code == 404


def test_change_own_password__needs_the_old_one_and_ends_other_sessions(client, make):
    user = make.user()
    current, other = make.token(user), make.token(user)
    url = f"/v1/users/{user.id}/password"
    r = client.put(url, json={"new": "a brand new password"}, headers=bearer(current))
    assert r.status_code == 400
    r = client.put(url, json={"old": "wrong password!", "new": "a brand new password"},
                   headers=bearer(current))
    assert r.status_code == 403
    assert r.get_json()["code"] == 403.2
    r = client.put(url, json={"old": PASSWORD, "new": "a brand new password"},
                   headers=bearer(current))
    assert r.status_code == 200
    assert client.get("/v1/users/current", headers=bearer(current)).status_code == 200
    assert client.get("/v1/users/current", headers=bearer(other)).status_code == 401
    assert client.post("/v1/sessions", json={"email": user.email,
                                             "password": PASSWORD}).status_code == 401
    assert client.post("/v1/sessions", json={"email": user.email,
                                             "password": "a brand new password"}
                       ).status_code == 200


def test_admin_resets_a_password__all_of_that_users_sessions_end(client, make, admin_headers):
    user = make.user()
    token = make.token(user)
    r = client.put(f"/v1/users/{user.id}/password", json={"new": "reset by the admin"},
                   headers=admin_headers)
    assert r.status_code == 200
    assert client.get("/v1/users/current", headers=bearer(token)).status_code == 401


def test_site_admin__promote_demote_and_never_the_last(client, make, admin, admin_headers):
    user = make.user()
    assert client.post(f"/v1/assignments/admin/{user.id}", headers=admin_headers
                       ).status_code == 200
    admins = client.get("/v1/assignments/admin", headers=admin_headers).get_json()
    assert {a["id"] for a in admins} >= {admin.id, user.id}
    assert client.delete(f"/v1/assignments/admin/{user.id}", headers=admin_headers
                         ).status_code == 200
    for other in admins:
        if other["id"] not in (admin.id, user.id):
            client.delete(f"/v1/assignments/admin/{other['id']}", headers=admin_headers)
    r = client.delete(f"/v1/assignments/admin/{admin.id}", headers=admin_headers)
    assert r.status_code == 409
    assert r.get_json()["code"] == 409.5


def test_delete_user__their_sessions_end(client, make, admin_headers):
    user = make.user()
    token = make.token(user)
    assert client.delete(f"/v1/users/{user.id}", headers=admin_headers).status_code == 200
    assert client.get("/v1/users/current", headers=bearer(token)).status_code == 401
    assert client.get(f"/v1/users/{user.id}", headers=admin_headers).status_code == 404
