"""Exports read back: every format parsed again (csv, zipfile, openpyxl, json) and checked
against what was submitted, for a form with groups, nested repeats, a select_multiple, geo
fields, a photo, two languages and two versions (v2 adds ``phone`` and ``route`` and drops
``nickname``). Submissions arrive the way Collect sends them (multipart OpenRosa POSTs).

Other ``test_exports_*`` modules import the form and fixtures from here.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from server.models import AuditEvent
from tests.support.api import create_draft, openrosa_submit, publish_version, upload_form
from tests.support.forms import assigned_app_user

FORM_ID = "migrants"
CHOICES = """
| choices |          |      |                     |                       |
|         | list_name | name | label::English (en) | label::Kiswahili (sw) |
|         | langs    | en   | English             | Kiingereza            |
|         | langs    | sw   | Swahili             | Kiswahili             |
|         | langs    | fr   | French              | Kifaransa             |
"""
V1 = """
| survey   |                        |          |                     |                       |
|          | type                   | name     | label::English (en) | label::Kiswahili (sw) |
|          | text                   | name     | Name                | Jina                  |
|          | integer                | age      | Age                 | Umri                  |
|          | text                   | nickname | Nickname            | Jina la utani         |
|          | select_multiple langs  | langs    | Languages           | Lugha                 |
|          | geopoint               | home     | Home                | Nyumbani              |
|          | image                  | photo    | Photo               | Picha                 |
|          | begin group            | work     | Work                | Kazi                  |
|          | decimal                | wage     | Wage                | Mshahara              |
|          | end group              |          |                     |                       |
|          | begin repeat           | roster   | Household           | Kaya                  |
|          | text                   | m_name   | Member              | Mwanakaya             |
|          | begin repeat           | stays    | Stays abroad        | Safari                |
|          | text                   | country  | Country             | Nchi                  |
|          | end repeat             |          |                     |                       |
|          | end repeat             |          |                     |                       |
""" + CHOICES + """
| settings |            |          |         |
|          | form_title | form_id  | version |
|          | Migrants   | migrants | 1       |
"""
V2 = """
| survey   |                        |          |                     |                       |
|          | type                   | name     | label::English (en) | label::Kiswahili (sw) |
|          | text                   | name     | Name                | Jina                  |
|          | integer                | age      | Age                 | Umri                  |
|          | text                   | phone    | Phone               | Simu                  |
|          | select_multiple langs  | langs    | Languages           | Lugha                 |
|          | geopoint               | home     | Home                | Nyumbani              |
|          | geotrace               | route    | Route               | Njia                  |
|          | image                  | photo    | Photo               | Picha                 |
|          | begin group            | work     | Work                | Kazi                  |
|          | decimal                | wage     | Wage                | Mshahara              |
|          | end group              |          |                     |                       |
|          | begin repeat           | roster   | Household           | Kaya                  |
|          | text                   | m_name   | Member              | Mwanakaya             |
|          | begin repeat           | stays    | Stays abroad        | Safari                |
|          | text                   | country  | Country             | Nchi                  |
|          | end repeat             |          |                     |                       |
|          | end repeat             |          |                     |                       |
""" + CHOICES + """
| settings |            |          |         |
|          | form_title | form_id  | version |
|          | Migrants   | migrants | 2       |
"""

ROOT_V2 = ["SubmissionDate", "name", "age", "phone", "langs", "home-Latitude",
           "home-Longitude", "home-Altitude", "home-Accuracy", "route", "photo", "work-wage",
           "meta-instanceID", "KEY", "SubmitterID", "SubmitterName", "AttachmentsPresent",
           "AttachmentsExpected", "Status", "ReviewState", "DeviceID", "Edits", "FormVersion"]
PHOTO = b"\xff\xd8\xff\xe0 Amina's ID card"


def xml_v1(instance_id: str, *, name: str = "Amina", age: str = "34",
           nickname: str = "Ami", langs: str = "en sw", home: str = "-1.2921 36.8219 1650.5 4.0",
           photo: str | None = "id.jpg", wage: str = "-12.5", deprecated: str | None = None,
           roster: bool = True) -> bytes:
    rows = ("<roster><m_name>Juma</m_name><stays><country>Qatar</country></stays>"
            "<stays><country>Oman</country></stays></roster>"
            "<roster><m_name>Neema</m_name></roster>") if roster else ""
    return (f'<?xml version="1.0"?><data id="{FORM_ID}" version="1">'
            f"<name>{name}</name><age>{age}</age><nickname>{nickname}</nickname>"
            f"<langs>{langs}</langs><home>{home}</home><photo>{photo or ''}</photo>"
            f"<work><wage>{wage}</wage></work>{rows}"
            f"<meta><instanceID>{instance_id}</instanceID>"
            f"{f'<deprecatedID>{deprecated}</deprecatedID>' if deprecated else ''}"
            "</meta></data>").encode()


def xml_v2(instance_id: str, *, name: str = "Baraka", age: str = "41",
           phone: str = "+255 700 000", langs: str = "fr",
           home: str = "-6.8 39.28 10 5", route: str = "-6.8 39.28 0 0;-6.9 39.3 0 0",
           photo: str | None = None, wage: str = "1.5e3", roster: str = "",
           deprecated: str | None = None) -> bytes:
    return (f'<?xml version="1.0"?><data id="{FORM_ID}" version="2">'
            f"<name>{name}</name><age>{age}</age><phone>{phone}</phone>"
            f"<langs>{langs}</langs><home>{home}</home><route>{route}</route>"
            f"<photo>{photo or ''}</photo><work><wage>{wage}</wage></work>{roster}"
            f"<meta><instanceID>{instance_id}</instanceID>"
            f"{f'<deprecatedID>{deprecated}</deprecatedID>' if deprecated else ''}"
            "</meta></data>").encode()


# -- fixtures ---------------------------------------------------------------------------------

class Collect:
    """An app user's tablet: multipart OpenRosa POSTs to the project."""

    def __init__(self, client, project, token: str, app_user) -> None:
        self.client, self.app_user = client, app_user
        self.url = f"/v1/key/{token}/projects/{project.id}/submission"

    def send(self, xml: bytes, files: dict[str, bytes] | None = None,
             device: str = "collect:tablet-1"):
        return openrosa_submit(self.client, f"{self.url}?deviceID={device}", xml, files)


