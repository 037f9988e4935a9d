"""The form library in a project: installed through the forms service (created, media
attached, published, assigned), idempotently; then, for every library form, a filled-in
submission posted the way Collect posts it (multipart OpenRosa) is stored once, flattened
into rows holding exactly what was sent, and exported with the expected CSV columns.

Each library workbook is compiled (in dodoso's sandbox, and checked by ODK Validate where
Java runs) once per session, and the install is given those results; one test checks that
the install's own in-process compile gives the same XForm.
"""

from __future__ import annotations

import dataclasses
import io

import pytest
from lxml import etree
from sqlalchemy import func, select

from forms.library import FORMS, get
from forms.schema import FormSchema
from server import queries
from server.auth.actor import SYSTEM
from server.errors import Problem
from server.models import Form, FormDef, Submission, SubmissionRow
from server.models.submissions import ROOT_TABLE
from server.services import forms as forms_svc
from server.services import library
from server.services.library import install_forms, summary
from sync.instance import is_container
from tests.integration.test_openrosa import OR
from tests.support.library import (
    FORM_IDS,
    REPEAT_ROWS,
    csv_zip_tables,
    fill,
    prepared,
)

ROOT_TAIL = ["KEY", "SubmitterID", "SubmitterName", "AttachmentsPresent",
             "AttachmentsExpected", "Status", "ReviewState", "DeviceID", "Edits",
             "FormVersion"]
FORMULA_START = ("+", "-", "=", "@")


@pytest.fixture
def project(make):
    return make.project("Labour migration 2026")


@pytest.fixture
def tablet(make, project):
    return make.app_user(project, "Tablet Kagera")


def install(db, ctx, project, form_ids=None, assign_to=()):
    results = install_forms(db, ctx, SYSTEM, project, form_ids, assign_to=assign_to)
    db.commit()
    return {r.form_id: r for r in results}


def count(db, model, *where) -> int:
    return db.scalar(select(func.count()).select_from(model).where(*where))


# -- installing ------------------------------------------------------------------------------

def test_install__every_form_published_with_its_media_and_offered_to_the_tablet(
        client, db, ctx, project, tablet, compiled_once):
    app_user, token = tablet
    results = install(db, ctx, project, assign_to=[app_user.id])
    assert [r.status for r in results.values()] == ["installed"] * len(FORMS)
    for library_form in FORMS:
        form = queries.forms.get(db, project.id, library_form.form_id)
        current = queries.forms.current_def(db, form.id)
        assert current.version == library_form.version == results[form.xml_form_id].version
        assert current.xlsform_filename == library_form.xlsx_path.name  # the workbook is kept
        attached = {a.name: blob for a, blob in queries.forms.attachments(db, current.id)}
        for name, data in library_form.media_files().items():
            assert attached[name] is not None and attached[name].size == len(data), name
        for entity_list in library_form.entity_lists:
            assert attached[f"{entity_list}.csv"] is None  # the entity list supplies it
        assert queries.forms.is_assigned(db, form.id, app_user.id)
    assert results["mida_assignment_monitoring"].awaiting == ("diaspora_experts",)
    assert "diaspora_experts.csv" in summary(list(results.values()))[2]

    key = f"/v1/key/{token}/projects/{project.id}"
    listed = etree.fromstring(client.get(f"{key}/formList", headers=OR).data)
    ns = {"x": "http://openrosa.org/xforms/xformsList"}
    assert sorted(listed.xpath("//x:formID/text()", namespaces=ns)) == sorted(FORM_IDS)
    manifest = client.get(f"{key}/forms/remittance_corridor_intercept/manifest", headers=OR)
    names = etree.fromstring(manifest.data).xpath(
        "//m:filename/text()", namespaces={"m": "http://openrosa.org/xforms/xformsManifest"})
    assert sorted(names) == ["countries.csv", "tz_councils.csv", "ug_districts.csv"]


def test_install__again_changes_nothing_and_says_so(db, ctx, project, compiled_once):
    install(db, ctx, project, ["returnee_rss", "hh_migration_remittances"])
    defs = count(db, FormDef)
    again = install(db, ctx, project)
    assert {k: r.status for k, r in again.items()} == {
        "hh_migration_remittances": "present", "diaspora_skills_profile": "installed",
        "mida_assignment_monitoring": "installed", "returnee_rss": "present",
        "remittance_corridor_intercept": "installed"}
    assert count(db, FormDef) == defs + 3
    assert count(db, Form, Form.project_id == project.id) == len(FORMS)


def test_install__reports_another_version_and_a_deleted_id_without_touching_them(
        db, ctx, project, compiled_once):
    install(db, ctx, project, ["returnee_rss", "remittance_corridor_intercept"])
    rss = queries.forms.get(db, project.id, "returnee_rss")
    forms_svc.create_draft(db, ctx, SYSTEM, rss, None)
    forms_svc.publish_draft(db, ctx, SYSTEM, rss, version="2027010101")
    forms_svc.delete_form(db, SYSTEM, queries.forms.get(db, project.id,
                                                        "remittance_corridor_intercept"))
    db.commit()
    results = install(db, ctx, project, ["returnee_rss", "remittance_corridor_intercept"])
    assert (results["returnee_rss"].status, results["returnee_rss"].version) == (
        "outdated", "2027010101")
    assert results["remittance_corridor_intercept"].status == "unavailable"
    lines = summary(list(results.values()))
    assert lines[0] == ("returnee_rss: outdated (version 2027010101; the library has "
                        f"{get('returnee_rss').version})")


