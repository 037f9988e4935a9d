"""``dodoso export``: write a form's export to a file (or stdout), with the API's options and
filters, straight from the database (no server needed). Reads on a read-only connection, so
on SQLite it never blocks incoming submissions."""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

import click

from server import queries
from server.auth.actor import SYSTEM
from server.db import create_db_engine, make_session_factory
from server.errors import Problem
from server.exports.columns import Layout, OptionError
from server.models.submissions import REVIEW_STATES
from server.queries.filters import SubmissionFilter
from server.services import exports as svc
from server.settings import Settings, SettingsError


def _when(_ctx: click.Context, param: click.Parameter, value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("give an ISO 8601 date-time with a time zone, like "
                                 "2026-11-01T00:00:00Z") from None
    if moment.tzinfo is None:
        raise click.BadParameter("give the time zone too (…Z or …+03:00)")
    return moment


@click.command("export")
@click.option("--project", "project_id", type=int, required=True, help="Project id.")
@click.option("--form", "xml_form_id", required=True, help="The form's xmlFormId.")
@click.option("--format", "fmt", type=click.Choice(svc.FORMATS), required=True)
@click.option("--output", required=True, help="File to write ('-' for standard output).")
@click.option("--group-paths/--no-group-paths", default=True, show_default=True,
              help="Headers with their groups (work-wage) or bare names (wage).")
@click.option("--deleted-fields", is_flag=True, help="Also fields of older versions only.")
@click.option("--split-select-multiples", is_flag=True,
              help="A 0/1 column per choice after each select_multiple.")
@click.option("--labels", is_flag=True, help="Labels instead of names (headers and choices).")
@click.option("--language", help="The labels' language (name or code).")
@click.option("--attachments/--no-attachments", default=True, show_default=True,
              help="csv.zip: the files under media/.")
@click.option("--geo-field", help="geojson: the geo field to map (default: the first).")
@click.option("--include-history", is_flag=True, help="Every version of edited submissions.")
@click.option("--submitted-from", callback=_when, help="Received at or after (ISO 8601).")
@click.option("--submitted-to", callback=_when, help="Received before (ISO 8601).")
@click.option("--submitter-id", type=int, multiple=True, help="Web user id (repeatable).")
@click.option("--app-user-id", type=int, multiple=True, help="App user id (repeatable).")
@click.option("--device-id", multiple=True, help="Device id (repeatable).")
@click.option("--review-state", type=click.Choice(REVIEW_STATES), multiple=True)
@click.option("--form-version", multiple=True, help="Form version (repeatable).")
def export_command(project_id: int, xml_form_id: str, fmt: str, output: str,
                   group_paths: bool, deleted_fields: bool, split_select_multiples: bool,
                   labels: bool, language: str | None, attachments: bool,
                   geo_field: str | None, include_history: bool,
                   submitted_from: dt.datetime | None, submitted_to: dt.datetime | None,
                   submitter_id: tuple[int, ...], app_user_id: tuple[int, ...],
                   device_id: tuple[str, ...], review_state: tuple[str, ...],
                   form_version: tuple[str, ...]) -> None:
    """Export a form's submissions (csv.zip, csv, xlsx, geojson or attachments.zip)."""
    from server.migrate import SchemaNotCurrent, check_schema_current
    from server.storage import open_blob_store

    try:
        settings = Settings.from_env()
        request = svc.ExportRequest(
            format=fmt,
            layout=Layout(group_paths=group_paths, deleted_fields=deleted_fields,
                          split_select_multiples=split_select_multiples, labels=labels,
                          language=language),
            filter=SubmissionFilter(
                submitted_from=submitted_from, submitted_to=submitted_to,
                submitter_user_ids=submitter_id, submitter_app_user_ids=app_user_id,
                device_ids=device_id, review_states=review_state, form_versions=form_version,
                include_history=include_history),
            attachments=attachments, geo_field=geo_field)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    except OptionError as exc:
        raise click.BadParameter(exc.reason, param_hint=exc.option) from None
    engine = create_db_engine(settings)
    try:
        try:
            check_schema_current(engine)
        except SchemaNotCurrent as exc:
            raise click.ClickException(str(exc)) from None
        with make_session_factory(engine)() as db:
            form = queries.forms.get(db, project_id, xml_form_id)
            if form is None:
                raise click.ClickException(f"No form {xml_form_id!r} in project {project_id}.")
            try:
                plan = svc.plan_export(db, form, request)
            except Problem as problem:
                raise click.ClickException(f"{problem.message} [{problem.code}]") from None
            svc.record_export(db, SYSTEM, form, plan)
            db.commit()
        store = open_blob_store(settings)
        written = _write(output, lambda out: svc.write_file(engine, store, plan, out))
    finally:
        engine.dispose()
    if output != "-":
        click.echo(f"Wrote {written} bytes to {output}.", err=True)


def _write(output: str, write) -> int:
    """To stdout, or to a temporary file beside ``output`` renamed into place when done (a
    failed export never leaves a half-written file under the wanted name)."""
    if output == "-":
        return write(sys.stdout.buffer)
    target = Path(output)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
    try:
        with os.fdopen(fd, "wb") as out:
            written = write(out)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return written