@pytest.fixture
def v1(client, project, auth):
    upload_form(client, project, auth, V1)


@pytest.fixture
def collect(client, make, project, v1, db):
    app_user, token = assigned_app_user(make, db, project, FORM_ID, "Tablet Kigoma")
    return Collect(client, project, token, app_user)


@pytest.fixture
def submitted(client, project, auth, collect):
    """uuid:a (v1, photo, two members, two stays), then v2 published, uuid:b (v2)."""
    collect.send(xml_v1("uuid:a"), {"id.jpg": PHOTO})
    publish_version(client, project, auth, FORM_ID, V2)
    collect.send(xml_v2("uuid:b"))
    return collect


def url(project, tail: str) -> str:
    return f"/v1/projects/{project.id}/forms/{FORM_ID}/{tail}"


def get(client, project, auth, tail: str, status: int = 200):
    r = client.get(url(project, tail), headers=auth)
    assert r.status_code == status, r.get_data(as_text=True)[:500]
    return r


def read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def read_zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def by_key(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {r["KEY"]: r for r in rows}


# -- CSV zip ------------------------------------------------------------------------------------

def test_csv_zip__tables_and_values_match_what_was_submitted(client, project, auth, manager,
                                                              submitted):
    r = get(client, project, auth, "submissions.csv.zip")
    assert r.mimetype == "application/zip"
    assert 'filename="migrants.zip"' in r.headers["Content-Disposition"]
    files = read_zip(r.data)
    assert set(files) == {"migrants.csv", "migrants-roster.csv", "migrants-stays.csv",
                          "media/id.jpg"}
    assert files["media/id.jpg"] == PHOTO

    reader = csv.reader(io.StringIO(files["migrants.csv"].decode(), newline=""))
    assert next(reader) == ROOT_V2
    root = read_csv(files["migrants.csv"])
    assert [row["KEY"] for row in root] == ["uuid:b", "uuid:a"]  # newest first, as Central
    a, b = by_key(root)["uuid:a"], by_key(root)["uuid:b"]
    assert (a["name"], a["age"], a["langs"], a["photo"], a["work-wage"]) == (
        "Amina", "34", "en sw", "id.jpg", "-12.5")
    assert (a["home-Latitude"], a["home-Longitude"], a["home-Altitude"],
            a["home-Accuracy"]) == ("-1.2921", "36.8219", "1650.5", "4.0")
    assert a["phone"] == "" and a["route"] == ""
    assert a["meta-instanceID"] == "uuid:a"
    assert (a["AttachmentsPresent"], a["AttachmentsExpected"]) == ("1", "1")
    assert (a["FormVersion"], b["FormVersion"]) == ("1", "2")
    assert a["SubmitterID"] == str(submitted.app_user.id)
    assert a["SubmitterName"] == "Tablet Kigoma"
    assert a["DeviceID"] == "collect:tablet-1"
    assert (a["Status"], a["ReviewState"], a["Edits"]) == ("", "", "0")
    assert a["SubmissionDate"].endswith("Z") and len(a["SubmissionDate"]) == 24
    # a text answer starting with "+" could be a formula: it gets a quote (numbers do not)
    assert (b["phone"], b["langs"], b["work-wage"]) == ("'+255 700 000", "fr", "1.5e3")
    assert b["route"] == "-6.8 39.28 0 0;-6.9 39.3 0 0"
    assert (b["AttachmentsPresent"], b["AttachmentsExpected"]) == ("0", "0")

    roster = read_csv(files["migrants-roster.csv"])
    assert list(roster[0]) == ["m_name", "PARENT_KEY", "KEY"]
    assert [(m["m_name"], m["PARENT_KEY"], m["KEY"]) for m in roster] == [
        ("Juma", "uuid:a", "uuid:a/roster[1]"), ("Neema", "uuid:a", "uuid:a/roster[2]")]
    stays = read_csv(files["migrants-stays.csv"])
    assert list(stays[0]) == ["country", "PARENT_KEY", "KEY"]
    assert [(s["country"], s["PARENT_KEY"], s["KEY"]) for s in stays] == [
        ("Qatar", "uuid:a/roster[1]", "uuid:a/roster[1]/stays[1]"),
        ("Oman", "uuid:a/roster[1]", "uuid:a/roster[1]/stays[2]")]


def test_csv_zip__attachments_false_has_no_media_and_central_name(client, project, auth,
                                                                 submitted):
    r = get(client, project, auth, "submissions.csv.zip?attachments=false")
    assert 'filename="migrants.csv.zip"' in r.headers["Content-Disposition"]
    assert set(read_zip(r.data)) == {"migrants.csv", "migrants-roster.csv",
                                     "migrants-stays.csv"}


def test_csv_zip__export_is_audited(client, project, auth, manager, submitted, db):
    get(client, project, auth, "submissions.csv.zip?splitSelectMultiples=true")
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "form.submission.export"))
    assert event is not None and event.actor_user_id == manager.id
    assert event.details["format"] == "csv.zip"
    assert event.details["splitSelectMultiples"] is True


