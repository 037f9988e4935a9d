"""The ``dodoso`` command line. Commands are thin: they open a session and call services."""

from __future__ import annotations

import os
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from server import queries
from server.auth.actor import SYSTEM
from server.auth.passwords import Passwords
from server.cli_blobs import blobs_group
from server.cli_export import export_command
from server.cli_forms import forms_group
from server.cli_submissions import submissions_group
from server.db import create_db_engine, make_session_factory
from server.errors import Problem
from server.settings import Settings, SettingsError, resolve_path

DEMO_ADMIN_EMAIL = "admin@example.com"
DEMO_PROJECT_NAME = "Demo: labour migration"
DEMO_APP_USER = "Demo tablet"
DEMO_CREDENTIALS_FILE = "instance/demo-credentials.txt"
SCHEDULE_SECONDS = 60.0  # how often the worker looks for periodic jobs that are due


class Context:
    def __init__(self) -> None:
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = Settings.from_env()
            except SettingsError as exc:
                raise click.ClickException(str(exc)) from None
        return self._settings

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction on an up-to-date schema: committed when the block succeeds."""
        from server.migrate import SchemaNotCurrent, check_schema_current

        engine = create_db_engine(self.settings)
        try:
            try:
                check_schema_current(engine)
            except SchemaNotCurrent as exc:
                raise click.ClickException(str(exc)) from None
            except OperationalError as exc:
                raise click.ClickException(f"Cannot reach the database: {exc.orig}") from None
            with make_session_factory(engine)() as db:
                try:
                    yield db
                    db.commit()
                except Problem as problem:
                    db.rollback()
                    raise click.ClickException(describe(problem)) from None
        finally:
            engine.dispose()


def describe(problem: Problem) -> str:
    reason = problem.details.get("reason")
    return f"{problem.message}{f' ({reason})' if reason else ''} [{problem.code}]"


pass_ctx = click.make_pass_decorator(Context, ensure=True)


@click.group()
@click.version_option(package_name="dodoso")
def main() -> None:
    """dodoso: collect survey data with ODK Collect, get it back out clean."""


# -- db ---------------------------------------------------------------------------------

@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_ctx
def db_upgrade(ctx: Context, revision: str) -> None:
    """Bring the database schema up to date."""
    from server import migrate

    migrate.upgrade(ctx.settings, revision)
    click.echo(f"Database at {revision}.")


@db.command("downgrade")
@click.argument("revision")
@pass_ctx
def db_downgrade(ctx: Context, revision: str) -> None:
    """Step the schema back to REVISION (``base`` drops everything)."""
    from server import migrate

    migrate.downgrade(ctx.settings, revision)
    click.echo(f"Database at {revision}.")


@db.command("current")
@pass_ctx
def db_current(ctx: Context) -> None:
    """Print the schema revision of the database."""
    from server import migrate

    engine = create_db_engine(ctx.settings)
    with engine.connect() as conn:
        click.echo(migrate.current_revision(conn) or "(empty)")
    engine.dispose()


@db.command("views")
@pass_ctx
def db_views(ctx: Context) -> None:
    """(Re)build every form's SQL views for analysts (PostgreSQL; built on publish too)."""
    from server.services import views

    with ctx.session() as s:
        if not views.supported(s):
            raise click.ClickException("SQL views need PostgreSQL.")
        built = views.refresh_all(s)
        s.commit()
    for form, names in built:
        for name in names:
            click.echo(f"{form.project_id}/{form.xml_form_id}: {name}")
    click.echo(f"{sum(len(names) for _, names in built)} views.")


# -- users ------------------------------------------------------------------------------

@main.group()
def users() -> None:
    """Web users (data managers, designers, administrators)."""


def _prompt_password() -> str:
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@users.command("create")
@click.argument("email")
@click.option("--name", "display_name", help="Display name (default: the email's local part).")
@click.option("--password", envvar="DODOSO_NEW_PASSWORD",
              help="Read from DODOSO_NEW_PASSWORD or prompted when not given.")
@click.option("--admin", is_flag=True, help="Make the user a site administrator.")
@pass_ctx
def users_create(ctx: Context, email: str, display_name: str | None, password: str | None,
                 admin: bool) -> None:
    """Create a user who logs in with EMAIL."""
    from server.services import accounts

    password = password or _prompt_password()
    with ctx.session() as s:
        user = accounts.create_user(s, Passwords(ctx.settings), SYSTEM, email=email,
                                    display_name=display_name, password=password,
                                    is_admin=admin)
        role = " (site administrator)" if admin else ""
        click.echo(f"Created user {user.id} <{user.email}>{role}.")


@users.command("promote")
@click.argument("email")
@pass_ctx
def users_promote(ctx: Context, email: str) -> None:
    """Make a user a site administrator."""
    from server.services import accounts

    with ctx.session() as s:
        accounts.set_admin(s, SYSTEM, _user(s, email), True)
    click.echo(f"{email} is a site administrator.")


