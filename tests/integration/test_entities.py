"""Entity lists, end to end over HTTP: the form library's registry form creates entities in
``diaspora_experts`` from consenting registrations sent the way Collect sends them; its
follow-up form's manifest lists ``diaspora_experts.csv`` with the hash of the CSV served
(name, label, __version and the properties), which changes with every new or updated
entity; the download answers 304 to a matching ETag; app users see it only for assigned
forms; the REST API answers in Central's shape; catching up twice applies nothing twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid as uuid_lib

import pytest
from lxml import etree
from sqlalchemy import func, select

from server import queries
from server.auth.actor import SYSTEM
from server.models import Entity, EntitySubmission, EntityVersion
from server.services import entities as svc
from server.services import forms as forms_svc
from server.services.forms import assign_app_user
from server.services.library import install_forms
from tests.support.api import OR, openrosa_submit
from tests.support.library import fill

DATASET = "diaspora_experts"
REGISTRY = "diaspora_skills_profile"
FOLLOW_UP = "mida_assignment_monitoring"
CSV_NAME = f"{DATASET}.csv"
XF = "http://www.w3.org/2002/xforms"
MANIFEST_NS = {"m": "http://openrosa.org/xforms/xformsManifest"}
REGISTRY_PROPERTIES = ["share_with_hosts", "country_res", "edu_highest", "occupation",
                       "willing", "available_from", "expert_code"]


@pytest.fixture
def tablet(make, db, ctx, project, compiled_once):
    """Both library forms installed and assigned to one app user; its OpenRosa base URL."""
    app_user, token = make.app_user(project, "Tablet Dar")
    results = install_forms(db, ctx, SYSTEM, project, [REGISTRY, FOLLOW_UP],
                            assign_to=[app_user.id])
    db.commit()
    assert [r.status for r in results] == ["installed", "installed"]
    return f"/v1/key/{token}/projects/{project.id}"


def _set(root: etree._Element, path: str, text: str) -> None:
    el = root.find("/".join(f"{{{XF}}}{step}" for step in path.strip("/").split("/")))
    assert el is not None, path
    el.text = text


def _entity_el(root: etree._Element) -> etree._Element:
    return root.find(f"{{{XF}}}meta/{{{XF}}}entity")


def registration(*, consent: str = "yes", code: str = "DX-1a2b3c4d",
                 title: str = "Paediatric nurse", create: str = "1",
                 country: str = "OMN") -> tuple[bytes, str]:
    """A registry submission as Collect sends it; Collect evaluated ``create`` already."""
    root = etree.fromstring(fill(REGISTRY).xml)
    entity_id = str(uuid_lib.uuid4())
    _set(root, "/grp_consent/consent", consent)
    _set(root, "/expert_code", code)
    _set(root, "/grp_skills/occ_title", title)
    _set(root, "/grp_profile/country_res", country)
    entity = _entity_el(root)
    entity.set("create", create)
    entity.set("id", entity_id)
    entity.find(f"{{{XF}}}label").text = f"{code} – {title}"
    return etree.tostring(root, xml_declaration=True, encoding="utf-8"), entity_id


def follow_up(entity_id: str, *, base_version: str = "1", status: str = "completed",
              update: str = "1") -> bytes:
    """A monitoring submission that picked ``entity_id`` from the expert list."""
    root = etree.fromstring(fill(FOLLOW_UP).xml)
    _set(root, "/grp_assignment/expert", entity_id)
    _set(root, "/grp_satisfaction/assignment_status", status)
    entity = _entity_el(root)
    entity.set("id", entity_id)
    entity.set("update", update)
    entity.set("baseVersion", base_version)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def submit(client, base: str, xml: bytes) -> None:
    openrosa_submit(client, f"{base}/submission", xml)


def manifest(client, base: str, form_id: str = FOLLOW_UP) -> dict[str, str]:
    r = client.get(f"{base}/forms/{form_id}/manifest", headers=OR)
    assert r.status_code == 200, r.data
    root = etree.fromstring(r.data)
    return {m.findtext("m:filename", namespaces=MANIFEST_NS):
            m.findtext("m:hash", namespaces=MANIFEST_NS)
            for m in root.iterfind("m:mediaFile", namespaces=MANIFEST_NS)}


def download(client, base: str, headers: dict[str, str] | None = None):
    return client.get(f"{base}/forms/{FOLLOW_UP}/attachments/{CSV_NAME}",
                      headers={**OR, **(headers or {})})


def rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def count(db, model, *where) -> int:
    return db.scalar(select(func.count()).select_from(model).where(*where))


# -- the list Collect downloads --------------------------------------------------------------

def test_manifest__lists_the_entity_list_with_the_md5_of_the_csv_it_serves(client, tablet):
    amina, amina_id = registration(code="DX-0000aaaa", title="Paediatric nurse")
    juma, juma_id = registration(code="DX-0000bbbb", title="Physics teacher", create="true",
                                 country="ARE")
    refused, _ = registration(consent="no", code="DX-0000cccc", create="0")
    for xml in (amina, juma, refused):
        submit(client, tablet, xml)

    listed = manifest(client, tablet)
    r = download(client, tablet)
    assert r.status_code == 200
    assert r.mimetype == "text/csv"
    assert int(r.headers["Content-Length"]) == len(r.data)
    assert listed[CSV_NAME] == "md5:" + hashlib.md5(r.data).hexdigest()

    header = r.data.decode("utf-8").splitlines()[0].split(",")
    assert header[:3] == ["name", "label", "__version"]
    assert header[3:3 + len(REGISTRY_PROPERTIES)] == REGISTRY_PROPERTIES
    got = {row["name"]: row for row in rows(r.data)}
    assert set(got) == {amina_id, juma_id}  # only the consenting experts
    assert got[amina_id]["label"] == "DX-0000aaaa – Paediatric nurse"
    assert got[juma_id]["label"] == "DX-0000bbbb – Physics teacher"
    assert {row["__version"] for row in got.values()} == {"1"}
    assert got[amina_id]["expert_code"] == "DX-0000aaaa"
    assert got[juma_id]["country_res"] == "ARE"
    assert got[amina_id]["occupation"] == "22"
    # The registry form itself reads no entity list: its manifest is unchanged.
    assert CSV_NAME not in manifest(client, tablet, REGISTRY)


def test_manifest__hash_changes_with_a_new_registration_and_with_an_update(client, tablet):
    first, first_id = registration(code="DX-0000aaaa")
    submit(client, tablet, first)
    before = manifest(client, tablet)[CSV_NAME]
    assert manifest(client, tablet)[CSV_NAME] == before  # stable while nothing changes

    submit(client, tablet, registration(code="DX-0000bbbb")[0])
    after_new = manifest(client, tablet)[CSV_NAME]
    assert after_new != before

    submit(client, tablet, follow_up(first_id, status="completed"))
    after_update = manifest(client, tablet)[CSV_NAME]
    assert after_update not in (before, after_new)
    updated = {row["name"]: row for row in rows(download(client, tablet).data)}[first_id]
    assert updated["__version"] == "2"
    assert updated["placement_status"] == "completed"
    assert updated["expert_code"] == "DX-0000aaaa"  # merged, not replaced
    assert updated["label"] == "DX-0000aaaa – Paediatric nurse"  # no label sent: kept


def test_media__etag_answers_304_until_the_list_changes(client, tablet):
    submit(client, tablet, registration(code="DX-0000aaaa")[0])
    r = download(client, tablet)
    etag = r.headers["ETag"]
    assert etag == f'"{hashlib.md5(r.data).hexdigest()}"'
    assert download(client, tablet, {"If-None-Match": etag}).status_code == 304

    submit(client, tablet, registration(code="DX-0000bbbb")[0])
    again = download(client, tablet, {"If-None-Match": etag})
    assert again.status_code == 200
    assert again.headers["ETag"] != etag and len(rows(again.data)) == 2


def test_media__an_empty_dataset_serves_the_header_only(client, tablet):
    r = download(client, tablet)
    assert r.status_code == 200
    assert r.data.decode().splitlines() == [
        ",".join(["name", "label", "__version", *REGISTRY_PROPERTIES, "placement_status"])]


def test_app_user__sees_the_list_only_through_forms_assigned_to_it(client, db, make, project,
                                                                  tablet):
    submit(client, tablet, registration()[0])
    other, token = make.app_user(project, "Tablet Mwanza")
    assign_app_user(db, SYSTEM, queries.forms.get(db, project.id, REGISTRY), other.id)
    db.commit()
    base = f"/v1/key/{token}/projects/{project.id}"
    assert client.get(f"{base}/forms/{FOLLOW_UP}/manifest", headers=OR).status_code == 404
    assert download(client, base).status_code == 404
    assign_app_user(db, SYSTEM, queries.forms.get(db, project.id, FOLLOW_UP), other.id)
    db.commit()
    assert CSV_NAME in manifest(client, base)
    assert len(rows(download(client, base).data)) == 1


def test_media__an_uploaded_file_wins_over_the_dataset_and_unknown_names_are_404(
        client, db, ctx, project, tablet):
    submit(client, tablet, registration()[0])
    assert client.get(f"{tablet}/forms/{FOLLOW_UP}/attachments/nothing.csv",
                      headers=OR).status_code == 404
    form = queries.forms.get(db, project.id, FOLLOW_UP)
    draft = forms_svc.create_draft(db, ctx, SYSTEM, form, None)
    uploaded = b"name,label\nx,Someone typed in\n"
    forms_svc.upload_attachment(db, ctx, SYSTEM, form, draft, CSV_NAME, uploaded, "text/csv")
    forms_svc.publish_draft(db, ctx, SYSTEM, form, version="2027010101")
    db.commit()
    assert manifest(client, tablet)[CSV_NAME] == "md5:" + hashlib.md5(uploaded).hexdigest()
    assert download(client, tablet).data == uploaded


# -- processing rules ------------------------------------------------------------------------

def test_update__behind_the_current_version_records_a_hard_conflict(client, auth, project,
                                                                     tablet):
    xml, expert = registration()
    submit(client, tablet, xml)
    submit(client, tablet, follow_up(expert, status="completed"))
    submit(client, tablet, follow_up(expert, status="ongoing"))  # made offline from v1
    r = client.get(f"/v1/projects/{project.id}/datasets/{DATASET}/entities/{expert}",
                   headers=auth)
    assert r.status_code == 200
    body = r.get_json()
    assert body["conflict"] == "hard"
    assert body["currentVersion"]["version"] == 3
    assert body["currentVersion"]["baseVersion"] == 1
    assert body["currentVersion"]["conflictingProperties"] == ["placement_status"]
    assert body["currentVersion"]["data"]["placement_status"] == "ongoing"


def test_update__of_an_unknown_entity_records_the_error_and_creates_nothing(client, db,
                                                                           tablet):
    stranger = str(uuid_lib.uuid4())
    submit(client, tablet, follow_up(stranger))
    manifest(client, tablet)  # catches up
    marker = db.scalar(select(EntitySubmission))
    assert marker.outcome == "error"
    assert marker.details["problem"]["code"] == 404.8
    assert count(db, Entity) == 0


def test_update__a_non_v4_id_or_a_missing_label_is_an_error(client, db, tablet):
    xml, _ = registration()
    root = etree.fromstring(xml)
    _entity_el(root).find(f"{{{XF}}}label").text = "  "
    submit(client, tablet, etree.tostring(root))
    submit(client, tablet, follow_up(str(uuid_lib.UUID(int=7))))
    manifest(client, tablet)
    codes = sorted(m.details["problem"]["code"] for m in db.scalars(select(EntitySubmission)))
    assert codes == [400.28, 400.28]
    assert count(db, Entity) == 0


def test_sync__twice_applies_each_submission_once(client, db, project, tablet):
    xml, expert = registration()
    submit(client, tablet, xml)
    submit(client, tablet, follow_up(expert))
    first = svc.sync_entities(db, project.id)
    second = svc.sync_entities(db, project.id)
    assert (first.applied, second.applied) == (2, 0)
    assert count(db, Entity) == 1
    assert count(db, EntityVersion) == 2
    assert count(db, EntitySubmission) == 2
    # A resend of the same instance is not a new version: nothing more to apply.
    submit(client, tablet, xml)
    assert svc.sync_entities(db, project.id).applied == 0


def test_sync__a_job_catches_every_project_up(client, db, project, tablet):
    from server.models import Job

    submit(client, tablet, registration()[0])
    result = svc.sync_job(db, Job(kind="entities.sync", payload={}))
    assert result["projects"][str(project.id)]["applied"] == 1
    assert count(db, Entity) == 1


# -- the REST API ----------------------------------------------------------------------------

def test_api__datasets_properties_entities_and_csv(client, make, project, auth, tablet):
    xml, expert = registration(code="DX-0000aaaa")
    submit(client, tablet, xml)
    submit(client, tablet, follow_up(expert))
    base = f"/v1/projects/{project.id}/datasets"

    listed = client.get(base, headers=auth)
    assert listed.status_code == 200
    assert [(d["name"], d["projectId"], d["approvalRequired"]) for d in listed.get_json()] == [
        (DATASET, project.id, False)]
    extended = client.get(base, headers={**auth, "X-Extended-Metadata": "true"}).get_json()
    assert (extended[0]["entities"], extended[0]["conflicts"]) == (1, 0)

    meta = client.get(f"{base}/{DATASET}", headers=auth).get_json()
    assert [p["name"] for p in meta["properties"]] == [*REGISTRY_PROPERTIES, "placement_status"]
    by_name = {p["name"]: p for p in meta["properties"]}
    assert [f["xmlFormId"] for f in by_name["placement_status"]["forms"]] == [FOLLOW_UP]
    assert sorted(f["xmlFormId"] for f in meta["sourceForms"]) == [REGISTRY, FOLLOW_UP]
    assert [f["xmlFormId"] for f in meta["linkedForms"]] == [FOLLOW_UP]

    entities = client.get(f"{base}/{DATASET}/entities", headers=auth).get_json()
    assert [(e["uuid"], e["currentVersion"]["version"]) for e in entities] == [(expert, 2)]
    assert "data" not in entities[0]["currentVersion"]

    one = client.get(f"{base}/{DATASET}/entities/{expert.upper()}", headers=auth).get_json()
    assert one["currentVersion"]["label"] == "DX-0000aaaa – Paediatric nurse"
    assert one["currentVersion"]["data"]["placement_status"] == "completed"
    assert one["currentVersion"]["dataReceived"] == {"placement_status": "completed"}
    versions = client.get(f"{base}/{DATASET}/entities/{expert}/versions", headers=auth)
    assert [(v["version"], v["current"]) for v in versions.get_json()] == [(1, False),
                                                                           (2, True)]

    exported = client.get(f"{base}/{DATASET}/entities.csv", headers=auth)
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    (row,) = rows(exported.data)
    assert (row["__id"], row["__version"], row["__updates"]) == (expert, "2", "1")
    assert row["__creatorName"] == "Tablet Dar"
    assert client.get(f"{base}/{DATASET}/entities.csv", headers={
        **auth, "If-None-Match": exported.headers["ETag"]}).status_code == 304

    assert client.get(f"{base}/{DATASET}/entities/{uuid_lib.uuid4()}",
                      headers=auth).status_code == 404
    assert client.get(f"{base}/nothing", headers=auth).status_code == 404
    viewer = make.auth(make.member(project, "viewer"))
    assert client.get(f"{base}/{DATASET}/entities", headers=viewer).status_code == 200
    outsider = make.auth(make.user())
    assert client.get(f"{base}/{DATASET}/entities", headers=outsider).status_code == 404
    assert client.get(base).status_code == 401


# -- two sessions at once, with real commits ---------------------------------------------------

PEOPLE = """
| survey   |            |           |                |         |
|          | type       | name      | label          | save_to |
|          | text       | person    | Name           | full_name |
| entities |            |           |                |         |
|          | list_name  | label     |                |         |
|          | people     | ${person} |                |         |
| settings |            |           |                |         |
|          | form_title | form_id   | version        |         |
|          | People     | people_reg | 1             |         |
"""
RACED = 12


def _person(i: int) -> bytes:
    return (f'<?xml version="1.0"?><data id="people_reg" version="1"><person>P{i}</person>'
            f"<meta><instanceID>uuid:{uuid_lib.uuid4()}</instanceID>"
            f'<entity dataset="people" create="1" id="{uuid_lib.uuid4()}">'
            f"<label>P{i}</label></entity></meta></data>").encode()


@pytest.fixture
def committed(tmp_path):
    """A migrated scratch database of the suite's backend, for commits the test can see
    from two sessions: settings, a session factory, and the blob store."""
    import os
    from contextlib import ExitStack

    from sqlalchemy.orm import sessionmaker

    from server.db import create_db_engine
    from server.settings import Settings
    from server.storage import LocalBlobStore
    from tests.conftest import TEST_DATABASE_URL_VAR
    from tests.support.scratch import migrated_scratch_postgres

    with ExitStack() as stack:
        url = os.environ.get(TEST_DATABASE_URL_VAR)
        if url and url.startswith("postgresql"):
            settings, engine = stack.enter_context(
                migrated_scratch_postgres(url, tmp_path, prefix="dodoso_entities"))
        else:
            from server import migrate

            settings = Settings(env="test", database_url=f"sqlite:///{tmp_path / 'e.db'}",
                                blob_store=str(tmp_path / "blobs"), odk_validate="off")
            migrate.upgrade(settings)
            engine = create_db_engine(settings)
            stack.callback(engine.dispose)
        yield settings, sessionmaker(bind=engine, expire_on_commit=False), \
            LocalBlobStore(tmp_path / "blobs")


@pytest.mark.parametrize("dataset_exists", [True, False])
def test_sync__two_sessions_at_once_create_each_entity_once(committed, dataset_exists):
    """Both sessions see the same backlog: the dataset's row lock (or, for a new dataset, its
    unique name) makes the second wait and then find nothing left."""
    import threading

    from server.services.projects import create_project
    from sync.ingest import Envelope, ingest_submission
    from tests.support.forms import publish_md

    settings, sessions, store = committed
    with sessions() as db:
        project = create_project(db, SYSTEM, name="Race")
        publish_md(db, forms_svc.FormsContext(settings, store), SYSTEM, project, PEOPLE,
                   filename="people.xlsx")
        for i in range(RACED):
            ingest_submission(db, store, project_id=project.id, xml=_person(i), files={},
                              envelope=Envelope(actor=SYSTEM))
        if dataset_exists:
            assert list(svc.sync_datasets(db, project.id)) == ["people"]
        db.commit()
        project_id = project.id

    barrier, reports, failures = threading.Barrier(2), [], []

    def catch_up() -> None:
        try:
            with sessions() as db:
                barrier.wait(timeout=30)
                reports.append(svc.sync_entities(db, project_id))
                db.commit()
        except Exception as exc:  # reported below, with the other thread's outcome
            failures.append(exc)

    threads = [threading.Thread(target=catch_up) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert failures == []
    assert sorted(r.applied for r in reports) == [0, RACED]
    with sessions() as db:
        assert count(db, Entity) == RACED
        assert count(db, EntitySubmission) == RACED
        assert len({e.uuid for e in db.scalars(select(Entity))}) == RACED


def test_publish__the_dataset_exists_from_the_publish_on(db, ctx, project, compiled_once):
    from server.models import Dataset

    install_forms(db, ctx, SYSTEM, project, [REGISTRY])
    found = db.scalar(select(Dataset).where(Dataset.project_id == project.id,
                                            Dataset.name == DATASET))
    assert found is not None  # no entity list was read: the publish wrote it