def test_csv__root_table_only(client, project, auth, submitted):
    r = get(client, project, auth, "submissions.csv")
    assert r.mimetype == "text/csv"
    assert 'filename="migrants.csv"' in r.headers["Content-Disposition"]
    rows = read_csv(r.data)
    assert list(rows[0]) == ROOT_V2
    assert [row["name"] for row in rows] == ["Baraka", "Amina"]


def test_post__takes_the_same_options_in_a_form_body(client, project, auth, submitted):
    r = client.post(url(project, "submissions.csv"), data={"groupPaths": "false", "1": "pass"},
                    headers=auth)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert "wage" in read_csv(r.data)[0]
    r = client.post(url(project, "submissions.csv.zip?attachments=false"), headers=auth)
    assert r.status_code == 200
    assert "media/id.jpg" not in read_zip(r.data)


# -- options -----------------------------------------------------------------------------------

def test_options__without_group_paths_headers_are_bare_names(client, project, auth, submitted):
    rows = read_csv(get(client, project, auth, "submissions.csv?groupPaths=false").data)
    assert "wage" in rows[0] and "instanceID" in rows[0] and "work-wage" not in rows[0]


def test_options__deleted_fields_come_back_after_their_old_sibling(client, project, auth,
                                                                   submitted):
    default = read_csv(get(client, project, auth, "submissions.csv").data)
    assert "nickname" not in default[0]
    rows = read_csv(get(client, project, auth, "submissions.csv?deletedFields=true").data)
    headers = list(rows[0])
    assert headers[:5] == ["SubmissionDate", "name", "age", "nickname", "phone"]
    assert by_key(rows)["uuid:a"]["nickname"] == "Ami"
    assert by_key(rows)["uuid:b"]["nickname"] == ""


