"""``dodoso forms …``: designers check XLSForms offline and push them to a dodoso server."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import click

from forms.issues import FormInvalid, FormIssue
from forms.pipeline import Limits, prepare_form, should_validate

CONTENT_TYPES = {
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".xls": "application/vnd.ms-excel",
    ".xml": "application/xml",
    ".csv": "text/csv",
    ".md": "text/markdown",
}


@click.group("forms")
def forms_group() -> None:
    """Check XLSForms and publish them."""


def print_issues(issues: list[FormIssue] | list[dict[str, Any]]) -> None:
    for issue in issues:
        if isinstance(issue, dict):
            issue = FormIssue(**{k: issue.get(k) for k in (
                "level", "code", "message", "sheet", "row", "column", "original", "field")})
        click.secho(f"  {issue.describe()}", fg="red" if issue.level == "error" else "yellow",
                    err=True)


@forms_group.command("check")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--validate/--no-validate", default=None,
              help="Run ODK Validate (default: when Java is available).")
@click.option("--java", default="java", show_default=True)
def check(path: Path, validate: bool | None, java: str) -> None:
    """Compile FILE (an XLSForm or XForm) offline and report every problem found."""
    run_validate = should_validate("auto", java) if validate is None else validate
    try:
        prepared = prepare_form(path.read_bytes(), filename=path.name,
                                form_id_fallback=path.stem, validate=run_validate, java=java,
                                limits=Limits())
    except FormInvalid as invalid:
        click.secho(f"{path.name}: {len(invalid.errors)} error(s)", fg="red", err=True)
        print_issues(invalid.issues)
        raise SystemExit(1) from None
    info = prepared.info
    schema = info.schema
    click.echo(f"{path.name}: OK{' (checked by ODK Validate)' if run_validate else ''}")
    click.echo(f"  form id:   {info.form_id}")
    click.echo(f"  version:   {info.version or '(none)'}")
    click.echo(f"  title:     {info.title}")
    click.echo(f"  fields:    {len(schema.questions())} "
               f"in {len(schema.repeats())} repeat(s)")
    if schema.languages:
        click.echo(f"  languages: {', '.join(schema.languages)}")
    media = sorted({m.name for m in info.media})
    if media:
        click.echo(f"  media:     {', '.join(media)}")
    if info.encryption_key:
        click.echo("  encrypted: yes")
    if prepared.warnings:
        click.secho(f"  {len(prepared.warnings)} warning(s):", fg="yellow", err=True)
        print_issues(prepared.warnings)


class Server:
    """A tiny client for the dodoso API (stdlib only, so designers need nothing else)."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url.rstrip("/"), token
        host = urllib.parse.urlsplit(self.url).hostname or ""
        local = host in ("localhost", "::1") or host.startswith("127.")
        # A proxy in the environment must not see a token meant for this machine.
        self.opener = urllib.request.build_opener(
            *([urllib.request.ProxyHandler({})] if local else []))

    def call(self, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path, data=body, method=method, headers={
            "Authorization": f"Bearer {self.token}", **(headers or {})})
        try:
            with self.opener.open(request, timeout=120) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            payload = error.read()
            try:
                return error.code, json.loads(payload)
            except ValueError:
                return error.code, {"message": payload.decode("utf-8", "replace")[:500]}
        except urllib.error.URLError as error:
            raise click.ClickException(f"Cannot reach {self.url}: {error.reason}") from None


def log_in(url: str, email: str, password: str) -> str:
    body = json.dumps({"email": email, "password": password}).encode()
    status, answer = Server(url, "").call("POST", "/v1/sessions", body,
                                          {"Content-Type": "application/json"})
    if status != 200:
        raise click.ClickException(f"Log-in failed: {answer.get('message')}")
    return answer["token"]


@forms_group.command("push")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--project", "project_id", type=int, required=True)
@click.option("--publish", is_flag=True, help="Publish it (otherwise it stays a draft).")
@click.option("--version", help="Publish under this version string.")
@click.option("--ignore-warnings", is_flag=True)
@click.option("--server", "url", envvar="DODOSO_SERVER", default="http://127.0.0.1:8080",
              show_default=True, help="The dodoso server (or DODOSO_SERVER).")
@click.option("--token", envvar="DODOSO_API_TOKEN",
              help="An API token (or DODOSO_API_TOKEN); otherwise log in with --email.")
