"""The form corpus through the API: every real-world-shaped form in tests/data/forms uploads as
a real .xlsx and publishes with the fields its spreadsheet describes; every broken form is
refused with the issue a designer needs, at the sheet and row where it is."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask

from forms.validate import java_available
from server.app import create_app
from server.storage import LocalBlobStore
from tests.forms_corpus import FORMS_DIR, MD_FORMS
from tests.support.xlsx import XLSX, md_to_sheets, md_to_xlsx

BROKEN_DIR = FORMS_DIR / "broken"
BROKEN_FORMS = sorted(p.stem for p in BROKEN_DIR.glob("*.md"))
PUBLISH = "?publish=true&ignoreWarnings=true"
META_PATHS = {"/meta", "/meta/instanceID"}


@dataclass(frozen=True)
class Expected:
    """What a corpus form should look like once published, read off its spreadsheet."""

    form_id: str
    version: str
    fields: dict[str, tuple[str, str | None]]  # spot checks: path -> (type, nearest repeat)
    binary: set[str]
    attachments: list[tuple[str, str]] = field(default_factory=list)  # (name, type)
    encrypted: bool = False
    entity_related: bool = False
    extra_meta: set[str] = field(default_factory=set)


CORPUS = {
    "agency_fees": Expected(
        "agency_fees", "3",
        {"/county": ("select1", None), "/agency": ("select1", None),
         "/licence": ("string", None), "/fee_paid": ("decimal", None)},
        binary=set(), attachments=[("agencies.csv", "file"), ("fees.csv", "file")]),
    "border_monitoring": Expected(
        "border_monitoring", "",
        {"/crossing_point": ("geopoint", None), "/route": ("geotrace", None),
         "/camp_area": ("geoshape", None), "/crossing_date": ("date", None),
         "/crossing_time": ("time", None), "/interview_started": ("dateTime", None),
         "/passport_scan": ("barcode", None), "/signature": ("binary", None)},
        binary={"/id_photo", "/testimony", "/crossing_video", "/travel_permit", "/signature"}),
    "exit_interview_encrypted": Expected(
        "exit_interview", "2",
        {"/employer": ("string", None), "/passport_held": ("select1", None),
         "/unpaid_months": ("int", None)},
        binary=set(), encrypted=True),
    "household_migration": Expected(
        "household_migration", "2024061201",
        {"/start": ("dateTime", None),
         "/roster": ("repeat", None),
         "/roster/member_age": ("int", "/roster"),
         "/roster/livelihood": ("structure", "/roster"),
         "/roster/livelihood/income_sources": ("select", "/roster"),
         "/roster/stays_abroad": ("repeat", "/roster"),
         "/roster/stays_abroad/reasons_ranked": ("rank", "/roster/stays_abroad"),
         "/roster/stays_abroad/job/wage_usd": ("decimal", "/roster/stays_abroad"),
         "/roster/stays_abroad/transfers": ("repeat", "/roster/stays_abroad"),
         "/roster/stays_abroad/transfers/amount_kes":
             ("decimal", "/roster/stays_abroad/transfers"),
         "/roster/stays_abroad/transfers/transfer_channel":
             ("select1", "/roster/stays_abroad/transfers"),
         "/household_size": ("string", None),
         "/meta/audit": ("binary", None)},
        binary={"/dwelling_photo", "/meta/audit"},
        attachments=[("coast.png", "image"), ("consent_sw.mp3", "audio"),
                     ("regions_map.png", "image"), ("western.png", "image")],
        extra_meta={"/meta/audit"}),
    "worker_followup": Expected(
        "worker_followup", "1",
        {"/worker": ("select1", None), "/new_phone": ("string", None)},
        binary=set(), attachments=[("migrant_workers.csv", "file")], entity_related=True,
        extra_meta={"/meta/entity"}),
    "worker_registry": Expected(
        "worker_registry", "1",
        {"/full_name": ("string", None), "/age": ("int", None),
         "/last_country": ("select1", None)},
        binary=set(), entity_related=True, extra_meta={"/meta/entity", "/meta/entity/label"}),
}

# The data type each XLSForm type is stored as (Central's /fields vocabulary).
XLSFORM_TYPES = {
    "text": "string", "integer": "int", "decimal": "decimal", "date": "date", "time": "time",
    "dateTime": "dateTime", "geopoint": "geopoint", "geotrace": "geotrace",
    "geoshape": "geoshape", "barcode": "barcode", "image": "binary", "audio": "binary",
    "video": "binary", "file": "binary", "calculate": "string", "note": "string",
    "acknowledge": "string", "start": "dateTime", "end": "dateTime", "deviceid": "string",
    "select_one": "select1", "select_one_from_file": "select1", "select_multiple": "select",
    "rank": "rank", "begin_group": "structure", "begin_repeat": "repeat",
}
META_TYPES = {"audit"}  # compiled under /meta, not where the row is


def survey_fields(md: str) -> list[tuple[str, str, str | None]]:
    """(path, type, nearest repeat) for every survey row, walking the begin/end rows: the
    expectation for /fields, derived from the spreadsheet rather than from the compiler."""
    header, *rows = md_to_sheets(md)["survey"]
    type_col, name_col = header.index("type"), header.index("name")
    groups: list[tuple[str, bool]] = []  # (name, is a repeat)
    found = []
    for row in rows:
        xls_type, name = row[type_col].split(" ")[0], row[name_col]
        if xls_type.startswith("end_"):
            groups.pop()
            continue
        if xls_type in META_TYPES:
            continue
        path = "/" + "/".join([g for g, _ in groups] + [name])
        repeats = ["/" + "/".join(g for g, _ in groups[:i + 1])
                   for i, (_, is_repeat) in enumerate(groups) if is_repeat]
        found.append((path, XLSFORM_TYPES[xls_type], repeats[-1] if repeats else None))
        if xls_type.startswith("begin_"):
            groups.append((name, xls_type == "begin_repeat"))
    return found


@pytest.fixture
def project(make):
    return make.project("Labour Migration 2026")


@pytest.fixture
def designer(make, project):
    return make.auth(make.member(project, "designer"))


def form_url(project, form_id: str = "") -> str:
    return f"/v1/projects/{project.id}/forms" + (f"/{form_id}" if form_id else "")


def upload_md(client, project, headers, path: Path, query: str = PUBLISH):
    return client.post(f"{form_url(project)}{query}",
                       data=md_to_xlsx(path.read_text(encoding="utf-8")),
                       content_type=XLSX, headers=headers)


def issues(response) -> set[tuple[str, str | None, int | None]]:
    return {(e["code"], e.get("sheet"), e.get("row"))
            for e in response.get_json()["details"]["errors"]}


# -- the valid corpus ---------------------------------------------------------------------

def test_corpus__every_form_has_an_expectation():
    assert sorted(CORPUS) == MD_FORMS


@pytest.mark.parametrize("name", MD_FORMS)
def test_corpus__publishes_with_the_fields_of_its_spreadsheet(client, project, designer, name):
    expected = CORPUS[name]
    md_path = FORMS_DIR / f"{name}.md"
    r = upload_md(client, project, designer, md_path)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["xmlFormId"], body["version"]) == (expected.form_id, expected.version)
    assert body["publishedAt"] is not None
    assert body["encrypted"] is expected.encrypted
    assert body["entityRelated"] is expected.entity_related
    url = form_url(project, expected.form_id)

    fields = client.get(f"{url}/fields", headers=designer).get_json()
    by_path = {f["path"]: f for f in fields}
    assert len(by_path) == len(fields), "a path is listed twice"
    assert [(f["path"], f["type"], f["repeat"]) for f in fields
            if not f["path"].startswith("/meta")] == survey_fields(md_path.read_text())
    assert {p for p in by_path if p.startswith("/meta")} == META_PATHS | expected.extra_meta
    for path, (type_, repeat) in expected.fields.items():
        assert (by_path[path]["type"], by_path[path]["repeat"]) == (type_, repeat), path
    assert {p for p, f in by_path.items() if f["binary"]} == expected.binary
    assert all(f["selectMultiple"] == (f["type"] == "select") for f in fields)

    assert client.get(f"{url}/draft", headers=designer).status_code == 404
    xml = client.get(f"{url}.xml", headers=designer)
    assert xml.status_code == 200
    assert hashlib.md5(xml.data).hexdigest() == body["hash"]
    assert hashlib.sha256(xml.data).hexdigest() == body["sha256"]
    assert f'id="{expected.form_id}"'.encode() in xml.data

    attachments = client.get(f"{url}/attachments", headers=designer).get_json()
    assert [(a["name"], a["type"]) for a in attachments] == expected.attachments
    assert all(a["exists"] is False and a["hash"] is None for a in attachments)


def test_corpus__csv_media_are_missing_until_uploaded_then_published(client, project,
                                                                     designer):
    r = upload_md(client, project, designer, FORMS_DIR / "agency_fees.md")
    assert r.status_code == 200, r.get_json()
    url = form_url(project, "agency_fees")
    assert [(a["name"], a["exists"]) for a in client.get(
        f"{url}/attachments", headers=designer).get_json()] == [
        ("agencies.csv", False), ("fees.csv", False)]
    assert client.get(f"{url}/attachments/agencies.csv", headers=designer).status_code == 404

    assert client.post(f"{url}/draft", headers=designer).status_code == 200
    csvs = {name: (FORMS_DIR / name).read_bytes() for name in ("agencies.csv", "fees.csv")}
    for name, data in csvs.items():
        up = client.post(f"{url}/draft/attachments/{name}", data=data, content_type="text/csv",
                         headers=designer)
        assert up.status_code == 200, up.get_json()
    draft = client.get(f"{url}/draft/attachments", headers=designer).get_json()
    assert [(a["name"], a["exists"], a["hash"], a["size"]) for a in draft] == [
        (name, True, hashlib.md5(data).hexdigest(), len(data)) for name, data in csvs.items()]

    published = client.post(f"{url}/draft/publish?version=4", headers=designer)
    assert published.status_code == 200, published.get_json()
    listed = client.get(f"{url}/attachments", headers=designer).get_json()
    assert [(a["name"], a["exists"], a["hash"]) for a in listed] == [
        (name, True, hashlib.md5(data).hexdigest()) for name, data in csvs.items()]
    for name, data in csvs.items():
        assert client.get(f"{url}/attachments/{name}", headers=designer).data == data
    old = client.get(f"{url}/versions/3/attachments", headers=designer).get_json()
    assert [a["exists"] for a in old] == [False, False]


def test_corpus__handwritten_xform_uploads_as_application_xml(client, project, designer):
    original = (FORMS_DIR / "handwritten.xml").read_bytes()
    r = client.post(f"{form_url(project)}?publish=true", data=original,
                    content_type="application/xml", headers=designer)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["xmlFormId"], body["version"], body["name"]) == (
        "returnee_health", "7", "Returnee Health Screening")
    url = form_url(project, "returnee_health")
    fields = client.get(f"{url}/fields", headers=designer).get_json()
    assert [(f["path"], f["type"], f["repeat"]) for f in fields] == [
        ("/visit", "structure", None),
        ("/visit/visit_date", "date", None),
        ("/visit/clinic", "select1", None),
        ("/symptoms", "select", None),
        ("/contacts", "repeat", None),
        ("/contacts/contact_name", "string", "/contacts"),
        ("/contacts/days_since_contact", "int", "/contacts"),
        ("/meta", "structure", None),
        ("/meta/instanceID", "string", None),
    ]
    xml = client.get(f"{url}.xml", headers=designer)
    assert xml.data == original
    assert hashlib.md5(xml.data).hexdigest() == body["hash"]
    assert client.get(f"{url}.xlsx", headers=designer).status_code == 404
    assert client.get(f"{url}/draft", headers=designer).status_code == 404


# -- the broken corpus --------------------------------------------------------------------

ODK_VALIDATE_ONLY = {"constraint_syntax", "unknown_function"}
BROKEN = {  # file -> every error it must report: (code, sheet, row); rows as in the workbook
    "bad_references": {("xlsform.unknown_reference", "survey", 3),
                       ("xlsform.unknown_reference", "survey", 4)},
    "duplicate_choices": {("xlsform.duplicate_choice", "choices", 4)},
    "duplicate_names": {("xlsform.duplicate_name", "survey", 4),
                        ("xlsform.duplicate_name", "survey", 6)},
    "end_without_begin": {("xlsform.unmatched_end", "survey", 4)},
    "everything_wrong": {("xlsform.duplicate_name", "survey", 3),
                         ("xlsform.unknown_type", "survey", 4),
                         ("xlsform.unknown_reference", "survey", 5),
                         ("xlsform.missing_choice_list", "survey", 6),
                         ("xlsform.unclosed_group", "survey", 7),
                         ("xlsform.duplicate_choice", "choices", 3)},
    "missing_choice_list": {("xlsform.missing_choice_list", "survey", 3)},
    "missing_label": {("xlsform.missing_label", "survey", 3)},
    "no_questions": {("form.no_questions", "survey", None)},
    "unclosed_group": {("xlsform.unclosed_group", "survey", 3)},
    "unknown_types": {("xlsform.unknown_type", "survey", 3),
                      ("xlsform.unknown_type", "survey", 5)},
}


def test_broken__every_form_has_an_expectation():
    assert sorted(set(BROKEN) | ODK_VALIDATE_ONLY) == BROKEN_FORMS


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken__refused_with_each_issue_located(client, project, designer, name):
    r = upload_md(client, project, designer, BROKEN_DIR / f"{name}.md")
    assert r.status_code == 400, r.get_json()
    body = r.get_json()
    assert body["code"] == 400.15
    assert issues(r) == BROKEN[name]
    assert all(e["level"] == "error" and e["message"] for e in body["details"]["errors"])
    assert client.get(form_url(project), headers=designer).get_json() == []


def test_broken__everything_wrong_reports_all_mistakes_in_one_upload(client, project,
                                                                     designer):
    r = upload_md(client, project, designer, BROKEN_DIR / "everything_wrong.md")
    assert r.status_code == 400
    assert len({code for code, _, _ in issues(r)}) >= 3


@pytest.fixture(scope="session")
def validating_base_app(settings, engine, session_tmp) -> Flask:
    """An app that runs ODK Validate on every upload. Session-scoped so that it is built
    before any test's transaction holds SQLite's write lock (create_app checks the database)."""
    app = create_app(settings.replace(odk_validate="on"), engine=engine,
                     blob_store=LocalBlobStore(session_tmp / "validating-app-blobs"))
    app.config["TESTING"] = True
    return app


@pytest.fixture
def validating_app(validating_base_app, settings, db) -> Iterator[Flask]:
    """``validating_base_app`` inside the test's transaction, as conftest's ``app`` does."""
    if not java_available(settings.java_path):
        pytest.skip("ODK Validate needs Java")
    services = validating_base_app.extensions["dodoso"]
    original = services.sessions
    services.sessions = lambda: db
    yield validating_base_app
    services.sessions = original


@pytest.mark.parametrize("name", sorted(ODK_VALIDATE_ONLY))
def test_broken__odk_validate_catches_what_pyxform_accepts(client, validating_app, project,
                                                           designer, name):
    path = BROKEN_DIR / f"{name}.md"
    r = upload_md(validating_app.test_client(), project, designer, path,
                  query="?ignoreWarnings=true")
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["code"] == 400.15
    assert [e["code"] for e in r.get_json()["details"]["errors"]] == ["odk_validate.error"]
    unvalidated = upload_md(client, project, designer, path, query="")
    assert unvalidated.status_code == 200, unvalidated.get_json()


# -- form IDs (hostile inputs #48) --------------------------------------------------------

ONE_QUESTION = """
| survey   |         |          |                |
|          | type    | name     | label          |
|          | text    | village  | Village        |
| settings |         |          |                |
|          | form_id | version  |                |
|          | {form_id} | 1      |                |
"""


@pytest.mark.parametrize("form_id", [
    "survey.xml", "survey.xlsx", "survey.XLSX", "survey.xls", "s" * 256])
def test_form_id__file_extensions_and_overlong_ids_are_refused(client, project, designer,
                                                               form_id):
    r = client.post(form_url(project), data=md_to_xlsx(ONE_QUESTION.format(form_id=form_id)),
                    content_type=XLSX, headers=designer)
    assert r.status_code == 400, r.get_json()
    body = r.get_json()
    assert body["code"] == 400.15
    assert [(e["code"], e.get("sheet"), e.get("column")) for e in body["details"]["errors"]] == [
        ("form.bad_id", "settings", "form_id")]
    assert client.get(form_url(project), headers=designer).get_json() == []


def test_form_id__the_longest_allowed_id_is_accepted(client, project, designer):
    form_id = "s" * 255
    r = client.post(form_url(project), data=md_to_xlsx(ONE_QUESTION.format(form_id=form_id)),
                    content_type=XLSX, headers=designer)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["xmlFormId"] == form_id


def test_form_id__an_xform_id_ending_in_xml_is_refused(client, project, designer):
    xml = (FORMS_DIR / "handwritten.xml").read_bytes().replace(
        b'id="returnee_health"', b'id="returnee_health.xml"')
    r = client.post(form_url(project), data=xml, content_type="application/xml",
                    headers=designer)
    assert r.status_code == 400, r.get_json()
    assert [e["code"] for e in r.get_json()["details"]["errors"]] == ["form.bad_id"]
    [issue] = r.get_json()["details"]["errors"]
    assert "sheet" not in issue and "settings sheet" not in issue["message"]