def test_options__split_select_multiples_adds_a_0_1_column_per_choice(client, project, auth,
                                                                      submitted):
    rows = read_csv(get(client, project, auth,
                        "submissions.csv?splitSelectMultiples=true").data)
    headers = list(rows[0])
    at = headers.index("langs")
    assert headers[at:at + 4] == ["langs", "langs/en", "langs/sw", "langs/fr"]
    a, b = by_key(rows)["uuid:a"], by_key(rows)["uuid:b"]
    assert [a["langs/en"], a["langs/sw"], a["langs/fr"]] == ["1", "1", "0"]
    assert [b["langs/en"], b["langs/sw"], b["langs/fr"]] == ["0", "0", "1"]


def test_options__a_value_outside_the_choices_gets_its_own_column(client, project, auth,
                                                                  submitted):
    submitted.send(xml_v2("uuid:c", langs="sw other_lang"))
    rows = read_csv(get(client, project, auth,
                        "submissions.csv?splitSelectMultiples=true").data)
    assert "langs/other_lang" in rows[0]
    assert by_key(rows)["uuid:c"]["langs/other_lang"] == "1"
    assert by_key(rows)["uuid:a"]["langs/other_lang"] == "0"


def test_options__labels_in_a_language_for_headers_and_choices(client, project, auth,
                                                               submitted):
    rows = read_csv(get(client, project, auth,
                        "submissions.csv?labels=true&language=sw").data)
    headers = list(rows[0])
    assert headers[:5] == ["SubmissionDate", "Jina", "Umri", "Simu", "Lugha"]
    assert "Nyumbani-Latitude" in headers and "KEY" in headers
    assert by_key(rows)["uuid:a"]["Lugha"] == "Kiingereza; Kiswahili"
    english = read_csv(get(client, project, auth,
                           "submissions.csv?labels=true&language=English%20(en)"
                           "&splitSelectMultiples=true").data)
    assert "Languages/French" in english[0]
    assert by_key(english)["uuid:b"]["Languages"] == "French"


def test_options__labels_default_to_the_forms_default_language(client, project, auth,
                                                               submitted):
    rows = read_csv(get(client, project, auth, "submissions.csv?labels=true").data)
    assert list(rows[0])[1] in ("Name", "Jina")


# -- edits and history -----------------------------------------------------------------------

def test_history__current_rows_keep_the_first_instance_id_as_key(client, project, auth,
                                                                 submitted):
    submitted.send(xml_v1("uuid:a2", name="Amina J.", deprecated="uuid:a"))
    files = read_zip(get(client, project, auth, "submissions.csv.zip").data)
    a = by_key(read_csv(files["migrants.csv"]))["uuid:a"]
    assert (a["name"], a["meta-instanceID"], a["Edits"], a["ReviewState"]) == (
        "Amina J.", "uuid:a2", "1", "edited")
    roster = read_csv(files["migrants-roster.csv"])
    assert {m["KEY"] for m in roster} == {"uuid:a/roster[1]", "uuid:a/roster[2]"}
    stays = read_csv(files["migrants-stays.csv"])
    assert {s["PARENT_KEY"] for s in stays} == {"uuid:a/roster[1]"}
    assert read_zip(get(client, project, auth, "attachments.zip").data)["uuid%3Aa/id.jpg"] == \
        PHOTO