@users.command("set-password")
@click.argument("email")
@click.option("--password", envvar="DODOSO_NEW_PASSWORD",
              help="Read from DODOSO_NEW_PASSWORD or prompted when not given.")
@pass_ctx
def users_set_password(ctx: Context, email: str, password: str | None) -> None:
    """Set a user's password; their sessions and API tokens end."""
    from server.services import accounts

    password = password or _prompt_password()
    with ctx.session() as s:
        accounts.set_password(s, Passwords(ctx.settings), SYSTEM, _user(s, email), password)
    click.echo(f"Password set for {email}.")


@users.command("list")
@pass_ctx
def users_list(ctx: Context) -> None:
    """List users."""
    with ctx.session() as s:
        for u in queries.users.list_(s, limit=100000, offset=0):
            click.echo("\t".join([str(u.id), u.email, u.display_name]
                                 + (["admin"] if u.is_admin else [])))


def _user(s: Session, email: str):
    user = queries.users.get_by_email(s, email)
    if user is None:
        raise click.ClickException(f"No user with email {email}.")
    return user


# -- projects and app users -------------------------------------------------------------

@main.group()
def projects() -> None:
    """Projects."""


@projects.command("create")
@click.argument("name")
@click.option("--description")
@pass_ctx
def projects_create(ctx: Context, name: str, description: str | None) -> None:
    """Create a project called NAME."""
    from server.services.projects import create_project

    with ctx.session() as s:
        project = create_project(s, SYSTEM, name=name, description=description)
        click.echo(f"Created project {project.id}: {project.name}")


@projects.command("list")
@pass_ctx
def projects_list(ctx: Context) -> None:
    """List projects."""
    with ctx.session() as s:
        for p in queries.projects.list_all(s):
            click.echo(f"{p.id}\t{p.name}")


@main.group("app-users")
def app_users() -> None:
    """App users: the credentials ODK Collect devices use."""


@app_users.command("create")
@click.argument("display_name")
@click.option("--project", "project_id", type=int, required=True)
@pass_ctx
def app_users_create(ctx: Context, display_name: str, project_id: int) -> None:
    """Create an app user and print the server URL to configure Collect with."""
    from server.services.app_users import create_app_user

    with ctx.session() as s:
        project = queries.projects.get(s, project_id)
        if project is None:
            raise click.ClickException(f"No project {project_id}.")
        new = create_app_user(s, SYSTEM, project, display_name=display_name)
        click.echo(f"Created app user {new.app_user.id} ({display_name}).")
        url = collect_url(ctx.settings, new.token, project.id)
        click.echo(f"Collect server URL (shown once): {url}")


@app_users.command("qr")
@click.option("--project", "project_id", type=int, required=True)
@click.option("--name", "display_name", help="Create a new app user with this name.")
@click.option("--app-user", "app_user_id", type=int,
              help="Instead, issue a new token to this app user (its devices must be set up "
                   "again).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the QR code: a .png or .svg file.")
@click.option("--managed", is_flag=True,
              help="Managed set-up: forms match the server, finished forms auto-send.")
@pass_ctx
def app_users_qr(ctx: Context, project_id: int, display_name: str | None,
                 app_user_id: int | None, out: Path, managed: bool) -> None:
    """Write the QR code that sets up ODK Collect (scan it in Collect's Add project)."""
    from server.services import app_users as svc
    from server.services.collect_setup import app_user_qr

    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise click.UsageError("--out must end in .png or .svg")
    if (display_name is None) == (app_user_id is None):
        raise click.UsageError("Give either --name (a new app user) or --app-user ID.")
    with ctx.session() as s:
        project = queries.projects.get(s, project_id)
        if project is None:
            raise click.ClickException(f"No project {project_id}.")
        if display_name is not None:
            new = svc.create_app_user(s, SYSTEM, project, display_name=display_name)
        else:
            app_user = queries.app_users.get(s, project.id, app_user_id or 0)
            if app_user is None:
                raise click.ClickException(f"No app user {app_user_id} in project {project_id}.")
            new = svc.rotate_token(s, SYSTEM, app_user)
        out.write_bytes(app_user_qr(ctx.settings, project, new.token, fmt=fmt, managed=managed))
        click.echo(f"App user {new.app_user.id} ({new.app_user.display_name}): QR code written "
                   f"to {out}")
        click.echo(f"Server URL: {collect_url(ctx.settings, new.token, project.id)}")


def collect_url(settings: Settings, token: str, project_id: int) -> str:
    from sync.collect import app_user_url

    return app_user_url(settings.public_url, token, project_id)


# -- demo, serve, worker ----------------------------------------------------------------

@main.command()
@click.option("--credentials-file", default=DEMO_CREDENTIALS_FILE, show_default=True,
              help="Where the demo's passwords are kept (mode 0600) so they can be shown again.")
