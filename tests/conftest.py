"""Test fixtures: settings → engine (migrated once) → a savepoint per test → app → client.

The suite runs on SQLite by default and on PostgreSQL when DODOSO_TEST_DATABASE_URL is set
(an unreachable PostgreSQL is an error, never a skip).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from server import migrate
from server.app import create_app
from server.auth.actor import SYSTEM
from server.auth.passwords import Passwords
from server.db import create_db_engine
from server.models import AppUser, Project, User
from server.services import accounts, app_users, projects
from server.settings import Settings
from server.storage import LocalBlobStore

pytest_plugins = ["tests.fixtures_s3",  # one moto server for the whole run
                  "tests.support.fixtures"]  # a project, its manager, signed in

TEST_DATABASE_URL_VAR = "DODOSO_TEST_DATABASE_URL"
PASSWORD = "correct horse battery staple"


def database_url_for_tests(tmp_dir: Path) -> str:
    return os.environ.get(TEST_DATABASE_URL_VAR) or f"sqlite:///{tmp_dir / 'test.db'}"


def reset_postgres(engine: Engine) -> None:
    """Start from an empty schema. Connections an earlier, killed run left behind would hold
    locks on it, so they are ended first."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dodoso")


@pytest.fixture(scope="session")
def settings(session_tmp: Path) -> Settings:
    return Settings(
        env="test",
        database_url=database_url_for_tests(session_tmp),
        blob_store=str(session_tmp / "blobs"),
        secret_key="test-secret-key-test-secret-key-test",
        public_url="https://dodoso.test",
        log_format="console",
        log_level="WARNING",
        allow_insecure_http=False,
        argon2_time_cost=1,
        argon2_memory_kib=64,
        odk_validate="off",  # ~1 s of Java per form; the tests that need it turn it on
    )


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    engine = create_db_engine(settings)
    if engine.dialect.name == "postgresql":
        reset_postgres(engine)
    migrate.upgrade(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        outer.rollback()


@pytest.fixture
def db(connection: Connection) -> Iterator[Session]:
    """A session inside the test's transaction: its commits are savepoints, undone at the end."""
    session = Session(bind=connection, join_transaction_mode="create_savepoint",
                      expire_on_commit=False)
    yield session
    session.close()


@pytest.fixture(scope="session")
def base_app(settings: Settings, engine: Engine, session_tmp: Path) -> Flask:
    app = create_app(settings, engine=engine,
                     blob_store=LocalBlobStore(session_tmp / "app-blobs"))
    app.config["TESTING"] = True
    return app


@pytest.fixture
def app(base_app: Flask, db: Session) -> Iterator[Flask]:
    services = base_app.extensions["dodoso"]
    original = services.sessions
    services.sessions = lambda: db
    yield base_app
    services.sessions = original


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def passwords(settings: Settings) -> Passwords:
    return Passwords(settings)


# -- factories ----------------------------------------------------------------------------

class Factory:
    """Makes users, projects and app users through the services, and logs people in."""

    def __init__(self, db: Session, passwords: Passwords, client: FlaskClient) -> None:
        self.db, self.passwords, self.client = db, passwords, client
        self._n = 0

    def user(self, email: str | None = None, *, admin: bool = False,
             password: str = PASSWORD) -> User:
        self._n += 1
        user = accounts.create_user(self.db, self.passwords, SYSTEM,
                                    email=email or f"user{self._n}@example.org",
                                    password=password, is_admin=admin)
        self.db.commit()
        return user

    def project(self, name: str = "Migration Profile 2026") -> Project:
        project = projects.create_project(self.db, SYSTEM, name=name)
        self.db.commit()
        return project

    def member(self, project: Project, role: str, **kw) -> User:
        user = self.user(**kw)
        projects.assign_role(self.db, SYSTEM, project, user, role)
        self.db.commit()
        return user

    def app_user(self, project: Project, name: str = "Tablet 1") -> tuple[AppUser, str]:
        new = app_users.create_app_user(self.db, SYSTEM, project, display_name=name)
        self.db.commit()
        return new.app_user, new.token

    def token(self, user: User, password: str = PASSWORD) -> str:
        r = self.client.post("/v1/sessions", json={"email": user.email, "password": password})
        assert r.status_code == 200, r.get_json()
        return r.get_json()["token"]

    def auth(self, user: User) -> dict[str, str]:
        return bearer(self.token(user))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(email: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture
def make(db: Session, passwords: Passwords, client: FlaskClient) -> Factory:
    return Factory(db, passwords, client)


@pytest.fixture
def admin(make: Factory) -> User:
    return make.user("admin@example.org", admin=True)


@pytest.fixture
def admin_headers(make: Factory, admin: User) -> dict[str, str]:
    return make.auth(admin)


@pytest.fixture(autouse=True, scope="session")
def _compile_forms_in_process() -> Iterator[None]:
    """The suite uploads hundreds of XLSForms, and the sandbox starts a fresh interpreter
    (and imports pyxform) for each: about a second apiece. Outside the sandbox's own tests
    (tests/unit/forms/test_sandbox.py, which call it directly), forms compile in this
    process with the same guards and the same error model. Servers started as separate
    processes (tests/e2e, tests/faults) still compile in the sandbox."""
    from forms import pipeline
    from forms.compile import compile_xlsform, validated
    from forms.guards import DEFAULT_LIMITS

    def in_process(data: bytes, *, kind, form_id_fallback=None, validate=False, timeout_s=30,
                   memory_bytes=1 << 30, java=None, limits=DEFAULT_LIMITS):
        result = compile_xlsform(data, kind=kind, form_id_fallback=form_id_fallback,
                                 limits=limits)
        return validated(result, java=java) if validate else result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "compile_isolated", in_process)
        yield