def test_history__every_version_with_its_own_instance_id(client, project, auth, submitted):
    submitted.send(xml_v1("uuid:a2", name="Amina J.", deprecated="uuid:a"))
    files = read_zip(get(client, project, auth,
                         "submissions.csv.zip?includeHistory=true&attachments=false").data)
    root = read_csv(files["migrants.csv"])
    assert [(r["KEY"], r["name"], r["meta-instanceID"]) for r in root] == [
        ("uuid:b", "Baraka", "uuid:b"), ("uuid:a2", "Amina J.", "uuid:a2"),
        ("uuid:a", "Amina", "uuid:a")]
    roster = read_csv(files["migrants-roster.csv"])
    assert [m["KEY"] for m in roster] == ["uuid:a2/roster[1]", "uuid:a2/roster[2]",
                                          "uuid:a/roster[1]", "uuid:a/roster[2]"]


# -- XLSX ---------------------------------------------------------------------------------------

def test_xlsx__one_sheet_per_table_with_typed_cells(client, project, auth, submitted):
    r = get(client, project, auth, "submissions.xlsx")
    assert r.mimetype.endswith("spreadsheetml.sheet")
    assert 'filename="migrants.xlsx"' in r.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(r.data), read_only=True)
    assert book.sheetnames == ["migrants", "roster", "stays"]
    rows = list(book["migrants"].iter_rows(values_only=True))
    assert list(rows[0]) == ROOT_V2
    a = dict(zip(ROOT_V2, rows[2], strict=True))
    assert a["KEY"] == "uuid:a"
    assert a["age"] == 34 and isinstance(a["age"], int)
    assert a["work-wage"] == -12.5
    assert a["home-Latitude"] == -1.2921 and a["home-Accuracy"] == 4.0
    assert a["AttachmentsPresent"] == 1 and a["Edits"] == 0
    assert a["name"] == "Amina" and a["phone"] is None
    b = dict(zip(ROOT_V2, rows[1], strict=True))
    assert b["work-wage"] == 1500.0 and b["phone"] == "'+255 700 000"
    stays = list(book["stays"].iter_rows(values_only=True))
    assert stays[1] == ("Qatar", "uuid:a/roster[1]", "uuid:a/roster[1]/stays[1]")


# -- GeoJSON ----------------------------------------------------------------------------------

def test_geojson__first_geo_field_by_default(client, project, auth, submitted):
    r = get(client, project, auth, "submissions.geojson")
    assert r.mimetype == "application/geo+json"
    collection = json.loads(r.data)
    assert collection["type"] == "FeatureCollection"
    features = {f["id"]: f for f in collection["features"]}
    assert features["uuid:a"]["geometry"] == {"type": "Point",
                                              "coordinates": [36.8219, -1.2921, 1650.5]}
    props = features["uuid:a"]["properties"]
    assert props["name"] == "Amina" and props["age"] == 34 and props["work-wage"] == -12.5
    assert "home-Latitude" not in props and props["KEY"] == "uuid:a"


def test_geojson__a_geotrace_becomes_a_linestring(client, project, auth, submitted):
    collection = json.loads(get(client, project, auth,
                                "submissions.geojson?geoField=/route").data)
    assert [f["id"] for f in collection["features"]] == ["uuid:b"]  # uuid:a has no route
    assert collection["features"][0]["geometry"] == {
        "type": "LineString", "coordinates": [[39.28, -6.8, 0.0], [39.3, -6.9, 0.0]]}
    by_name = json.loads(get(client, project, auth, "submissions.geojson?geoField=route").data)
    assert by_name == collection


# -- attachments zip -------------------------------------------------------------------------

def test_attachments_zip__a_folder_per_submission(client, project, auth, submitted):
    submitted.send(xml_v2("uuid:c", photo="id.jpg"), {"id.jpg": b"another photo"})
    r = get(client, project, auth, "attachments.zip")
    assert 'filename="migrants-attachments.zip"' in r.headers["Content-Disposition"]
    assert read_zip(r.data) == {"uuid%3Aa/id.jpg": PHOTO, "uuid%3Ac/id.jpg": b"another photo"}


