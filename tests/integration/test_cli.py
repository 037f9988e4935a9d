"""The ``dodoso`` command line, driven through click's CliRunner on its own SQLite database.

These tests check the CLI, not the backend: they always use SQLite, whatever
DODOSO_TEST_DATABASE_URL says, and every test gets a fresh database and working directory.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from server import migrate
from server.app import create_app
from server.auth.passwords import Passwords
from server.cli import DEMO_ADMIN_EMAIL, DEMO_APP_USER, DEMO_PROJECT_NAME, main
from server.db import create_db_engine
from server.models import AppUser, Project, User
from server.services.app_users import authenticate_key
from server.settings import Settings

PASSWORD = "correct horse battery staple"
COLLECT_URL = re.compile(r"(?P<base>\S+)/v1/key/(?P<token>[A-Za-z0-9_-]+)/projects/(?P<id>\d+)$",
                         re.MULTILINE)


class Cli:
    """Runs ``dodoso …`` in-process with the test's environment."""

    def __init__(self, tmp_path: Path) -> None:
        self.runner = CliRunner()
        self.env = {
            "DODOSO_ENV": "development",
            "DODOSO_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "DODOSO_BLOB_STORE": str(tmp_path / "blobs"),
            "DODOSO_ARGON2_TIME_COST": "1",
            "DODOSO_ARGON2_MEMORY_KIB": "64",
            "DODOSO_LOG_LEVEL": "WARNING",
        }
        self.settings = Settings(
            env="development",
            database_url=self.env["DODOSO_DATABASE_URL"],
            blob_store=self.env["DODOSO_BLOB_STORE"],
            log_format="console",
            log_level="WARNING",
            argon2_time_cost=1,
            argon2_memory_kib=64,
        )

    def run(self, *args: str, env: dict[str, str | None] | None = None,
            input: str | None = None) -> Result:
        return self.runner.invoke(main, list(args), env={**self.env, **(env or {})},
                                  input=input)

    def ok(self, *args: str, **kw) -> str:
        result = self.run(*args, **kw)
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout

    def fails(self, *args: str, **kw) -> str:
        """A clean refusal: non-zero exit through click, no uncaught exception."""
        result = self.run(*args, **kw)
        assert result.exit_code != 0, result.output
        assert type(result.exception) is SystemExit, result.exception
        assert "Traceback" not in result.output
        return result.output

    @contextmanager
    def db(self) -> Iterator[Session]:
        engine = create_db_engine(self.settings)
        try:
            with Session(engine) as session:
                yield session
        finally:
            engine.dispose()

    def login(self, email: str, password: str) -> int:
        """POST /v1/sessions against an app on the CLI's database; the status code."""
        app = create_app(self.settings)
        try:
            r = app.test_client().post("/v1/sessions",
                                       json={"email": email, "password": password})
            if r.status_code == 200:
                assert r.get_json()["token"]
            return r.status_code
        finally:
            app.extensions["dodoso"].engine.dispose()

    def counts(self) -> tuple[int, ...]:
        """How many users, projects and app users there are."""
        with self.db() as s:
            return tuple(s.scalar(select(func.count()).select_from(model))
                         for model in (User, Project, AppUser))


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    for name in list(os.environ):
        if name.startswith("DODOSO_"):
            monkeypatch.delenv(name)  # nothing from the caller's shell leaks in
    monkeypatch.chdir(tmp_path)
    return Cli(tmp_path)


@pytest.fixture
def migrated(cli: Cli) -> Cli:
    cli.ok("db", "upgrade")
    return cli


