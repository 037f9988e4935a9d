"""Log-in, log-out, bearer and Basic authentication, and the per-account rate limit."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from server.db import utcnow
from server.models import AuthToken, LoginFailure
from tests.conftest import PASSWORD, basic, bearer


def test_login__returns_a_bearer_token_in_centrals_shape(client, make):
    user = make.user()
    r = client.post("/v1/sessions", json={"email": user.email, "password": PASSWORD})
    assert r.status_code == 200
    body = r.get_json()
    assert set(body) == {"token", "createdAt", "expiresAt"}
    assert len(body["token"]) == 64
    me = client.get("/v1/users/current", headers=bearer(body["token"]))
    assert me.status_code == 200
    assert me.get_json()["email"] == user.email


def test_login__email_is_case_insensitive(client, make):
    user = make.user("Amina.Juma@Example.org")
    r = client.post("/v1/sessions", json={"email": "AMINA.JUMA@example.org", "password": PASSWORD})
    assert r.status_code == 200
    assert user.email == "amina.juma@example.org"


def test_login__token_is_stored_only_as_its_hash(client, make, db):
    token = make.token(make.user())
    hashes = db.scalars(select(AuthToken.token_hash)).all()
    assert token not in hashes
    assert all(len(h) == 64 for h in hashes)


def test_login__wrong_password_is_401_with_stable_code(client, make):
    user = make.user()
    r = client.post("/v1/sessions", json={"email": user.email, "password": "not the password"})
    assert r.status_code == 401
    assert r.get_json()["code"] == 401.1


def test_login__unknown_account_answers_exactly_like_a_wrong_password(client, make):
    user = make.user()
    wrong = client.post("/v1/sessions", json={"email": user.email, "password": "nope nope nope"})
    unknown = client.post("/v1/sessions", json={"email": "nobody@example.org",
                                                "password": "nope nope nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()


def test_login__missing_fields_are_422_naming_them(client):
    r = client.post("/v1/sessions", json={"email": "a@example.org"})
    assert r.status_code == 422
    assert "password" in r.get_json()["errors"]["json"]


def test_login__password_never_echoed_in_errors(client):
    r = client.post("/v1/sessions", json={"email": "a@example.org", "password": "s3cret-pw!",
                                          "extra": 1})
    assert r.status_code == 422
    assert b"s3cret-pw!" not in r.data


def test_rate_limit__locks_the_account_after_too_many_failures(client, make, settings):
    user = make.user()
    for _ in range(settings.login_max_failures):
        r = client.post("/v1/sessions", json={"email": user.email, "password": "wrong wrong!"})
        assert r.status_code == 401
    locked = client.post("/v1/sessions", json={"email": user.email, "password": "wrong wrong!"})
    assert locked.status_code == 429
    assert locked.get_json()["code"] == 429.1
    retry_after = int(locked.headers["Retry-After"])
    assert 0 < retry_after <= settings.login_window_seconds
    # Even the right password is refused until the window passes...
    right = client.post("/v1/sessions", json={"email": user.email, "password": PASSWORD})
    assert right.status_code == 429
    # ...and so is Basic auth for the same account.
    https = {"base_url": "https://dodoso.test"}
    r = client.get("/v1/users/current", headers=basic(user.email, PASSWORD), **https)
    assert r.status_code == 429


def test_rate_limit__is_per_account(client, make, settings):
    victim, other = make.user(), make.user()
    for _ in range(settings.login_max_failures):
        client.post("/v1/sessions", json={"email": victim.email, "password": "wrong wrong!"})
    assert client.post("/v1/sessions", json={"email": other.email,
                                             "password": PASSWORD}).status_code == 200


def test_rate_limit__window_expiry_lets_the_account_in_again(client, make, settings, db):
    user = make.user()
    for _ in range(settings.login_max_failures):
        client.post("/v1/sessions", json={"email": user.email, "password": "wrong wrong!"})
    past = utcnow() - dt.timedelta(seconds=settings.login_window_seconds + 1)
    for failure in db.scalars(select(LoginFailure)):
        failure.attempted_at = past
    db.commit()
    assert client.post("/v1/sessions", json={"email": user.email,
                                             "password": PASSWORD}).status_code == 200


def test_rate_limit__lockout_does_not_touch_app_user_keys(client, make, settings):
    """Collect devices authenticate with their key, never with a password."""
    project = make.project()
    manager = make.member(project, "manager")
    headers = make.auth(manager)
    for _ in range(settings.login_max_failures + 1):
        client.post("/v1/sessions", json={"email": manager.email, "password": "wrong wrong!"})
    # The session issued before the lockout still works.
    assert client.get(f"/v1/projects/{project.id}", headers=headers).status_code == 200


def test_logout__ends_the_session(client, make):
    token = make.token(make.user())
    r = client.delete(f"/v1/sessions/{token}", headers=bearer(token))
    assert r.status_code == 200
    again = client.get("/v1/users/current", headers=bearer(token))
    assert again.status_code == 401


def test_logout__current(client, make):
    token = make.token(make.user())
    assert client.delete("/v1/sessions/current", headers=bearer(token)).status_code == 200
    assert client.get("/v1/users/current", headers=bearer(token)).status_code == 401


def test_logout__cannot_end_someone_elses_session(client, make):
    mine, theirs = make.token(make.user()), make.token(make.user())
    r = client.delete(f"/v1/sessions/{theirs}", headers=bearer(mine))
    assert r.status_code == 404
    assert client.get("/v1/users/current", headers=bearer(theirs)).status_code == 200


def test_expired_session__is_401(client, make, db):
    token = make.token(make.user())
    for record in db.scalars(select(AuthToken)):
        record.expires_at = utcnow() - dt.timedelta(seconds=1)
    db.commit()
    r = client.get("/v1/users/current", headers=bearer(token))
    assert r.status_code == 401
    assert "WWW-Authenticate" in r.headers


def test_bad_bearer_token__is_401(client):
    for token in ("x", "a" * 64, "../../etc/passwd", "é" * 30):
        r = client.get("/v1/users/current", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token
        assert r.get_json()["code"] == 401.1


def test_unknown_auth_scheme__is_401_and_digest_is_never_offered(client):
    r = client.get("/v1/users/current", headers={"Authorization": "Digest username=x"})
    assert r.status_code == 401
    assert "digest" not in r.headers.get("WWW-Authenticate", "").lower()


def test_basic_auth__refused_over_plain_http_without_checking_the_password(client, make, db):
    user = make.user()
    r = client.get("/v1/users/current", headers=basic(user.email, "wrong wrong wrong"))
    assert r.status_code == 401
    assert r.get_json()["code"] == 401.3
    assert db.scalars(select(LoginFailure)).all() == []  # the password was never checked


def test_basic_auth__works_over_https(client, make):
    user = make.user()
    r = client.get("/v1/users/current", headers=basic(user.email, PASSWORD),
                   base_url="https://dodoso.test")
    assert r.status_code == 200
    assert r.get_json()["id"] == user.id


def test_basic_auth__malformed_header_is_401(client):
    for value in ("Basic !!!", "Basic " + "bm9jb2xvbg==", "Basic"):
        r = client.get("/v1/users/current", headers={"Authorization": value},
                       base_url="https://dodoso.test")
        assert r.status_code == 401, value


def test_api_token__create_use_list_revoke(client, make):
    headers = make.auth(make.user())
    r = client.post("/v1/users/current/tokens", json={"label": "pyodk", "expiresInDays": 30},
                    headers=headers)
    assert r.status_code == 200
    body = r.get_json()
    api = bearer(body["token"])
    assert client.get("/v1/users/current", headers=api).status_code == 200
    listed = client.get("/v1/users/current/tokens", headers=headers).get_json()
    assert [t["label"] for t in listed] == ["pyodk"]
    assert "token" not in listed[0]
    assert client.delete(f"/v1/users/current/tokens/{body['id']}",
                         headers=headers).status_code == 200
    assert client.get("/v1/users/current", headers=api).status_code == 401
