"""Background exports end to end: queued by the API, run by the job worker (``run_one``),
stored as a blob (local disk and S3 through moto's server), fetched signed in and through
the token link, expired (410, file let go), failed and retried."""

# ruff: noqa: F811  (the shared fixtures come from test_exports and are parameters here)

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager

import pytest
import requests
from sqlalchemy import func, select

from server.db import utcnow
from server.models import AuditEvent, Blob, Export, Job
from server.services import exports as svc
from server.services.jobs import run_one
from server.storage import BlobStoreUnavailable, LocalBlobStore, S3BlobStore
from tests.fixtures_s3 import s3_settings
from tests.integration.test_exports import (  # noqa: F401  (fixtures)
    PHOTO,
    collect,
    get,
    read_csv,
    read_zip,
    submitted,
    url,
    v1,
)


@contextmanager
def blob_store(app, db, store):
    """The app and the export job both use ``store`` for the test's duration."""
    services = app.extensions["dodoso"]
    original = services.blob_store
    services.blob_store = store
    db.info[svc.STORE_KEY] = store
    try:
        yield store
    finally:
        services.blob_store = original
        db.info.pop(svc.STORE_KEY, None)


@pytest.fixture
def store(app, db):
    with blob_store(app, db, app.extensions["dodoso"].blob_store) as local:
        yield local


def request(client, project, auth, **body):
    r = client.post(url(project, "exports"), json=body, headers=auth)
    assert r.status_code == 202, r.get_json()
    return r.get_json()


def work(db) -> Job:
    job = run_one(db, "test-worker")
    assert job is not None
    return job


def token_path(new: dict) -> str:
    return new["tokenUrl"].split("dodoso.test", 1)[1]


def test_background__queued_run_and_downloaded_signed_in_and_by_link(client, project, auth,
                                                                     manager, submitted,
                                                                     store, db):
    new = request(client, project, auth, format="csv.zip", splitSelectMultiples=True)
    assert new["status"] == "queued" and new["progress"] == 0.0
    assert new["downloadUrl"] is None and new["rowCount"] is None
    assert new["tokenUrl"].startswith("https://dodoso.test/v1/exports/")
    assert len(new["token"]) >= 40
    export = db.get(Export, new["id"])
    assert export.token_sha256 == svc.token_digest(new["token"])  # only the hash is kept
    assert new["token"] not in str(export.options)
    not_yet = client.get(token_path(new))
    assert not_yet.status_code == 409 and not_yet.get_json()["code"] == 409.41

    job = work(db)
    assert (job.kind, job.status, job.progress) == ("export", "succeeded", 1.0)
    status = get(client, project, auth, f"exports/{new['id']}").get_json()
    assert status["status"] == "succeeded" and status["progress"] == 1.0
    assert status["rowCount"] == 2
    assert status["filename"] == "migrants.zip"
    expires = dt.datetime.fromisoformat(status["expiresAt"])
    assert dt.timedelta(days=6) < expires - utcnow() <= svc.EXPORT_TTL
    assert status["downloadUrl"].endswith(f"/forms/migrants/exports/{new['id']}/download")

    signed_in = client.get(status["downloadUrl"].split("dodoso.test", 1)[1], headers=auth)
    assert signed_in.status_code == 200
    assert 'filename="migrants.zip"' in signed_in.headers["Content-Disposition"]
    assert status["byteCount"] == len(signed_in.data)
    by_link = client.get(token_path(new))  # no credentials at all
    assert by_link.status_code == 200 and by_link.data == signed_in.data

    files = read_zip(by_link.data)
    streamed = read_zip(get(client, project, auth,
                            "submissions.csv.zip?splitSelectMultiples=true").data)
    assert files == streamed
    assert files["media/id.jpg"] == PHOTO
    assert "langs/fr" in read_csv(files["migrants.csv"])[0]
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "form.submission.export")) == 2


