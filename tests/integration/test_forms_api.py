"""Forms through the API: create, feedback, drafts, publish, versions, state, media, access."""

from __future__ import annotations

import hashlib

import pytest

from tests.support.xlsx import XLSX, md_to_xlsx

HOUSEHOLD_V1 = """
| survey   |                |              |                            |
|          | type           | name         | label                      |
|          | text           | respondent   | Respondent's name          |
|          | integer        | members      | How many people live here? |
|          | select_one yn  | remits       | Does anyone send money?    |
| choices  |                |              |                            |
|          | list_name      | name         | label                      |
|          | yn             | yes          | Yes                        |
|          | yn             | no           | No                         |
| settings |                |              |                            |
|          | form_title     | form_id      | version                    |
|          | Household      | household    | 2026110101                 |
"""


def v2(extra_row: str = "", version: str = "2026110201", members_type: str = "integer",
       respondent_type: str = "text") -> str:
    return f"""
| survey   |                |              |                            |
|          | type           | name         | label                      |
|          | {respondent_type} | respondent | Respondent's name          |
|          | {members_type} | members      | How many people live here? |
|          | select_one yn  | remits       | Does anyone send money?    |
{extra_row}
| choices  |                |              |                            |
|          | list_name      | name         | label                      |
|          | yn             | yes          | Yes                        |
|          | yn             | no           | No                         |
| settings |                |              |                            |
|          | form_title     | form_id      | version                    |
|          | Household      | household    | {version}                  |
"""


REGISTRY_WITH_CSV = """
| survey   |                                   |            |                     |
|          | type                              | name       | label               |
|          | select_one_from_file councils.csv | council    | Council             |
|          | text                              | profession | Profession          |
| settings |                                   |            |                     |
|          | form_title                        | form_id    | version             |
|          | Registry                          | registry   | 1                   |
"""


@pytest.fixture
def project(make):
    return make.project("Migration Profile")


@pytest.fixture
def designer(make, project):
    return make.auth(make.member(project, "designer"))


def upload(client, project, headers, md: str = HOUSEHOLD_V1, query: str = "", **extra):
    return client.post(f"/v1/projects/{project.id}/forms{query}", data=md_to_xlsx(md),
                       content_type=XLSX, headers={**headers, **extra})


def test_create__xlsform_becomes_a_draft_with_a_test_token(client, project, designer):
    r = upload(client, project, designer)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["xmlFormId"], body["name"], body["version"]) == (
        "household", "Household", "2026110101")
    assert body["publishedAt"] is None
    draft = client.get(f"/v1/projects/{project.id}/forms/household/draft",
                       headers=designer).get_json()
    assert len(draft["draftToken"]) == 64
    assert draft["diff"] is None


def test_create_and_publish__xml_and_xlsform_download_byte_for_byte(client, project, designer):
    original = md_to_xlsx(HOUSEHOLD_V1)
    r = client.post(f"/v1/projects/{project.id}/forms?publish=true", data=original,
                    content_type=XLSX, headers=designer)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["publishedAt"] is not None
    xml = client.get(f"/v1/projects/{project.id}/forms/household.xml", headers=designer)
    assert xml.status_code == 200
    assert xml.mimetype == "application/xml"
    assert hashlib.md5(xml.data).hexdigest() == r.get_json()["hash"]
    assert b'id="household"' in xml.data
    xlsx = client.get(f"/v1/projects/{project.id}/forms/household.xlsx", headers=designer)
    assert xlsx.status_code == 200
    assert xlsx.data == original
    assert client.get(f"/v1/projects/{project.id}/forms/household.xls",
                      headers=designer).status_code == 404


def test_create__multipart_upload(client, project, designer):
    import io
    r = client.post(f"/v1/projects/{project.id}/forms",
                    data={"file": (io.BytesIO(md_to_xlsx(HOUSEHOLD_V1)), "household.xlsx")},
                    content_type="multipart/form-data", headers=designer)
    assert r.status_code == 200, r.get_json()