@click.option("--email", help="Log in with this email; the password is prompted.")
def push(path: Path, project_id: int, publish: bool, version: str | None,
         ignore_warnings: bool, url: str, token: str | None, email: str | None) -> None:
    """Upload FILE as a new form, or as a new draft of the form with the same ID."""
    if not token:
        if not email:
            raise click.UsageError("Give --token (or DODOSO_API_TOKEN) or --email.")
        token = log_in(url, email, click.prompt("Password", hide_input=True))
    server = Server(url, token)
    body = path.read_bytes()
    headers = {"Content-Type": CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream"),
               "X-XlsForm-FormId-Fallback": path.stem}
    query = {"ignoreWarnings": str(ignore_warnings).lower()}
    base = f"/v1/projects/{project_id}/forms"
    status, answer = server.call("POST", f"{base}?{urllib.parse.urlencode(query)}", body, headers)
    if status == 409 and answer.get("code") == 409.3:
        form_id = answer["details"]["values"]
        status, answer = server.call(
            "POST", f"{base}/{urllib.parse.quote(form_id, safe='')}/draft?"
                    f"{urllib.parse.urlencode(query)}", body, headers)
        if status == 404:
            raise click.ClickException(
                f"The form ID {form_id} belonged to a form that was deleted; IDs are never "
                "reused. Change form_id on the settings sheet.")
        if status == 200:
            click.echo(f"New draft of {form_id} (version {answer.get('version') or '(none)'}).")
            _print_diff(answer.get("diff"))
    elif status == 200:
        form_id = answer["xmlFormId"]
        click.echo(f"Created form {form_id} (version {answer.get('version') or '(none)'}).")
    if status != 200:
        _fail(answer)
    if publish:
        publish_query = f"?{urllib.parse.urlencode({'version': version})}" if version else ""
        status, answer = server.call(
            "POST", f"{base}/{urllib.parse.quote(form_id, safe='')}/draft/publish{publish_query}")
        if status != 200:
            _fail(answer)
        click.echo(f"Published {form_id} version {answer.get('version') or '(none)'}.")


def _print_diff(diff: dict[str, Any] | None) -> None:
    if not diff:
        return
    for key in ("added", "removed", "moved", "retyped"):
        for change in diff.get(key) or []:
            click.echo(f"  {key}: {change.get('path') or change}")


def _fail(answer: dict[str, Any]) -> None:
    click.secho(f"{answer.get('message')} [{answer.get('code')}]", fg="red", err=True)
    details = answer.get("details") or {}
    print_issues((details.get("errors") or []) + (details.get("warnings") or []))
    raise SystemExit(1)


# -- the form library -------------------------------------------------------------------------

@forms_group.group("library")
def library_group() -> None:
    """dodoso's ready-made forms (see docs/form-library.md)."""


@library_group.command("list")
def library_list() -> None:
    """List the library's forms: ID, version, title and what each is for."""
    from forms.library import FORMS

    for form in FORMS:
        click.echo(f"{form.form_id}\t{form.version}\t{form.title}")
        click.echo(f"    {form.description}")
        if form.registers:
            click.echo(f"    registers entities in: {form.registers}")
        if form.entity_lists:
            click.echo(f"    follows up the entity list(s): {', '.join(form.entity_lists)}")


@library_group.command("install")
@click.argument("form_ids", nargs=-1, metavar="[FORM_ID]...")
@click.option("--project", "project_id", type=int, required=True)
@click.option("--assign", "app_user_ids", type=int, multiple=True, metavar="APP_USER_ID",
              help="Assign the installed forms to this app user (repeatable), so Collect "
                   "lists them.")
def library_install(form_ids: tuple[str, ...], project_id: int,
                    app_user_ids: tuple[int, ...]) -> None:
    """Install library forms (all of them when no FORM_ID is given) into a project, each
    created, given its media and published. Forms the project has are left as they are."""
    from forms.library import get
    from server import queries
    from server.auth.actor import SYSTEM
    from server.cli import Context
    from server.services.forms import FormsContext
    from server.services.library import install_forms, summary
    from server.storage import open_blob_store

    unknown = [f for f in form_ids if get(f) is None]
    if unknown:
        raise click.BadParameter(f"not in the library: {', '.join(unknown)} (see "
                                 "'dodoso forms library list')", param_hint="FORM_ID")
    ctx = click.get_current_context().ensure_object(Context)
    with ctx.session() as s:
        project = queries.projects.get(s, project_id)
        if project is None:
            raise click.ClickException(f"No project {project_id}.")
        for app_user_id in app_user_ids:
            app_user = queries.app_users.get(s, project.id, app_user_id)
            if app_user is None or app_user.revoked_at is not None:
                raise click.ClickException(f"No app user {app_user_id} in project {project_id}.")
        forms_ctx = FormsContext(ctx.settings, open_blob_store(ctx.settings))
        results = install_forms(s, forms_ctx, SYSTEM, project, form_ids or None,
                                assign_to=app_user_ids)
    for line, result in zip(summary(results), results, strict=True):
        click.secho(line, fg="red" if result.status == "failed" else None,
                    err=result.status == "failed")
    if any(r.status == "failed" for r in results):
        raise SystemExit(1)