def test_csv_zip__same_name_different_files_go_under_their_submission(client, project, auth,
                                                                     submitted):
    submitted.send(xml_v2("uuid:c", photo="id.jpg"), {"id.jpg": b"another photo"})
    submitted.send(xml_v2("uuid:d", photo="card.jpg"), {"card.jpg": b"card"})
    submitted.send(xml_v2("uuid:e", photo="card.jpg"), {"card.jpg": b"card"})
    files = read_zip(get(client, project, auth, "submissions.csv.zip").data)
    media = {k: v for k, v in files.items() if k.startswith("media/")}
    assert media == {"media/uuid%3Aa/id.jpg": PHOTO, "media/uuid%3Ac/id.jpg": b"another photo",
                     "media/card.jpg": b"card"}


# -- what is never exported -------------------------------------------------------------------

def test_exports__leave_out_draft_test_submissions_and_deleted_ones(client, project, auth,
                                                                    submitted, db):
    from server.db import utcnow
    from server.models import Submission

    token = create_draft(client, project, auth, FORM_ID, V2)["draftToken"]
    openrosa_submit(client, f"/v1/test/{token}/projects/{project.id}/forms/{FORM_ID}/draft/"
                    "submission", xml_v2("uuid:draft"))
    assert db.scalar(select(Submission.draft).where(Submission.instance_id == "uuid:draft"))
    deleted = db.scalar(select(Submission).where(Submission.instance_id == "uuid:b"))
    deleted.deleted_at = utcnow()
    db.commit()
    rows = read_csv(get(client, project, auth, "submissions.csv").data)
    assert [r["KEY"] for r in rows] == ["uuid:a"]
    files = read_zip(get(client, project, auth, "attachments.zip").data)
    assert list(files) == ["uuid%3Aa/id.jpg"]


def test_exports__a_form_never_published_is_404(client, project, auth):
    upload_form(client, project, auth, V1, publish=False)
    r = client.get(url(project, "submissions.csv.zip"), headers=auth)
    assert r.status_code == 404 and r.get_json()["code"] == 404.1


def test_exports__no_submissions_gives_headers_only(client, project, auth, v1):
    rows = client.get(url(project, "submissions.csv"), headers=auth).data.decode()
    assert rows.splitlines()[0].startswith("SubmissionDate,name,age,nickname,langs")
    assert len(rows.splitlines()) == 1
    files = read_zip(get(client, project, auth, "submissions.csv.zip").data)
    assert set(files) == {"migrants.csv", "migrants-roster.csv", "migrants-stays.csv"}
    assert json.loads(get(client, project, auth, "submissions.geojson").data)["features"] == []


# -- stored files that cannot be read ---------------------------------------------------------

def test_csv_zip__a_lost_file_is_listed_never_silently_missing(client, project, auth, app,
                                                              submitted):
    import hashlib

    app.extensions["dodoso"].blob_store.delete(hashlib.sha256(PHOTO).hexdigest())
    files = read_zip(get(client, project, auth, "submissions.csv.zip").data)
    assert "media/id.jpg" not in files
    assert read_csv(files["missing-files.csv"]) == [
        {"KEY": "uuid:a", "name": "id.jpg", "problem": "stored file missing"}]
    files = read_zip(get(client, project, auth, "attachments.zip").data)
    assert list(files) == ["missing-files.csv"]


def test_attachments_zip__storage_down_before_the_first_byte_is_503(client, project, auth,
                                                                   app, submitted):
    from server.storage import BlobStoreUnavailable

    services = app.extensions["dodoso"]
    original = services.blob_store

    class Down:
        def __getattr__(self, name):
            return getattr(original, name)

        def iter_chunks(self, key, chunk_size=1 << 16):
            raise BlobStoreUnavailable("S3 is down")

    services.blob_store = Down()
    try:
        r = client.get(url(project, "attachments.zip"), headers=auth)
    finally:
        services.blob_store = original
    assert r.status_code == 503 and r.get_json()["code"] == 503.1
    assert "Retry-After" in r.headers