def test_background__every_format_and_the_filters_apply(client, project, auth, submitted,
                                                        store, db):
    wanted = {"csv": "migrants.csv", "xlsx": "migrants.xlsx", "geojson": "migrants.geojson",
              "attachments.zip": "migrants-attachments.zip"}
    ids = {fmt: request(client, project, auth, format=fmt, formVersion=["1"])["id"]
           for fmt in wanted}
    for _ in wanted:
        work(db)
    for fmt, filename in wanted.items():
        status = get(client, project, auth, f"exports/{ids[fmt]}").get_json()
        assert (status["status"], status["filename"], status["rowCount"]) == (
            "succeeded", filename, 1), fmt
    csv_export = get(client, project, auth, f"exports/{ids['csv']}/download")
    assert [r["KEY"] for r in read_csv(csv_export.data)] == ["uuid:a"]
    listed = get(client, project, auth, "exports").get_json()
    assert [e["id"] for e in listed] == sorted(ids.values(), reverse=True)


def test_background__unknown_token_is_404_and_a_new_link_replaces_the_old(client, project,
                                                                         auth, submitted,
                                                                         store, db):
    new = request(client, project, auth, format="csv")
    work(db)
    assert client.get("/v1/exports/not-a-real-token").status_code == 404
    assert client.get("/v1/exports/" + "x" * 300).status_code == 404
    r = client.post(url(project, f"exports/{new['id']}/link"), headers=auth)
    assert r.status_code == 200
    fresh = r.get_json()
    assert client.get(token_path(new)).status_code == 404
    assert client.get(token_path(fresh)).status_code == 200


def test_background__expired_exports_answer_410_and_let_their_file_go(client, project, auth,
                                                                      submitted, store, db):
    new = request(client, project, auth, format="csv")
    work(db)
    export = db.get(Export, new["id"])
    blob_id = export.blob_id
    export.expires_at = utcnow() - dt.timedelta(seconds=1)
    db.commit()
    assert client.get(token_path(new)).status_code == 410  # before any sweep
    assert client.get(token_path(new)).get_json()["code"] == 410.1
    db.add(Job(kind=svc.EXPIRE_JOB, payload={}))
    db.commit()
    assert work(db).result == {"expired": 1}
    export = db.get(Export, new["id"])
    assert (export.status, export.blob_id) == ("expired", None)
    assert db.get(Blob, blob_id) is not None  # the clean-up decides about the blob itself
    assert client.get(token_path(new)).status_code == 410
    signed_in = client.get(url(project, f"exports/{new['id']}/download"), headers=auth)
    assert signed_in.status_code == 410
    status = get(client, project, auth, f"exports/{new['id']}").get_json()
    assert status["status"] == "expired" and status["downloadUrl"] is None


def test_background__a_failure_is_retried_then_reported(client, project, auth, submitted,
                                                        app, db, tmp_path):
    class Down(LocalBlobStore):
        def put(self, *args, **kwargs):
            raise BlobStoreUnavailable("the disk is gone")

    with blob_store(app, db, Down(tmp_path / "down")):
        new = request(client, project, auth, format="csv")
        job = work(db)
        assert job.status == "queued" and "disk is gone" in job.error
        status = get(client, project, auth, f"exports/{new['id']}").get_json()
        assert status["status"] == "queued"
        assert status["error"] == "The export failed; request it again."  # no internals
        for _ in range(2):
            job = db.get(Job, job.id)
            job.run_after = utcnow() - dt.timedelta(seconds=1)
            db.commit()
            job = work(db)
        assert job.status == "failed"
        status = get(client, project, auth, f"exports/{new['id']}").get_json()
        assert status["status"] == "failed"
        r = client.get(token_path(new))
        assert r.status_code == 409 and r.get_json()["details"]["status"] == "failed"


def test_background__on_s3_the_link_redirects_to_a_short_lived_url(client, project, auth,
                                                                   submitted, app, db,
                                                                   settings, s3_endpoint,
                                                                   s3_bucket):
    s3 = S3BlobStore(s3_settings(settings, s3_endpoint, s3_bucket))
    with blob_store(app, db, s3):
        new = request(client, project, auth, format="csv.zip", attachments=False)
        work(db)
        r = client.get(token_path(new))
        assert r.status_code == 302
        location = r.headers["Location"]
        assert location.startswith(s3_endpoint) and "X-Amz-Expires=" in location
        fetched = requests.get(location, timeout=10)
        assert fetched.status_code == 200
        assert "migrants.csv.zip" in fetched.headers["Content-Disposition"]
        assert set(read_zip(fetched.content)) == {"migrants.csv", "migrants-roster.csv",
                                                  "migrants-stays.csv"}
        signed_in = client.get(url(project, f"exports/{new['id']}/download"), headers=auth)
        assert signed_in.status_code == 302
