"""The error model: stable codes, JSON problems, the right headers, never a 500 for a
client's mistake, 503 + Retry-After when a dependency is down."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine

from server.app import create_app
from server.storage import LocalBlobStore, open_blob_store

LEAKS = re.compile(r"Traceback|File \"|/work/|site-packages|SELECT |INSERT |psycopg|sqlite3",
                   re.IGNORECASE)


def test_malformed_json__is_400_1(client, admin_headers):
    r = client.post("/v1/projects", data="{not json", content_type="application/json",
                    headers=admin_headers)
    assert r.status_code == 400
    assert r.get_json()["code"] == 400.1


def test_unknown_field__is_422_naming_the_field(client, admin_headers):
    r = client.post("/v1/projects", json={"name": "ok", "owner": "me"}, headers=admin_headers)
    assert r.status_code == 422
    body = r.get_json()
    assert body["code"] == 422.1
    assert "owner" in body["errors"]["json"]


def test_wrong_type__is_422(client, admin_headers):
    r = client.post("/v1/projects", json={"name": ["not", "a", "string"]}, headers=admin_headers)
    assert r.status_code == 422
    assert "name" in r.get_json()["errors"]["json"]


def test_json_array_body__is_a_client_error(client, admin_headers):
    r = client.post("/v1/projects", json=[1, 2, 3], headers=admin_headers)
    assert r.status_code in (400, 422)


def test_missing_auth__is_401_with_www_authenticate_before_the_body_is_read(client):
    r = client.post("/v1/projects", data="{garbage", content_type="application/json")
    assert r.status_code == 401
    assert r.get_json()["code"] == 401.2
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_route__is_404_json(client):
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.get_json()["code"] == 404.1


def test_wrong_method__is_405_with_allow(client, admin_headers):
    r = client.put("/v1/projects", json={}, headers=admin_headers)
    assert r.status_code == 405
    assert r.get_json()["code"] == 405.1
    assert "GET" in r.headers["Allow"] and "POST" in r.headers["Allow"]


def test_body_over_the_limit__is_413(settings, engine, tmp_path):
    app = create_app(settings.replace(max_submission_bytes=1000), engine=engine,
                     blob_store=LocalBlobStore(tmp_path))
    r = app.test_client().post("/v1/sessions", json={"email": "a@b.org", "password": "x" * 5000})
    assert r.status_code == 413
    assert r.get_json()["code"] == 413.1


def test_query_parameter_of_wrong_type__is_422(client, admin_headers):
    r = client.get("/v1/audits?limit=lots", headers=admin_headers)
    assert r.status_code == 422
    assert "limit" in r.get_json()["errors"]["query"]


def test_unexpected_exception__is_a_generic_500_with_a_request_id(settings, engine, tmp_path):
    app = create_app(settings, engine=engine, blob_store=LocalBlobStore(tmp_path))

    @app.route("/v1/boom")
    def boom():
        raise RuntimeError("secret detail /etc/passwd SELECT * FROM users")

    from server import web
    web.PUBLIC_ENDPOINTS.add("boom")
    try:
        r = app.test_client().get("/v1/boom")
    finally:
        web.PUBLIC_ENDPOINTS.discard("boom")
    assert r.status_code == 500
    body = r.get_json()
    assert body["code"] == 500.1
    assert r.headers["X-Request-Id"] in body["message"]
    assert "secret detail" not in r.get_data(as_text=True)
    assert not LEAKS.search(r.get_data(as_text=True))


@pytest.fixture
def app_without_database(settings, tmp_path):
    dead = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none",
                         connect_args={"connect_timeout": 1})
    app = create_app(settings, engine=dead, blob_store=LocalBlobStore(tmp_path))
    yield app
    dead.dispose()


def test_database_down__is_503_with_retry_after(app_without_database):
    r = app_without_database.test_client().post(
        "/v1/sessions", json={"email": "a@example.org", "password": "whatever-password"})
    assert r.status_code == 503
    assert r.get_json()["code"] == 503.2
    assert int(r.headers["Retry-After"]) > 0
    assert not LEAKS.search(r.get_data(as_text=True))


def test_health__reports_a_database_outage(app_without_database):
    r = app_without_database.test_client().get("/v1/health")
    assert r.status_code == 503
    assert r.get_json()["database"] == "unavailable"
    assert "Retry-After" in r.headers


def test_health__reports_a_blob_store_outage(settings, engine):
    dead_s3 = open_blob_store(settings.replace(
        blob_store="s3://nowhere/blobs", s3_endpoint_url="http://127.0.0.1:1",
        s3_region="us-east-1", s3_access_key_id="x", s3_secret_access_key="x",
        s3_connect_timeout_seconds=0.5, s3_read_timeout_seconds=0.5))
    app = create_app(settings, engine=engine, blob_store=dead_s3)
    r = app.test_client().get("/v1/health")
    assert r.status_code == 503
    assert r.get_json() == {"status": "unavailable", "database": "ok",
                            "blobStore": "unavailable"}


def test_health__ok(client):
    r = client.get("/v1/health")
    assert r.status_code == 200
    assert r.get_json()["status"] == "ok"


def test_every_response__carries_security_headers_and_a_request_id(client):
    r = client.get("/v1/health")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-store"
    assert len(r.headers["X-Request-Id"]) >= 8


def test_openapi__is_served_and_describes_the_api(client):
    r = client.get("/v1/openapi.json")
    assert r.status_code == 200
    spec = r.get_json()
    assert spec["info"]["title"] == "dodoso"
    for path in ("/v1/sessions", "/v1/projects", "/v1/projects/{project_id}/app-users",
                 "/v1/users/current"):
        assert path in spec["paths"], path
    assert {"bearer", "basic"} <= set(spec["components"]["securitySchemes"])


def test_sqlite_locked__is_503_not_500(tmp_path, settings):
    """Another process holds SQLite's write lock longer than the busy timeout."""
    import sqlite3

    from server import migrate
    from server.db import create_db_engine

    local = settings.replace(database_url=f"sqlite:///{tmp_path / 'locked.db'}",
                             sqlite_busy_timeout_ms=50)
    migrate.upgrade(local)
    engine = create_db_engine(local)
    app = create_app(local, engine=engine, blob_store=LocalBlobStore(tmp_path / "b"))
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        r = app.test_client().post("/v1/sessions", json={"email": "a@example.org",
                                                         "password": "whatever-password"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()
    assert r.status_code == 503
    assert r.get_json()["code"] == 503.2
    assert "Retry-After" in r.headers


def test_create_app__refuses_a_database_that_was_never_migrated(tmp_path, settings):
    from server.migrate import SchemaNotCurrent

    with pytest.raises(SchemaNotCurrent, match="dodoso db upgrade"):
        create_app(settings.replace(database_url=f"sqlite:///{tmp_path / 'empty.db'}"),
                   blob_store=LocalBlobStore(tmp_path / "b"))


def test_create_app__does_not_wait_for_a_sqlite_writer(tmp_path, settings):
    """Start-up checks only read: a long write elsewhere must not block or fail them."""
    import sqlite3
    import time

    from server import migrate
    from server.db import create_db_engine

    local = settings.replace(database_url=f"sqlite:///{tmp_path / 'busy.db'}",
                             sqlite_busy_timeout_ms=3000)
    migrate.upgrade(local)
    holder = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    engine = create_db_engine(local)
    try:
        started = time.monotonic()
        create_app(local, engine=engine, blob_store=LocalBlobStore(tmp_path / "b"))
        assert time.monotonic() - started < 2
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()