def demo_password(output: str) -> str:
    match = re.search(r"^Password:\s+(\S+)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


# -- db -----------------------------------------------------------------------------------

def test_db_upgrade__current_prints_the_head_revision(cli):
    assert cli.ok("db", "current").strip() == "(empty)"
    assert "head" in cli.ok("db", "upgrade")
    assert cli.ok("db", "current").strip() == migrate.head_revision()


def test_db_downgrade_base__drops_every_table(migrated):
    migrated.ok("db", "downgrade", "base")
    assert migrated.ok("db", "current").strip() == "(empty)"
    engine = create_db_engine(migrated.settings)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    migrated.ok("db", "upgrade")
    assert migrated.ok("db", "current").strip() == migrate.head_revision()


# -- users --------------------------------------------------------------------------------

def test_users_create__admin_is_listed_as_admin(migrated):
    out = migrated.ok("users", "create", "Amina@Example.org", "--password", PASSWORD, "--admin")
    assert "amina@example.org" in out
    migrated.ok("users", "create", "juma@example.org", "--password", PASSWORD)
    rows = [line.split("\t") for line in migrated.ok("users", "list").splitlines()]
    assert [r[1:] for r in rows] == [["amina@example.org", "Amina", "admin"],
                                     ["juma@example.org", "juma"]]


def test_users_create__password_is_prompted_twice_when_not_given(migrated):
    migrated.ok("users", "create", "amina@example.org", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert migrated.login("amina@example.org", PASSWORD) == 200


def test_users_create__password_from_environment(migrated):
    migrated.ok("users", "create", "amina@example.org", env={"DODOSO_NEW_PASSWORD": PASSWORD})
    assert migrated.login("amina@example.org", PASSWORD) == 200


def test_users_create__duplicate_email_is_a_clean_error(migrated):
    migrated.ok("users", "create", "amina@example.org", "--password", PASSWORD)
    out = migrated.fails("users", "create", "AMINA@example.org", "--password", PASSWORD)
    assert "amina@example.org" in out
    assert "409.3" in out
    assert migrated.counts()[0] == 1


def test_users_create__short_password_is_refused(migrated):
    out = migrated.fails("users", "create", "amina@example.org", "--password", "short")
    assert "password" in out
    assert "400.3" in out
    assert migrated.counts()[0] == 0


def test_users_create__short_password_message_says_how_long_it_must_be(migrated):
    out = migrated.fails("users", "create", "amina@example.org", "--password", "short")
    assert "characters" in out


@pytest.mark.parametrize("args", [
    ("users", "create", "not-an-email", "--password", PASSWORD),
    ("projects", "create", ""),
])
def test_create__invalid_input_is_refused(migrated, args):
    migrated.fails(*args)


def test_users_set_password__old_password_stops_working(migrated):
    migrated.ok("users", "create", "amina@example.org", "--password", PASSWORD)
    assert migrated.login("amina@example.org", PASSWORD) == 200
    new = "a different passphrase"
    out = migrated.ok("users", "set-password", "amina@example.org", "--password", new)
    assert "amina@example.org" in out
    assert migrated.login("amina@example.org", PASSWORD) == 401
    assert migrated.login("amina@example.org", new) == 200
    with migrated.db() as s:
        user = s.scalar(select(User).where(User.email == "amina@example.org"))
        passwords = Passwords(migrated.settings)
        assert passwords.verify(user.password_hash, new)
        assert not passwords.verify(user.password_hash, PASSWORD)


def test_users_set_password__short_password_keeps_the_old_one(migrated):
    migrated.ok("users", "create", "amina@example.org", "--password", PASSWORD)
    out = migrated.fails("users", "set-password", "amina@example.org", "--password", "short")
    assert "400.3" in out
    assert migrated.login("amina@example.org", PASSWORD) == 200


def test_users_promote__makes_a_site_administrator(migrated):
    migrated.ok("users", "create", "amina@example.org", "--password", PASSWORD)
    assert migrated.ok("users", "list").strip().split("\t")[-1] != "admin"
    migrated.ok("users", "promote", "amina@example.org")
    assert migrated.ok("users", "list").strip().split("\t")[-1] == "admin"
    with migrated.db() as s:
        assert s.scalar(select(User.is_admin).where(User.email == "amina@example.org"))


@pytest.mark.parametrize("args", [
    ("users", "promote", "nobody@example.org"),
    ("users", "set-password", "nobody@example.org", "--password", PASSWORD),
])
def test_users__unknown_email_is_a_clean_error(migrated, args):
    out = migrated.fails(*args)
    assert "No user with email nobody@example.org" in out


def test_users_list__before_db_upgrade_says_to_run_it(cli):
    out = cli.fails("users", "list")
    assert "db upgrade" in out


# -- projects and app users ---------------------------------------------------------------

def test_projects_create__is_listed(migrated):
    out = migrated.ok("projects", "create", "Migration Profile 2026", "--description", "Round 1")
    assert out.strip() == "Created project 1: Migration Profile 2026"
    migrated.ok("projects", "create", "Household Survey")
    listed = [line.split("\t") for line in migrated.ok("projects", "list").splitlines()]
    assert listed == [["2", "Household Survey"], ["1", "Migration Profile 2026"]]  # by name
    with migrated.db() as s:
        assert s.get(Project, 1).description == "Round 1"


def test_app_users_create__prints_a_collect_url_whose_token_works(migrated):
    migrated.ok("projects", "create", "Migration Profile 2026")
    out = migrated.ok("app-users", "create", "Tablet 7", "--project", "1",
                      env={"DODOSO_PUBLIC_URL": "https://forms.example.org/"})
    match = COLLECT_URL.search(out)
    assert match, out
    assert match["base"] == "https://forms.example.org"
    assert match["id"] == "1"
    with migrated.db() as s:
        actor = authenticate_key(s, match["token"])
        assert actor.app_user.project_id == 1
        assert actor.app_user.display_name == "Tablet 7"
        assert match["token"] not in s.scalars(select(AppUser.token_hash)).all()


def test_app_users_create__unknown_project_is_a_clean_error(migrated):
    out = migrated.fails("app-users", "create", "Tablet 7", "--project", "99")
    assert "No project 99" in out
    assert migrated.counts() == (0, 0, 0)


# -- demo ---------------------------------------------------------------------------------

def test_demo__creates_admin_project_and_app_user_and_keeps_the_credentials(migrated, tmp_path):
    out = migrated.ok("demo")
    with migrated.db() as s:
        admin = s.scalar(select(User).where(User.email == DEMO_ADMIN_EMAIL))
        assert admin is not None and admin.is_admin
        project = s.scalar(select(Project).where(Project.name == DEMO_PROJECT_NAME))
        assert project is not None
        app_user = s.scalar(select(AppUser).where(AppUser.project_id == project.id))
        assert app_user.display_name == DEMO_APP_USER
        match = COLLECT_URL.search(out)
        assert match and match["id"] == str(project.id)
        assert authenticate_key(s, match["token"]).app_user.id == app_user.id
    path = tmp_path / "instance" / "demo-credentials.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert demo_password(text) == demo_password(out)
    assert match["token"] in text


def test_demo__second_run_creates_nothing_and_prints_the_same_credentials(migrated):
    first = migrated.ok("demo")
    counts = migrated.counts()
    assert counts == (1, 1, 1)
    second = migrated.ok("demo")
    assert migrated.counts() == counts
    assert second == first


def test_demo__printed_password_logs_in(migrated):
    password = demo_password(migrated.ok("demo"))
    assert migrated.login(DEMO_ADMIN_EMAIL, password) == 200
    assert migrated.login(DEMO_ADMIN_EMAIL, password + "x") == 401


def test_demo__lost_credentials_file_says_how_to_reset(migrated, tmp_path):
    migrated.ok("demo")
    (tmp_path / "instance" / "demo-credentials.txt").unlink()
    out = migrated.ok("demo")
    assert f"dodoso users set-password {DEMO_ADMIN_EMAIL}" in out
    assert migrated.counts() == (1, 1, 1)


def test_demo__left_over_credentials_file_is_made_private(migrated, tmp_path):
    path = tmp_path / "instance" / "demo-credentials.txt"
    path.parent.mkdir()
    path.write_text("from an earlier database\n")
    path.chmod(0o644)
    migrated.ok("demo")
    assert demo_password(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- settings -----------------------------------------------------------------------------

@pytest.mark.parametrize(("env", "variable"), [
    ({"DODOSO_MAX_SUBMISSION_BYTES": "abc"}, "DODOSO_MAX_SUBMISSION_BYTES"),
    ({"DODOSO_ENV": "production"}, "DODOSO_SECRET_KEY"),
    ({"DODOSO_ENV": "staging"}, "DODOSO_ENV"),
    ({"DODOSO_SESSION_TTL_SECONDS": "0"}, "DODOSO_SESSION_TTL_SECONDS"),
])
@pytest.mark.parametrize("command", [("db", "upgrade"), ("users", "list"), ("demo",)])
def test_bad_setting__names_the_variable_without_a_traceback(cli, tmp_path, env, variable,
                                                             command):
    out = cli.fails(*command, env=env)
    assert variable in out
    assert not (tmp_path / "cli.db").exists()


def test_demo__never_prints_a_password_that_no_longer_works(migrated, tmp_path):
    old = demo_password(migrated.ok("demo"))
    migrated.ok("users", "set-password", DEMO_ADMIN_EMAIL, "--password", "a brand new password")
    out = migrated.ok("demo")
    assert old not in out
    assert f"dodoso users set-password {DEMO_ADMIN_EMAIL}" in out
    assert not (tmp_path / "instance" / "demo-credentials.txt").exists()


def test_commands__on_an_old_schema_say_to_upgrade(migrated):
    migrated.ok("db", "downgrade", "base")
    out = migrated.fails("projects", "list")
    assert "dodoso db upgrade" in out


def test_app_users_qr__writes_a_code_for_a_new_or_rotated_app_user(migrated, tmp_path):
    from sync.collect import decode_payload
    from tests.unit.sync.test_collect import png_pixels, read_qr

    migrated.ok("projects", "create", "Remittances")
    out = migrated.ok("app-users", "qr", "--project", "1", "--name", "Tablet 9",
                      "--out", str(tmp_path / "t9.png"), "--managed")
    url = out.split("Server URL: ")[1].strip()
    decoded = decode_payload(read_qr(*png_pixels((tmp_path / "t9.png").read_bytes())).text)
    assert decoded["general"]["server_url"] == url
    assert decoded["general"]["form_update_mode"] == "match_exactly"
    rotated = migrated.ok("app-users", "qr", "--project", "1", "--app-user", "1",
                          "--out", str(tmp_path / "t9.svg"))
    assert rotated.split("Server URL: ")[1].strip() != url
    assert (tmp_path / "t9.svg").read_bytes().lstrip().startswith((b"<?xml", b"<svg"))
    migrated.fails("app-users", "qr", "--project", "1", "--out", str(tmp_path / "x.gif"))


def test_submissions_purge__reports_what_it_would_purge_and_what_it_purged(migrated):
    assert "Would purge 0 submission(s) deleted before" in migrated.ok(
        "submissions", "purge", "--dry-run")
    assert "Purged 0 submission(s)" in migrated.ok("submissions", "purge", "--days", "0")
