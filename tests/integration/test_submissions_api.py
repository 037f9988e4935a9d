"""The REST submissions API on Central's paths: list (paged, one query), create from raw XML,
read as JSON and as XML, edit by PUT, versions, attachments, and who may do what."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from server.db import utcnow
from server.models import AuditEvent, Submission, SubmissionDef
from tests.integration.test_openrosa import SURVEY
from tests.support.api import XML, openrosa_submit, upload_form
from tests.support.forms import assigned_app_user
from tests.support.sql import QueryCounter

PHOTO = b"\xff\xd8\xff\xe0 a photo of an ID card"


def instance(instance_id: str = "uuid:0001", *, name: str = "Amina", version: str = "1",
             photo: str = "id.jpg", deprecated: str | None = None, form_id: str = "hh",
             instance_name: str | None = "Amina's household") -> bytes:
    deprecated_el = f"<deprecatedID>{deprecated}</deprecatedID>" if deprecated else ""
    name_el = f"<instanceName>{instance_name}</instanceName>" if instance_name else ""
    return (f'<?xml version="1.0"?><data id="{form_id}" version="{version}">'
            f"<name>{name}</name><photo>{photo}</photo>"
            "<members><m_name>Juma</m_name><m_age>34</m_age></members>"
            f"<meta><instanceID>{instance_id}</instanceID>{deprecated_el}{name_el}</meta>"
            "</data>").encode()


@pytest.fixture
def url(client, project, auth):
    upload_form(client, project, auth, SURVEY)
    return f"/v1/projects/{project.id}/forms/hh/submissions"


def create(client, url, auth, xml: bytes | None = None, content_type: str = XML, query=""):
    return client.post(f"{url}{query}", data=instance() if xml is None else xml,
                       content_type=content_type, headers=auth)


# -- create ---------------------------------------------------------------------------------

def test_create__raw_xml_answers_200_with_the_submission(client, url, auth, manager, db):
    r = create(client, url, auth, query="?deviceID=cli%3A1")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["instanceId"] == "uuid:0001"
    assert body["submitterId"] == manager.id
    assert body["deviceId"] == "cli:1"
    assert body["reviewState"] is None
    assert body["createdAt"] and body["updatedAt"] is None
    current = body["currentVersion"]
    assert current["instanceId"] == "uuid:0001"
    assert current["instanceName"] == "Amina's household"
    assert current["submitterId"] == manager.id
    assert current["current"] is True
    assert db.scalar(select(func.count()).select_from(Submission)) == 1
    event_ = db.scalar(select(AuditEvent).where(AuditEvent.action == "submission.create"))
    assert event_ is not None and event_.actor_user_id == manager.id


def test_create__text_xml_is_accepted_too(client, url, auth):
    assert create(client, url, auth, content_type="text/xml").status_code == 200


def test_create__an_existing_instance_id_is_409(client, url, auth, db):
    assert create(client, url, auth).status_code == 200
    same = create(client, url, auth)
    assert same.status_code == 409
    assert same.get_json()["code"] == 409.3
    different = create(client, url, auth, instance(name="Someone else"))
    assert different.status_code == 409
    assert db.scalar(select(func.count()).select_from(SubmissionDef)) == 1


def test_create__xml_over_10_mb_is_413(client, url, auth, db):
    padding = b"<!--" + b"x" * (10 * 1024 * 1024) + b"-->"
    r = create(client, url, auth, instance() + padding)
    assert r.status_code == 413
    assert r.get_json()["code"] == 413.1
    assert db.scalar(select(func.count()).select_from(Submission)) == 0


def test_create__refuses_what_ingest_refuses(client, url, auth, make, project):
    assert create(client, url, auth, b"<data id='hh'").status_code == 400
    assert create(client, url, auth, instance(form_id="other")).status_code == 400
    assert create(client, url, auth, instance(version="9")).status_code == 404
    manager = make.auth(make.member(project, "manager"))
    client.patch(f"/v1/projects/{project.id}/forms/hh", json={"state": "closed"},
                 headers=manager)
    assert create(client, url, auth).status_code == 409


def test_create__needs_submission_create(client, url, make, project):
    viewer = make.auth(make.member(project, "viewer"))
    assert create(client, url, viewer).status_code == 403
    data_manager = make.auth(make.member(project, "data-manager"))
    assert create(client, url, data_manager).status_code == 200
    assert client.post(url, data=instance(), content_type=XML).status_code == 401


def test_create__another_projects_form_is_404(client, url, make, project):
    elsewhere = make.project("Elsewhere")
    outsider = make.auth(make.member(elsewhere, "manager"))
    assert create(client, url, outsider).status_code == 404
    assert client.get(url, headers=outsider).status_code == 404
    other_url = f"/v1/projects/{elsewhere.id}/forms/hh/submissions"
    assert create(client, other_url, outsider).status_code == 404


# -- list and read --------------------------------------------------------------------------

def test_list__newest_first_paged_with_the_total(client, url, auth):
    for n in range(1, 4):
        assert create(client, url, auth, instance(f"uuid:000{n}")).status_code == 200
    everything = client.get(url, headers=auth)
    assert everything.status_code == 200
    assert everything.headers["X-Total-Count"] == "3"
    assert [s["instanceId"] for s in everything.get_json()] == ["uuid:0003", "uuid:0002",
                                                                "uuid:0001"]
    first = client.get(f"{url}?limit=2", headers=auth)
    assert [s["instanceId"] for s in first.get_json()] == ["uuid:0003", "uuid:0002"]
    assert first.headers["X-Total-Count"] == "3"
    rest = client.get(f"{url}?limit=2&offset=2", headers=auth)
    assert [s["instanceId"] for s in rest.get_json()] == ["uuid:0001"]
    assert client.get(f"{url}?limit=-1", headers=auth).status_code == 422


def test_list__one_query_for_the_page_however_long(client, url, auth, engine, make, project):
    viewer = make.auth(make.member(project, "viewer"))

    def selects() -> int:
        with QueryCounter(engine) as counter:
            assert client.get(url, headers={**viewer, "X-Extended-Metadata": "true"}
                              ).status_code == 200
        return len(counter.statements)

    assert create(client, url, auth, instance("uuid:0001")).status_code == 200
    one = selects()
    for n in range(2, 7):
        assert create(client, url, auth, instance(f"uuid:000{n}")).status_code == 200
    assert selects() == one


def test_list__extended_metadata_shows_the_submitters(client, url, auth, manager, make,
                                                      project, db):
    assert create(client, url, auth).status_code == 200
    app_user, token = assigned_app_user(make, db, project, "hh")
    openrosa_submit(client, f"/v1/key/{token}/projects/{project.id}/submission",
                    instance("uuid:from-collect"))

    plain = client.get(url, headers=auth).get_json()
    assert "submitter" not in plain[0]
    extended = client.get(url, headers={**auth, "X-Extended-Metadata": "true"})
    assert extended.headers["X-Total-Count"] == "2"
    by_id = {s["instanceId"]: s for s in extended.get_json()}
    collect = by_id["uuid:from-collect"]
    assert collect["submitterId"] == app_user.id
    assert collect["submitter"]["type"] == "field_key"
    assert collect["submitter"]["displayName"] == "Tablet 1"
    web = by_id["uuid:0001"]
    assert web["submitter"]["id"] == manager.id and web["submitter"]["type"] == "user"
    assert web["currentVersion"]["submitter"]["id"] == manager.id
    one = client.get(f"{url}/uuid:0001", headers={**auth, "X-Extended-Metadata": "true"})
    assert one.get_json()["submitter"]["id"] == manager.id


def test_read__json_and_the_xml_byte_for_byte(client, url, auth):
    xml = instance("uuid:abc-def")
    assert create(client, url, auth, xml).status_code == 200
    r = client.get(f"{url}/uuid:abc-def", headers=auth)
    assert r.status_code == 200
    assert r.get_json()["instanceId"] == "uuid:abc-def"
    raw = client.get(f"{url}/uuid%3Aabc-def.xml", headers=auth)
    assert raw.status_code == 200
    assert raw.mimetype == "application/xml"
    assert raw.data == xml
    assert client.get(f"{url}/uuid:nope", headers=auth).status_code == 404
    assert client.get(f"{url}/uuid:nope.xml", headers=auth).status_code == 404


def test_read__a_deleted_submission_is_gone(client, url, auth, db):
    assert create(client, url, auth, instance("uuid:0001")).status_code == 200
    assert create(client, url, auth, instance("uuid:0002")).status_code == 200
    submission = db.scalar(select(Submission).where(Submission.instance_id == "uuid:0001"))
    submission.deleted_at = utcnow()
    db.commit()
    listed = client.get(url, headers=auth)
    assert [s["instanceId"] for s in listed.get_json()] == ["uuid:0002"]
    assert listed.headers["X-Total-Count"] == "1"
    for path in ("", ".xml", "/versions", "/attachments", "/versions/uuid:0001.xml"):
        assert client.get(f"{url}/uuid:0001{path}", headers=auth).status_code == 404, path


def test_read__viewers_may_list_and_read_but_not_write(client, url, auth, make, project):
    assert create(client, url, auth).status_code == 200
    viewer = make.auth(make.member(project, "viewer"))
    assert client.get(url, headers=viewer).status_code == 200
    assert client.get(f"{url}/uuid:0001", headers=viewer).status_code == 200
    assert client.get(f"{url}/uuid:0001.xml", headers=viewer).status_code == 200
    edit = instance("uuid:0002", deprecated="uuid:0001")
    assert client.put(f"{url}/uuid:0001", data=edit, content_type=XML,
                      headers=viewer).status_code == 403
    assert client.post(f"{url}/uuid:0001/attachments/id.jpg", data=PHOTO,
                       content_type="image/jpeg", headers=viewer).status_code == 403


# -- edit by PUT, versions ------------------------------------------------------------------

def test_put__adds_a_version_and_keeps_the_first(client, url, auth):
    first = instance()
    assert create(client, url, auth, first).status_code == 200
    edit = instance("uuid:0002", name="Amina J.", deprecated="uuid:0001")
    r = client.put(f"{url}/uuid:0001", data=edit, content_type=XML, headers=auth)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["instanceId"] == "uuid:0001"
    assert body["reviewState"] == "edited"
    assert body["updatedAt"] is not None
    assert body["currentVersion"]["instanceId"] == "uuid:0002"

    assert client.get(f"{url}/uuid:0001.xml", headers=auth).data == edit
    versions = client.get(f"{url}/uuid:0001/versions", headers=auth)
    assert [(v["instanceId"], v["current"]) for v in versions.get_json()] == [
        ("uuid:0002", True), ("uuid:0001", False)]
    old = client.get(f"{url}/uuid:0001/versions/uuid:0001.xml", headers=auth)
    assert old.status_code == 200 and old.data == first
    assert old.mimetype == "application/xml"
    one = client.get(f"{url}/uuid:0001/versions/uuid:0002", headers=auth)
    assert one.get_json()["instanceId"] == "uuid:0002"
    extended = client.get(f"{url}/uuid:0001/versions",
                          headers={**auth, "X-Extended-Metadata": "true"}).get_json()
    assert extended[0]["formVersion"] == "1" and extended[0]["submitter"]["type"] == "user"
    # A version's own instanceID is not a submission's.
    assert client.get(f"{url}/uuid:0002", headers=auth).status_code == 404
    assert [s["instanceId"] for s in client.get(url, headers=auth).get_json()] == ["uuid:0001"]


def test_put__refuses_what_is_not_an_edit_of_the_current_version(client, url, auth, db):
    assert create(client, url, auth).status_code == 200

    def put(xml: bytes, target: str = "uuid:0001"):
        return client.put(f"{url}/{target}", data=xml, content_type=XML, headers=auth)

    no_deprecation = put(instance("uuid:0002"))
    assert no_deprecation.status_code == 400
    assert no_deprecation.get_json()["code"] == 400.19
    assert put(instance("uuid:0002", deprecated="uuid:0001", form_id="x")).status_code == 400
    assert put(instance("uuid:0002", deprecated="uuid:0001"),
               target="uuid:nope").status_code == 404
    assert put(instance("uuid:0002", deprecated="uuid:0001")).status_code == 200
    stale = put(instance("uuid:0003", deprecated="uuid:0001"))
    assert stale.status_code == 409
    assert stale.get_json()["code"] == 409.11
    assert db.scalar(select(func.count()).select_from(SubmissionDef)) == 2


def test_versions__of_another_submission_are_404(client, url, auth):
    assert create(client, url, auth, instance("uuid:0001")).status_code == 200
    assert create(client, url, auth, instance("uuid:0002")).status_code == 200
    assert client.get(f"{url}/uuid:0001/versions/uuid:0002.xml",
                      headers=auth).status_code == 404
    assert client.get(f"{url}/uuid:0001/versions/uuid:0002", headers=auth).status_code == 404


# -- attachments ----------------------------------------------------------------------------

def test_attachments__listed_uploaded_and_downloaded(client, url, auth, db):
    assert create(client, url, auth).status_code == 200
    base = f"{url}/uuid:0001/attachments"
    assert client.get(base, headers=auth).get_json() == [{"name": "id.jpg", "exists": False}]

    unexpected = client.post(f"{base}/other.jpg", data=PHOTO, content_type="image/jpeg",
                             headers=auth)
    assert unexpected.status_code == 404
    r = client.post(f"{base}/id.jpg", data=PHOTO, content_type="image/jpeg", headers=auth)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"success": True}
    assert client.get(base, headers=auth).get_json() == [{"name": "id.jpg", "exists": True}]

    download = client.get(f"{base}/id.jpg", headers=auth)
    assert download.status_code == 200
    assert download.data == PHOTO
    assert download.mimetype == "image/jpeg"
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get(f"{base}/other.jpg", headers=auth).status_code == 404

    # Replacing the file keeps the count of files present right.
    again = client.post(f"{base}/id.jpg", data=PHOTO + b"!", content_type="image/jpeg",
                        headers=auth)
    assert again.status_code == 200
    assert client.get(f"{base}/id.jpg", headers=auth).data == PHOTO + b"!"
    definition = db.scalar(select(SubmissionDef))
    assert (definition.attachments_expected, definition.attachments_present) == (1, 1)
    audits = db.scalars(select(AuditEvent).where(
        AuditEvent.action == "submission.attachment.update")).all()
    assert len(audits) == 2
    assert audits[1].details["name"] == "id.jpg"
    assert audits[1].details["oldBlobId"] == audits[0].details["newBlobId"]


def test_attachments__an_edit_keeps_the_file_it_still_names(client, url, auth):
    assert create(client, url, auth).status_code == 200
    base = f"{url}/uuid:0001/attachments"
    assert client.post(f"{base}/id.jpg", data=PHOTO, content_type="image/jpeg",
                       headers=auth).status_code == 200
    edit = instance("uuid:0002", name="Amina J.", deprecated="uuid:0001")
    assert client.put(f"{url}/uuid:0001", data=edit, content_type=XML,
                      headers=auth).status_code == 200
    assert client.get(base, headers=auth).get_json() == [{"name": "id.jpg", "exists": True}]
    assert client.get(f"{base}/id.jpg", headers=auth).data == PHOTO


def test_attachments__without_a_content_type_it_is_guessed_from_the_name(client, url, auth):
    assert create(client, url, auth).status_code == 200
    r = client.post(f"{url}/uuid:0001/attachments/id.jpg", data=PHOTO, headers=auth)
    assert r.status_code == 200
    download = client.get(f"{url}/uuid:0001/attachments/id.jpg", headers=auth)
    assert download.mimetype == "image/jpeg"