@pass_ctx
def demo(ctx: Context, credentials_file: str) -> None:
    """Create a demo project, an administrator and an app user (once), and say how to log in."""
    from server.services import accounts
    from server.services.app_users import create_app_user
    from server.services.library import install_for_demo, summary
    from server.services.projects import create_project

    path = resolve_path(credentials_file)
    passwords = Passwords(ctx.settings)
    with ctx.session() as s:
        admin = queries.users.get_by_email(s, DEMO_ADMIN_EMAIL)
        if admin is not None:
            saved = path.read_text() if path.exists() else ""
            if saved and passwords.verify(admin.password_hash, _demo_password(saved)):
                click.echo(saved)
            else:
                path.unlink(missing_ok=True)
                click.echo(f"The demo was set up before, and its saved password is gone or no "
                           f"longer valid. Set a new one with:\n"
                           f"  dodoso users set-password {DEMO_ADMIN_EMAIL}")
            return
        password = secrets.token_urlsafe(12)
        accounts.create_user(s, passwords, SYSTEM, email=DEMO_ADMIN_EMAIL,
                             display_name="Demo administrator", password=password, is_admin=True)
        project = create_project(s, SYSTEM, name=DEMO_PROJECT_NAME,
                                 description="A sandbox to try dodoso and ODK Collect.")
        new = create_app_user(s, SYSTEM, project, display_name=DEMO_APP_USER)
        installed = install_for_demo(s, ctx.settings, SYSTEM, project, new.app_user.id)
        text = _demo_text(ctx.settings, password, project.id, collect_url(
            ctx.settings, new.token, project.id))
        text += "\nForm library, installed in the demo project for the demo tablet:\n"
        text += "".join(f"  {line}\n" for line in summary(installed))
        _write_private(path, text)
    click.echo(text)


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, even where an older one was readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _demo_password(saved: str) -> str:
    for line in saved.splitlines():
        if line.startswith("Password:"):
            return line.partition(":")[2].strip()
    return ""


def _demo_text(settings: Settings, password: str, project_id: int, url: str) -> str:
    base = settings.public_url
    return f"""\
dodoso demo
===========
Site administrator:  {DEMO_ADMIN_EMAIL}
Password:            {password}
Demo project id:     {project_id}

Log in and use the API:
  TOKEN=$(curl -s -X POST {base}/v1/sessions -H 'Content-Type: application/json' \\
    -d '{{"email": "{DEMO_ADMIN_EMAIL}", "password": "{password}"}}' \\
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
  curl -s -H "Authorization: Bearer $TOKEN" {base}/v1/projects
  curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -d '{{"name": "My survey"}}' {base}/v1/projects
  curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -d '{{"displayName": "Tablet 1"}}' {base}/v1/projects/{project_id}/app-users

ODK Collect: Settings > Project management > Add project > Manually enter details,
server URL:
  {url}
(The tablet must reach {base}; set DODOSO_PUBLIC_URL to an address it can reach.)

API reference: {base}/v1/openapi.json
"""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--debug", is_flag=True, help="Reload on code changes (development only).")
@pass_ctx
def serve(ctx: Context, host: str, port: int, debug: bool) -> None:
    """Run the development server. Production runs gunicorn (see the Procfile)."""
    from werkzeug.serving import run_simple

    from server.app import create_app

    app = create_app(ctx.settings)
    if ctx.settings.env == "production":
        click.echo("Warning: the development server is not for production; use gunicorn.",
                   err=True)
    click.echo(f"dodoso serving on http://{host}:{port}  (API: /v1, OpenAPI: /v1/openapi.json)")
    run_simple(host, port, app, threaded=True, use_reloader=debug, use_debugger=False)


@main.command()
@click.option("--once", is_flag=True, help="Run the jobs that are due, then exit.")
@click.option("--poll-seconds", default=2.0, show_default=True)
@pass_ctx
def worker(ctx: Context, once: bool, poll_seconds: float) -> None:
    """Run background jobs from the jobs table."""
    from server.db import utcnow
    from server.logs import configure_logging, log
    from server.services import entities, exports, gc, purge  # noqa: F401  (jobs register)
    from server.services.jobs import enqueue_due, run_one

    configure_logging(ctx.settings)
    name = f"{socket.gethostname()}:{os.getpid()}"
    engine = create_db_engine(ctx.settings)
    sessions = make_session_factory(engine)
    log.info("worker_started", worker=name)
    schedule_at = 0.0
    try:
        while True:
            if time.monotonic() >= schedule_at:  # periodic jobs (blob clean-up …)
                with sessions() as s:
                    enqueue_due(s, utcnow())
                    s.commit()
                schedule_at = time.monotonic() + SCHEDULE_SECONDS
            with sessions() as s:
                job = run_one(s, name)
            if job is not None:
                log.info("job_done", job=job.id, kind=job.kind, status=job.status)
                continue
            if once:
                return
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        engine.dispose()

main.add_command(forms_group)
main.add_command(blobs_group)
main.add_command(submissions_group)
main.add_command(export_command)


if __name__ == "__main__":
    sys.exit(main())
