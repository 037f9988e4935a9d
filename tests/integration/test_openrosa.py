"""ODK Collect's conversation with dodoso, on Central's URLs: form list, form download,
manifest and media, HEAD then multipart POST of submissions, and the ingestion rules."""

from __future__ import annotations

import io

import pytest
from lxml import etree
from sqlalchemy import func, select

from server.models import AuditEvent, Submission, SubmissionDef, SubmissionRow
from tests.support.xlsx import XLSX, md_to_xlsx

OR = {"X-OpenRosa-Version": "1.0"}

SURVEY = """
| survey   |               |          |                      |
|          | type          | name     | label                |
|          | text          | name     | Name                 |
|          | image         | photo    | Photo of the ID      |
|          | begin repeat  | members  | Members              |
|          | text          | m_name   | Member name          |
|          | integer       | m_age    | Age                  |
|          | end repeat    |          |                      |
| settings |               |          |                      |
|          | form_title    | form_id  | version              |
|          | Household     | hh       | 1                    |
"""


def instance(instance_id: str = "uuid:0001", *, name: str = "Amina", version: str = "1",
             photo: str = "id.jpg", deprecated: str | None = None, form_id: str = "hh") -> bytes:
    deprecated_el = f"<deprecatedID>{deprecated}</deprecatedID>" if deprecated else ""
    return (f'<?xml version="1.0"?><data id="{form_id}" version="{version}">'
            f"<name>{name}</name><photo>{photo}</photo>"
            "<members><m_name>Juma</m_name><m_age>34</m_age></members>"
            "<members><m_name>Neema</m_name><m_age>29</m_age></members>"
            f"<meta><instanceID>{instance_id}</instanceID>{deprecated_el}</meta></data>"
            ).encode()


@pytest.fixture
def project(make):
    return make.project("Migration Profile")


@pytest.fixture
def published(client, make, project):
    designer = make.auth(make.member(project, "designer"))
    r = client.post(f"/v1/projects/{project.id}/forms?publish=true&ignoreWarnings=true",
                    data=md_to_xlsx(SURVEY),
                    content_type=XLSX, headers=designer)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


@pytest.fixture
def key(make, project, published, db):
    from server import queries
    from server.auth.actor import SYSTEM
    from server.services.forms import assign_app_user

    app_user, token = make.app_user(project)
    assign_app_user(db, SYSTEM, queries.forms.get(db, project.id, "hh"), app_user.id)
    db.commit()
    return f"/v1/key/{token}/projects/{project.id}"


def post(client, url, xml: bytes, files: dict[str, bytes] | None = None, headers=OR):
    data = {"xml_submission_file": (io.BytesIO(xml), "submission.xml", "text/xml")}
    for name, content in (files or {}).items():
        data[name] = (io.BytesIO(content), name, "image/jpeg")
    return client.post(f"{url}/submission?deviceID=collect%3Aabc", data=data,
                       content_type="multipart/form-data", headers=headers)


def count(db, model) -> int:
    return db.scalar(select(func.count()).select_from(model))


def test_form_list__offers_the_assigned_form_with_its_hash(client, key, published):
    r = client.get(f"{key}/formList", headers=OR)
    assert r.status_code == 200
    assert r.headers["X-OpenRosa-Version"] == "1.0"
    assert "text/xml" in r.headers["Content-Type"]
    root = etree.fromstring(r.data)
    ns = {"x": "http://openrosa.org/xforms/xformsList"}
    assert root.xpath("//x:formID/text()", namespaces=ns) == ["hh"]
    assert root.xpath("//x:hash/text()", namespaces=ns) == [f"md5:{published['hash']}"]
    url = root.xpath("//x:downloadUrl/text()", namespaces=ns)[0]
    assert url.endswith(f"{key}/forms/hh.xml")
    assert root.xpath("//x:manifestUrl", namespaces=ns) == []
    form = client.get(url.split("dodoso.test", 1)[1], headers=OR)
    assert form.status_code == 200
    import hashlib
    assert hashlib.md5(form.data).hexdigest() == published["hash"]


def test_submission__head_is_204_with_the_accepted_length(client, key, settings):
    r = client.head(f"{key}/submission", headers=OR)
    assert r.status_code == 204
    assert int(r.headers["X-OpenRosa-Accept-Content-Length"]) <= settings.max_submission_bytes


def test_submission__new_then_identical_resend_then_conflict(client, key, db):
    r = post(client, key, instance())
    assert r.status_code == 201, r.data
    assert b"full submission upload was successful!" in r.data
    assert count(db, Submission) == 1
    rows = db.scalars(select(SubmissionRow).order_by(SubmissionRow.id)).all()
    assert [(r.table_path, r.row_key, r.parent_key) for r in rows] == [
        ("", "uuid:0001", None),
        ("/members", "uuid:0001/members[1]", "uuid:0001"),
        ("/members", "uuid:0001/members[2]", "uuid:0001"),
    ]
    assert rows[1].data["/members/m_name"] == "Juma"
    again = post(client, key, instance(), files={"id.jpg": b"\xff\xd8photo"})
    assert again.status_code == 201
    assert count(db, Submission) == 1
    definition = db.scalar(select(SubmissionDef))
    assert (definition.attachments_expected, definition.attachments_present) == (1, 1)
    conflict = post(client, key, instance(name="Someone else"))
    assert conflict.status_code == 409
    assert count(db, SubmissionDef) == 1
    retry = post(client, key, instance(), files={"id.jpg": b"\xff\xd8photo"})
    assert retry.status_code == 201
    audited = db.execute(select(AuditEvent.action, AuditEvent.details).where(
        AuditEvent.action.like("submission.%")).order_by(AuditEvent.id)).all()
    assert [(action, (details or {}).get("deviceId")) for action, details in audited] == [
        ("submission.create", "collect:abc"), ("submission.attachment.update", "collect:abc"),
        ("submission.conflict", "collect:abc"), ("submission.resend", "collect:abc")]


def test_submission__edit_adds_a_version(client, key, db):
    assert post(client, key, instance()).status_code == 201
    r = post(client, key, instance("uuid:0002", name="Amina J.", deprecated="uuid:0001"))
    assert r.status_code == 201, r.data
    submission = db.scalar(select(Submission))
    assert submission.review_state == "edited"
    defs = db.scalars(select(SubmissionDef).order_by(SubmissionDef.id)).all()
    assert [(d.instance_id, d.current) for d in defs] == [("uuid:0001", False),
                                                         ("uuid:0002", True)]
    stale = post(client, key, instance("uuid:0003", deprecated="uuid:0001"))
    assert stale.status_code == 409
    unknown = post(client, key, instance("uuid:0004", deprecated="uuid:nope"))
    assert unknown.status_code == 404


def test_submission__without_the_openrosa_header_is_400(client, key):
    r = post(client, key, instance(), headers={})
    assert r.status_code == 400
    assert b"X-OpenRosa-Version" in r.data


def test_submission__unknown_version_and_closed_form(client, key, make, project):
    assert post(client, key, instance(version="9")).status_code == 404
    manager = make.auth(make.member(project, "manager"))
    client.patch(f"/v1/projects/{project.id}/forms/hh", json={"state": "closed"},
                 headers=manager)
    assert post(client, key, instance()).status_code == 409


def test_submission__revoked_key_is_403(client, key, make, project, db):
    from server.models import AppUser
    for app_user in db.scalars(select(AppUser)):
        from server.db import utcnow
        app_user.revoked_at = utcnow()
    db.commit()
    assert post(client, key, instance()).status_code == 403