def test_create__xform_upload(client, project, designer):
    xml = client.post(f"/v1/projects/{project.id}/forms?publish=true",
                      data=md_to_xlsx(HOUSEHOLD_V1), content_type=XLSX, headers=designer)
    assert xml.status_code == 200
    other = client.get(f"/v1/projects/{project.id}/forms/household.xml", headers=designer).data
    second = client.post(f"/v1/projects/{project.id}/forms",
                         data=other.replace(b'id="household"', b'id="household_xml"'),
                         content_type="application/xml", headers=designer)
    assert second.status_code == 200, second.get_json()
    assert second.get_json()["xmlFormId"] == "household_xml"


def test_create__every_error_located_for_the_designer(client, project, designer):
    broken = HOUSEHOLD_V1.replace("| integer        | members", "| text           | respondent")
    r = upload(client, project, designer, broken)
    assert r.status_code == 400
    body = r.get_json()
    assert body["code"] == 400.15
    errors = body["details"]["errors"]
    assert errors, body
    duplicate = errors[0]
    assert duplicate["sheet"] == "survey"
    assert duplicate["row"] == 3
    assert "respondent" in duplicate["message"]


def test_create__fallback_form_id_header(client, project, designer):
    no_id = HOUSEHOLD_V1.replace("| form_title     | form_id      | version  ",
                                 "| form_title     | form_idx     | version  ")
    r = upload(client, project, designer, no_id, **{"X-XlsForm-FormId-Fallback": "hh_survey"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["xmlFormId"] == "hh_survey"


def test_create__same_form_id_twice_is_409(client, project, designer):
    assert upload(client, project, designer).status_code == 200
    r = upload(client, project, designer)
    assert r.status_code == 409
    assert r.get_json()["code"] == 409.3


def test_create__same_form_id_in_another_project_is_fine(client, make, project, designer):
    other = make.project("Other")
    headers = make.auth(make.member(other, "designer"))
    assert upload(client, project, designer).status_code == 200
    assert upload(client, other, headers).status_code == 200


@pytest.mark.parametrize("body,content_type", [
    (b"", XLSX),
    (b"name,label\nx,y\n", XLSX),
    (b"<html><body>not a form</body></html>", XLSX),
    (b"\x00\x01garbage", "application/octet-stream"),
])
def test_create__not_a_form_is_400_with_a_specific_code(client, project, designer, body,
                                                         content_type):
    r = client.post(f"/v1/projects/{project.id}/forms", data=body, content_type=content_type,
                    headers=designer)
    assert r.status_code == 400, r.get_json()
    errors = r.get_json()["details"]["errors"]
    assert errors and all(e["code"] for e in errors)


def test_create__too_large_is_413(client, project, designer, settings):
    r = client.post(f"/v1/projects/{project.id}/forms",
                    data=b"PK" + b"\x00" * (settings.form_max_bytes + 100_000),
                    content_type=XLSX, headers=designer)
    assert r.status_code == 413
    assert r.get_json()["code"] == 413.2


def test_new_version__adding_a_field_is_listed_in_the_diff(client, project, designer):
    upload(client, project, designer, query="?publish=true")
    r = client.post(f"/v1/projects/{project.id}/forms/household/draft",
                    data=md_to_xlsx(v2("|          | date | arrived | When did you arrive? |")),
                    content_type=XLSX, headers=designer)
    assert r.status_code == 200, r.get_json()
    diff = r.get_json()["diff"]
    assert [f["path"] for f in diff["added"]] == ["/arrived"]
    assert diff["removed"] == []
    published = client.post(f"/v1/projects/{project.id}/forms/household/draft/publish",
                            headers=designer)
    assert published.status_code == 200, published.get_json()
    versions = client.get(f"/v1/projects/{project.id}/forms/household/versions",
                          headers=designer).get_json()
    assert [v["version"] for v in versions] == ["2026110201", "2026110101"]
    old = client.get(f"/v1/projects/{project.id}/forms/household/versions/2026110101.xml",
                     headers=designer)
    assert old.status_code == 200 and b"arrived" not in old.data
    fields = client.get(f"/v1/projects/{project.id}/forms/household/fields",
                        headers=designer).get_json()
    assert "/arrived" in [f["path"] for f in fields]


def test_new_version__retyping_a_field_is_refused_naming_it(client, project, designer):
    upload(client, project, designer, query="?publish=true")
    r = client.post(f"/v1/projects/{project.id}/forms/household/draft",
                    data=md_to_xlsx(v2(respondent_type="integer")),
                    content_type=XLSX, headers=designer)
    assert r.status_code == 409
    body = r.get_json()
    assert body["code"] == 409.8
    assert "/respondent" in body["message"]
    assert [e["field"] for e in body["details"]["errors"]] == ["/respondent"]


def test_new_version__retyping_to_text_is_allowed(client, project, designer):
    upload(client, project, designer, query="?publish=true")
    r = client.post(f"/v1/projects/{project.id}/forms/household/draft",
                    data=md_to_xlsx(v2(members_type="text")), content_type=XLSX,
                    headers=designer)
    assert r.status_code == 200, r.get_json()
    retyped = r.get_json()["diff"]["retyped"]
    assert [f["path"] for f in retyped] == ["/members"]


def test_publish__a_version_string_is_never_reused(client, project, designer):
    upload(client, project, designer, query="?publish=true")
    r = client.post(f"/v1/projects/{project.id}/forms/household/draft",
                    data=md_to_xlsx(v2("|  | text | note2 | Notes |", version="2026110101")),
                    content_type=XLSX, headers=designer)
    assert r.status_code == 200, r.get_json()
    publish = f"/v1/projects/{project.id}/forms/household/draft/publish"
    r = client.post(publish, headers=designer)
    assert r.status_code == 409
    assert r.get_json()["code"] == 409.7
    r = client.post(f"{publish}?version=2026110102", headers=designer)
    assert r.status_code == 200, r.get_json()
    xml = client.get(f"/v1/projects/{project.id}/forms/household.xml", headers=designer).data
    assert b'version="2026110102"' in xml
    assert hashlib.md5(xml).hexdigest() == r.get_json()["hash"]


def test_draft__copy_of_published_and_delete(client, project, designer):
    upload(client, project, designer, query="?publish=true")
    url = f"/v1/projects/{project.id}/forms/household/draft"
    assert client.get(url, headers=designer).status_code == 404
    r = client.post(url, headers=designer)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["diff"]["added"] == []
    assert client.get(f"{url}.xlsx", headers=designer).status_code == 200
    assert client.delete(url, headers=designer).status_code == 200
    assert client.get(url, headers=designer).status_code == 404


def test_state__open_closing_closed(client, project, make, designer):
    upload(client, project, designer, query="?publish=true")
    manager = make.auth(make.member(project, "manager"))
    url = f"/v1/projects/{project.id}/forms/household"
    for state in ("closing", "closed", "open"):
        r = client.patch(url, json={"state": state}, headers=manager)
        assert r.status_code == 200
        assert r.get_json()["state"] == state
    r = client.patch(url, json={"state": "archived"}, headers=manager)
    assert r.status_code == 422


def test_media__expected_checked_uploaded_and_carried_to_new_drafts(client, project, designer):
    r = upload(client, project, designer, REGISTRY_WITH_CSV)
    assert r.status_code == 200, r.get_json()
    base = f"/v1/projects/{project.id}/forms/registry/draft/attachments"
    listed = client.get(base, headers=designer).get_json()
    assert [(a["name"], a["exists"]) for a in listed] == [("councils.csv", False)]
    bad = client.post(f"{base}/councils.csv", data=b"code,title\n1,Ilala\n",
                      content_type="text/csv", headers=designer)
    assert bad.status_code == 400
    assert bad.get_json()["code"] == 400.17
    assert bad.get_json()["details"]["errors"][0]["code"] == "csv.missing_columns"
    good = b"name,label\nilala,Ilala Municipal Council\nkinondoni,Kinondoni\n"
    assert client.post(f"{base}/councils.csv", data=good, content_type="text/csv",
                       headers=designer).status_code == 200
    listed = client.get(base, headers=designer).get_json()
    assert listed[0]["exists"] is True
    assert listed[0]["hash"] == hashlib.md5(good).hexdigest()
    assert client.get(f"{base}/councils.csv", headers=designer).data == good
    assert client.post(f"{base}/unknown.csv", data=good, headers=designer).status_code == 404
    publish = client.post(f"/v1/projects/{project.id}/forms/registry/draft/publish",
                          headers=designer)
    assert publish.status_code == 200, publish.get_json()
    published = client.get(f"/v1/projects/{project.id}/forms/registry/attachments/councils.csv",
                           headers=designer)
    assert published.data == good
    assert "attachment" in published.headers["Content-Disposition"]
    assert published.headers["X-Content-Type-Options"] == "nosniff"
    client.post(f"/v1/projects/{project.id}/forms/registry/draft", headers=designer)
    carried = client.get(base, headers=designer).get_json()
    assert carried[0]["exists"] is True


def test_access__by_role(client, make, project):
    viewer = make.auth(make.member(project, "viewer"))
    data_manager = make.auth(make.member(project, "data-manager"))
    designer = make.auth(make.member(project, "designer"))
    assert upload(client, project, viewer).status_code == 403
    assert upload(client, project, data_manager).status_code == 403
    assert upload(client, project, designer, query="?publish=true").status_code == 200
    for headers in (viewer, data_manager):
        assert client.get(f"/v1/projects/{project.id}/forms",
                          headers=headers).status_code == 200
        assert client.get(f"/v1/projects/{project.id}/forms/household.xml",
                          headers=headers).status_code == 200
        assert client.post(f"/v1/projects/{project.id}/forms/household/draft",
                           headers=headers).status_code == 403
    assert client.delete(f"/v1/projects/{project.id}/forms/household",
                         headers=designer).status_code == 403


def test_access__another_projects_form_is_404(client, make, project, designer):
    upload(client, project, designer, query="?publish=true")
    other = make.project("Other")
    outsider = make.auth(make.member(other, "manager"))
    for path in ("", ".xml", "/draft", "/versions", "/fields", "/attachments"):
        r = client.get(f"/v1/projects/{project.id}/forms/household{path}", headers=outsider)
        assert r.status_code == 404, path


def test_list__shows_forms_with_their_current_version(client, project, designer):
    upload(client, project, designer, query="?publish=true")
    upload(client, project, designer, REGISTRY_WITH_CSV)
    listed = client.get(f"/v1/projects/{project.id}/forms", headers=designer).get_json()
    assert [(f["xmlFormId"], f["publishedAt"] is not None) for f in listed] == [
        ("household", True), ("registry", False)]


def test_writes__are_audited(client, project, designer, db):
    from sqlalchemy import select

    from server.models import AuditEvent
    upload(client, project, designer, query="?publish=true")
    actions = set(db.scalars(select(AuditEvent.action).where(
        AuditEvent.project_id == project.id)))
    assert {"form.create", "form.publish"} <= actions


def test_entities__declarations_are_kept_with_the_version(client, project, designer):
    from pathlib import Path

    md = (Path(__file__).parents[1] / "data" / "forms" / "worker_registry.md").read_text()
    r = upload(client, project, designer, md, query="?publish=true&ignoreWarnings=true")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["entityRelated"] is True
    [entity] = body["entities"]
    assert entity["dataset"] == "migrant_workers"
    assert "create" in entity["actions"]
    assert {p["property"] for p in entity["properties"]} == {
        "full_name", "age", "phone", "last_country"}
    plain = upload(client, project, designer, REGISTRY_WITH_CSV).get_json()
    assert plain["entityRelated"] is False and plain["entities"] == []


EXTERNAL_CHOICES = """
| survey           |                         |          |          |               |
|                  | type                    | name     | label    | choice_filter |
|                  | select_one region       | region   | Region   |               |
|                  | select_one_external council | council | Council | region=${region} |
| choices          |                         |          |          |               |
|                  | list_name               | name     | label    |               |
|                  | region                  | dsm      | Dar es Salaam |          |
|                  | region                  | arusha   | Arusha   |               |
| external_choices |                         |          |          |               |
|                  | list_name               | name     | label    | region        |
|                  | council                 | ilala    | Ilala    | dsm           |
|                  | council                 | meru     | Meru     | arusha        |
| settings         |                         |          |          |               |
|                  | form_title              | form_id  |          |               |
|                  | Councils                | councils |          |               |
"""


def test_external_choices__itemsets_csv_is_attached_by_the_server(client, project, designer):
    r = upload(client, project, designer, EXTERNAL_CHOICES)
    assert r.status_code == 200, r.get_json()
    base = f"/v1/projects/{project.id}/forms/councils/draft/attachments"
    listed = client.get(base, headers=designer).get_json()
    assert [(a["name"], a["exists"]) for a in listed] == [("itemsets.csv", True)]
    csv = client.get(f"{base}/itemsets.csv", headers=designer).get_data(as_text=True)
    assert "ilala" in csv and "meru" in csv