def test_install__a_refused_form_is_rolled_back_and_the_others_installed(
        db, ctx, project, compiled_once, monkeypatch):
    broken = get("returnee_rss")
    real = type(broken).xlsx
    monkeypatch.setattr(type(broken), "xlsx",
                        lambda self: b"not a workbook" if self is broken else real(self))
    results = install(db, ctx, project, ["returnee_rss", "diaspora_skills_profile"])
    assert results["returnee_rss"].status == "failed"
    assert "[400.15]" in results["returnee_rss"].detail
    assert results["diaspora_skills_profile"].status == "installed"
    assert not queries.forms.exists_any(db, project.id, "returnee_rss")
    assert queries.forms.get(db, project.id, "diaspora_skills_profile") is not None


def test_prepare__in_process_gives_the_sandboxed_xform_and_honours_odk_validate(ctx):
    form = get("returnee_rss")
    upload = forms_svc.Upload(form.xlsx(), form.xlsx_path.name, library.XLSX)
    ours = library.prepare(ctx, upload)
    assert ours.xform == prepared(form.form_id).xform
    assert (ours.kind, ours.source, ours.warnings) == ("xlsx", form.xlsx(), [])
    strict = forms_svc.FormsContext(
        dataclasses.replace(ctx.settings, odk_validate="on", java_path="/nonexistent/java"),
        ctx.store)
    with pytest.raises(Problem) as raised:
        library.prepare(strict, upload)
    assert raised.value.code == 400.15
    assert [e["code"] for e in raised.value.details["errors"]] == ["odk_validate.unavailable"]


def test_install__an_unknown_form_id_is_404_1_and_installs_nothing(db, ctx, project):
    with pytest.raises(Problem) as raised:
        install_forms(db, ctx, SYSTEM, project, ["returnee_rss", "no_such_form"])
    assert raised.value.code == 404.1
    assert raised.value.details == {"libraryForms": ["no_such_form"]}
    assert count(db, Form) == 0


# -- a submission of every form, end to end ------------------------------------------------------

def post(client, url: str, xml: bytes):
    return client.post(f"{url}/submission?deviceID=collect%3Atablet-7",
                       data={"xml_submission_file": (io.BytesIO(xml), "submission.xml",
                                                     "text/xml")},
                       content_type="multipart/form-data", headers=OR)


@pytest.mark.parametrize("form_id", FORM_IDS)
def test_round_trip__stored_once_flattened_and_exported_with_the_expected_columns(
        client, db, ctx, project, tablet, admin_headers, compiled_once, form_id):
    app_user, token = tablet
    assert install(db, ctx, project, [form_id], [app_user.id])[form_id].status == "installed"
    form = queries.forms.get(db, project.id, form_id)
    schema = FormSchema.from_json(queries.forms.current_def(db, form.id).schema)
    filled = fill(form_id)
    key = f"/v1/key/{token}/projects/{project.id}"

    first = post(client, key, filled.xml)
    assert first.status_code == 201, first.data
    again = post(client, key, filled.xml)  # Collect retries when the answer is lost
    assert again.status_code == 201, again.data
    assert count(db, Submission, Submission.form_id == form.id) == 1

    rows = db.scalars(select(SubmissionRow).where(SubmissionRow.form_id == form.id)
                      .order_by(SubmissionRow.id)).all()
    root = [r for r in rows if r.table_path == ROOT_TABLE]
    assert len(root) == 1 and root[0].row_key == filled.instance_id
    leaves = {f.path for f in schema.fields_in(None) if not is_container(f)}
    assert set(root[0].data) == leaves
    assert {p: v for p, v in root[0].data.items() if v is not None} == filled.values
    assert not root[0].extra
    repeats = schema.repeats()
    assert [r.path for r in repeats] == list(filled.repeat_values)
    for repeat in repeats:
        table = [r for r in rows if r.table_path == repeat.path]
        assert len(table) == REPEAT_ROWS
        leaves = {f.path for f in schema.fields_in(repeat.path) if not is_container(f)}
        for row, sent in zip(table, filled.repeat_values[repeat.path], strict=True):
            assert set(row.data) == leaves
            assert {p: v for p, v in row.data.items() if v is not None} == sent
            assert row.parent_key == filled.instance_id and not row.extra

    export = client.get(f"/v1/projects/{project.id}/forms/{form_id}/submissions.csv.zip",
                        headers=admin_headers)
    assert export.status_code == 200, export.data[:300]
    tables = csv_zip_tables(export.data)
    assert set(tables) == {f"{form_id}.csv"} | {
        f"{form_id}-{r.name}.csv" for r in repeats}
    header, *data = tables[f"{form_id}.csv"]
    assert header[0] == "SubmissionDate" and header[-len(ROOT_TAIL):] == ROOT_TAIL
    assert len(data) == 1
    exported = dict(zip(header, data[0], strict=True))
    assert exported["KEY"] == filled.instance_id
    _assert_columns(header, exported, filled.values, "")
    for repeat in repeats:
        header, *data = tables[f"{form_id}-{repeat.name}.csv"]
        assert header[-2:] == ["PARENT_KEY", "KEY"]
        assert len(data) == REPEAT_ROWS
        for line, sent in zip(data, filled.repeat_values[repeat.path], strict=True):
            exported = dict(zip(header, line, strict=True))
            assert exported["PARENT_KEY"] == filled.instance_id
            _assert_columns(header, exported, sent, repeat.path)


def _assert_columns(header: list[str], exported: dict[str, str], sent: dict[str, str],
                    table: str) -> None:
    """Every value sent has its column (``group-field`` below the table), in form order,
    holding the value (a text that a spreadsheet would take for a formula gets a quote)."""
    columns = [path[len(table):].strip("/").replace("/", "-") for path in sent]
    assert [c for c in header if c in set(columns)] == columns
    for column, value in zip(columns, sent.values(), strict=True):
        cell = exported[column]
        if value.startswith(FORMULA_START) and cell != value:
            cell = cell.removeprefix("'")
        assert cell == value, column
