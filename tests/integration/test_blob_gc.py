"""The blob clean-up (server/services/gc.py) on local disk and on S3 (moto as a real HTTP
server), on SQLite and PostgreSQL.

Most tests run in the test's rolled-back transaction, with the app storing into this test's
store, and make their garbage the way production does (a replaced form media file, a deleted
draft, bytes a failed request left). The races with ingest need real commits and concurrent
transactions: they run on a scratch PostgreSQL database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from server import migrate, queries
from server.auth.actor import SYSTEM
from server.db import create_db_engine, make_session_factory, utcnow
from server.models import Export, Form, FormAttachment, FormDef, Job
from server.services import gc as gc_service
from server.services import jobs
from server.services.blobs import store_blob
from server.services.forms import assign_app_user
from server.services.gc import collect_garbage
from server.settings import Settings
from server.storage import BlobStore, BlobStoreUnavailable, LocalBlobStore, open_blob_store
from tests.conftest import TEST_DATABASE_URL_VAR
from tests.fixtures_s3 import s3_client, s3_settings
from tests.integration.test_cli import Cli
from tests.integration.test_openrosa import SURVEY, instance, post
from tests.support.scratch import scratch_postgres_database
from tests.support.xlsx import XLSX, md_to_xlsx

MEDIA_SURVEY = """
| survey   |            |          |         |          |
|          | type       | name     | label   | image    |
|          | text       | name     | Name    |          |
|          | note       | welcome  | Welcome | logo.png |
| settings |            |          |         |          |
|          | form_title | form_id  | version |          |
|          | Media      | media    | 1       |          |
"""
SOON = dt.timedelta(minutes=1)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, settings) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return open_blob_store(s3_settings(settings, endpoint, bucket))


@pytest.fixture
def served(app, store) -> Iterator[BlobStore]:
    """The app stores into this test's store."""
    services = app.extensions["dodoso"]
    original, services.blob_store = services.blob_store, store
    yield store
    services.blob_store = original


def everything_old(db: Session, store: BlobStore, **kw) -> gc_service.GcReport:
    """The clean-up as if a minute had passed, with no grace: everything now is garbage."""
    report = collect_garbage(db, store, grace=dt.timedelta(0), now=utcnow() + SOON, **kw)
    assert report.errors == []
    return report


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put_bytes(store: BlobStore, data: bytes) -> str:
    """Bytes in the store and no row: what a request that failed after storing leaves."""
    key = sha(data)
    store.put(key, io.BytesIO(data), size=len(data), sha256=key,
              md5=hashlib.md5(data).hexdigest(), content_type="image/jpeg")
    return key


def has_row(db: Session, sha256: str) -> bool:
    return queries.blobs.get_by_sha256(db, sha256) is not None


def stored(store: BlobStore, sha256: str) -> bytes | None:
    return b"".join(store.iter_chunks(sha256)) if store.exists(sha256) else None


@pytest.fixture
def designer(make, project):
    return make.auth(make.member(project, "designer"))


@pytest.fixture
def project(make):
    return make.project("Clean-up")


def publish(client, project, designer, survey: str, *, publish: bool = True) -> None:
    r = client.post(f"/v1/projects/{project.id}/forms?publish={str(publish).lower()}"
                    "&ignoreWarnings=true", data=md_to_xlsx(survey), content_type=XLSX,
                    headers=designer)
    assert r.status_code == 200, r.get_json()


# -- what is removed, what is kept ---------------------------------------------------------

def test_gc__removes_a_blob_nothing_refers_to_with_its_bytes(db, store):
    data = b"an export nobody downloads any more" * 100
    blob = store_blob(db, store, io.BytesIO(data), content_type="text/csv")
    db.commit()
    report = everything_old(db, store)
    assert not has_row(db, blob.sha256)
    assert not store.exists(blob.sha256)
    assert report.rows_deleted >= 1 and report.bytes_freed >= len(data)


def test_gc__keeps_every_blob_a_row_refers_to(db, client, served, make, project, designer):
    """One blob per kind of reference: a submission's photo, a form's XLSForm, a form media
    file and an export's file."""
    assert {"submission_attachments.blob_id", "form_defs.xlsform_blob_id",
            "form_attachments.blob_id", "exports.blob_id"} <= set(
        queries.blobs.blob_references())
    publish(client, project, designer, SURVEY)
    app_user, token = make.app_user(project)
    form = queries.forms.get(db, project.id, "hh")
    assign_app_user(db, SYSTEM, form, app_user.id)
    db.commit()
    photo = b"\xff\xd8 a photo of the ID card" * 500
    r = post(client, f"/v1/key/{token}/projects/{project.id}", instance(photo="id.jpg"),
             {"id.jpg": photo})
    assert r.status_code == 201, r.data
    form_def = db.scalar(select(FormDef).where(FormDef.form_id == form.id))
    media = store_blob(db, served, io.BytesIO(b"a logo"), content_type="image/png")
    db.add(FormAttachment(form_def_id=form_def.id, name="logo.png", kind="image",
                          blob_id=media.id))
    export = store_blob(db, served, io.BytesIO(b"key,name\n1,Amina\n"), content_type="text/csv")
    db.add(Export(project_id=project.id, form_id=form.id, format="csv", status="succeeded",
                  blob_id=export.id))
    db.commit()
    kept = {sha(photo), media.sha256, export.sha256,
            queries.blobs.get(db, form_def.xlsform_blob_id).sha256}
    assert len(kept) == 4

    everything_old(db, served)
    for key in kept:
        assert has_row(db, key) and served.exists(key), key


def test_gc__a_replaced_form_media_file_is_removed_and_the_new_one_kept(
        db, client, served, project, designer):
    publish(client, project, designer, MEDIA_SURVEY, publish=False)
    url = f"/v1/projects/{project.id}/forms/media/draft/attachments/logo.png"
    old, new = b"\x89PNG old logo", b"\x89PNG new logo"
    for data in (old, new):
        r = client.post(url, data=data, content_type="image/png", headers=designer)
        assert r.status_code == 200, r.get_json()
    everything_old(db, served)
    assert not has_row(db, sha(old)) and not served.exists(sha(old))
    assert has_row(db, sha(new)) and stored(served, sha(new)) == new


def test_gc__a_deleted_drafts_xlsform_is_removed(db, client, served, project, designer):
    publish(client, project, designer, MEDIA_SURVEY, publish=False)
    xlsform = queries.blobs.get(db, db.scalar(
        select(FormDef.xlsform_blob_id).where(FormDef.published_at.is_(None))
        .order_by(FormDef.id.desc()).limit(1)))
    r = client.delete(f"/v1/projects/{project.id}/forms/media/draft", headers=designer)
    assert r.status_code == 200, r.get_json()
    everything_old(db, served)
    assert not has_row(db, xlsform.sha256) and not served.exists(xlsform.sha256)


def test_gc__bytes_without_a_row_are_removed(db, store):
    orphan = put_bytes(store, b"a photo whose request failed after storing it")
    report = everything_old(db, store)
    assert not store.exists(orphan)
    assert report.orphans_deleted >= 1
    # The placeholder row it held the key with while deleting is gone.
    assert not has_row(db, orphan)
    assert db.scalar(text("SELECT count(*) FROM blobs WHERE size = 0 AND md5 = ''")) == 0


def test_gc__the_grace_period_protects_what_is_young(db, store):
    row = store_blob(db, store, io.BytesIO(b"young and unreferenced")).sha256
    orphan = put_bytes(store, b"young bytes of a request still in flight")
    db.commit()
    report = collect_garbage(db, store, grace=dt.timedelta(hours=1))
    assert has_row(db, row) and store.exists(row) and store.exists(orphan)
    assert report.orphans_deleted == 0
    collect_garbage(db, store, grace=dt.timedelta(hours=1), now=utcnow() + dt.timedelta(hours=2))
    assert not has_row(db, row) and not store.exists(row) and not store.exists(orphan)


def test_gc__dry_run_counts_and_removes_nothing(db, store):
    row = store_blob(db, store, io.BytesIO(b"r" * 1000)).sha256
    orphan = put_bytes(store, b"o" * 300)
    db.commit()
    before = collect_garbage(db, store, grace=dt.timedelta(0), now=utcnow() + SOON,
                             dry_run=True)
    assert before.dry_run
    assert before.rows_deleted >= 1 and before.orphans_deleted == 1
    assert before.bytes_freed >= 1300
    assert has_row(db, row) and store.exists(row) and store.exists(orphan)


def test_gc__leftovers_of_killed_uploads_are_removed_once_old(db, store, request):
    if isinstance(store, LocalBlobStore):
        temp = store.root / "ab" / "cd" / ".tmp-killed-mid-write"
        temp.parent.mkdir(parents=True)
        temp.write_bytes(b"half a photo")

        def leftovers() -> int:
            return int(temp.exists())
    else:
        client = s3_client(request.getfixturevalue("s3_endpoint"))
        bucket = request.getfixturevalue("s3_bucket")
        client.create_multipart_upload(Bucket=bucket, Key=store.object_key("a" * 64))

        def leftovers() -> int:
            return len(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))
    if isinstance(store, LocalBlobStore):  # moto dates every multipart upload 2010-11-10
        assert collect_garbage(db, store, grace=dt.timedelta(hours=1)).stale_uploads_removed == 0
    assert leftovers() == 1
    report = collect_garbage(db, store, grace=dt.timedelta(hours=1),
                             now=utcnow() + dt.timedelta(hours=2))
    assert report.stale_uploads_removed == 1
    assert leftovers() == 0


class UndeletableStore(LocalBlobStore):
    def delete(self, key: str) -> None:
        raise BlobStoreUnavailable("injected: the store refuses deletes")


def test_gc__a_store_failure_never_leaves_a_row_without_bytes(db, tmp_path):
    broken = UndeletableStore(tmp_path / "blobs")
    data = b"bytes the store will not let go of"
    store_blob(db, broken, io.BytesIO(data))
    db.commit()
    report = collect_garbage(db, broken, grace=dt.timedelta(0), now=utcnow() + SOON)
    assert report.errors and "injected" in report.errors[0]
    # The row went, the bytes stayed: an orphan, which a later run removes.
    assert not has_row(db, sha(data))
    assert broken.exists(sha(data))
    working = LocalBlobStore(tmp_path / "blobs")
    everything_old(db, working)
    assert not working.exists(sha(data))


def test_gc__the_same_bytes_arriving_after_a_clean_up_are_stored_again(db, store):
    data = b"a photo deleted, then sent again"
    store_blob(db, store, io.BytesIO(data))
    db.commit()
    everything_old(db, store)
    assert not store.exists(sha(data))
    again = store_blob(db, store, io.BytesIO(data))
    db.commit()
    assert again.sha256 == sha(data) and stored(store, sha(data)) == data


def test_gc__negative_grace_is_refused(db, store):
    with pytest.raises(ValueError):
        collect_garbage(db, store, grace=dt.timedelta(minutes=-1))


# -- the job, the schedule and the command --------------------------------------------------

def test_blobs_gc_job__runs_from_the_queue(db, tmp_path):
    store = LocalBlobStore(tmp_path / "worker-blobs")
    db.info[jobs.BLOB_STORE_KEY] = store
    try:
        orphan = put_bytes(store, b"left by a failed request")
        os.utime(store.root / orphan[:2] / orphan[2:4] / orphan, (0, 0))  # 1970: old enough
        job = jobs.enqueue(db, SYSTEM, "blobs.gc", {"graceMinutes": 60})
        db.execute(update(Job).where(Job.id != job.id, Job.status == "queued")
                   .values(run_after=utcnow() + dt.timedelta(days=1)))
        db.commit()
        done = jobs.run_one(db, "test-worker")
        assert done is not None and done.id == job.id
        assert done.status == "succeeded", done.error
        assert done.result["orphansDeleted"] == 1
        assert not store.exists(orphan)
    finally:
        db.info.pop(jobs.BLOB_STORE_KEY, None)


def test_jobs_blob_store__the_workers_settings_name_it(db, tmp_path, monkeypatch):
    monkeypatch.setenv("DODOSO_ENV", "test")
    monkeypatch.setenv("DODOSO_BLOB_STORE", str(tmp_path / "from-settings"))
    try:
        store = jobs.blob_store(db)
        assert isinstance(store, LocalBlobStore)
        assert store.root == tmp_path / "from-settings"
        assert jobs.blob_store(db) is store
    finally:
        db.info.pop(jobs.BLOB_STORE_KEY, None)


def test_enqueue_due__the_clean_up_is_enqueued_once_per_period(db):
    assert jobs.PERIODIC["blobs.gc"] > dt.timedelta(0)
    db.execute(update(Job).where(Job.kind == "blobs.gc").values(
        created_at=utcnow() - dt.timedelta(days=30)))
    now = utcnow()
    due = jobs.enqueue_due(db, now)
    assert "blobs.gc" in {j.kind for j in due}
    assert "blobs.gc" not in {j.kind for j in jobs.enqueue_due(db, now + dt.timedelta(minutes=1))}
    later = now + jobs.PERIODIC["blobs.gc"] + dt.timedelta(seconds=1)
    assert "blobs.gc" in {j.kind for j in jobs.enqueue_due(db, later)}


def test_cli_blobs_gc__dry_run_then_for_real(tmp_path):
    cli = Cli(tmp_path)
    assert cli.run("db", "upgrade").exit_code == 0
    store = LocalBlobStore(tmp_path / "blobs")
    orphan = put_bytes(store, b"bytes of a request that failed")
    path = tmp_path / "blobs" / orphan[:2] / orphan[2:4] / orphan
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    young = put_bytes(store, b"bytes of a request in flight")

    dry = cli.run("blobs", "gc", "--grace-minutes", "30", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Would remove 0 unreferenced blob(s) and 1 stored file(s)" in dry.output
    assert store.exists(orphan)
    real = cli.run("blobs", "gc", "--grace-minutes", "30")
    assert real.exit_code == 0, real.output
    assert "Removed 0 unreferenced blob(s) and 1 stored file(s)" in real.output
    assert not store.exists(orphan) and store.exists(young)
    assert cli.run("blobs", "gc", "--grace-minutes", "-1").exit_code == 2


# -- racing ingest (real commits, concurrent transactions) ----------------------------------

@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Iterator[tuple[Settings, Session]]:
    base_url = os.environ.get(TEST_DATABASE_URL_VAR, "")
    if not base_url.startswith("postgresql"):
        pytest.skip("races need PostgreSQL's row locks (SQLite serialises transactions)")
    tmp = tmp_path_factory.mktemp("gc-races")
    with scratch_postgres_database(base_url, tmp, prefix="dodoso_gc") as url:
        settings = Settings(env="test", database_url=url, blob_store=str(tmp / "blobs"),
                            odk_validate="off")
        migrate.upgrade(settings)
        engine = create_db_engine(settings)
        try:
            yield settings, make_session_factory(engine)
        finally:
            engine.dispose()


def a_form_def(sessions, store: BlobStore) -> int:
    """A row that can refer to a blob (a form version's source file), through the services."""
    from server.services.forms import FormsContext, Upload, create_form
    from server.services.projects import create_project

    with sessions() as db:
        project = create_project(db, SYSTEM, name=f"race {time.monotonic_ns()}")
        create_form(db, FormsContext(Settings(env="test", odk_validate="off"), store), SYSTEM,
                    project, Upload(md_to_xlsx(SURVEY), "hh.xlsx", XLSX), publish=True,
                    ignore_warnings=True)
        db.commit()
        return db.scalar(select(FormDef.id).join(Form, Form.id == FormDef.form_id)
                         .where(Form.project_id == project.id))


def test_gc_race__a_blob_a_transaction_is_referring_to_is_skipped(scratch, tmp_path):
    _, sessions = scratch
    store = LocalBlobStore(tmp_path / "blobs")
    def_id = a_form_def(sessions, store)
    with sessions() as db:
        blob = store_blob(db, store, io.BytesIO(b"about to be referred to"))
        db.commit()
    with sessions() as referring, sessions() as cleaning:
        referring.execute(update(FormDef).where(FormDef.id == def_id)
                          .values(xlsform_blob_id=blob.id))  # holds FOR KEY SHARE on the blob
        report = collect_garbage(cleaning, store, grace=dt.timedelta(0), now=utcnow() + SOON)
        assert report.skipped_in_use >= 1
        assert store.exists(blob.sha256)
        referring.commit()
    with sessions() as db:
        assert has_row(db, blob.sha256) and store.exists(blob.sha256)
        everything_old(db, store)
        assert has_row(db, blob.sha256) and store.exists(blob.sha256)


class PausingDeletes(LocalBlobStore):
    """Signals ``deleting`` and waits for ``go`` before each delete."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.deleting, self.go = threading.Event(), threading.Event()

    def delete(self, key: str) -> None:
        self.deleting.set()
        assert self.go.wait(30)
        super().delete(key)


def test_gc_race__a_request_reusing_a_blob_being_collected_waits_fails_and_its_retry_stores_the_bytes(  # noqa: E501
        scratch, tmp_path):
    """The clean-up has deleted the row (uncommitted) and is deleting the bytes; a request
    still sees the row and refers to it: its foreign-key check waits, then fails once the
    clean-up commits. Run again, as the OpenRosa route does, it writes the bytes afresh."""
    _, sessions = scratch
    store = PausingDeletes(tmp_path / "blobs")
    def_id = a_form_def(sessions, store)
    data = b"an old file that is sent again"
    with sessions() as db:
        old = store_blob(db, store, io.BytesIO(data))
        db.commit()

    reports: list[gc_service.GcReport] = []
    cleaner = threading.Thread(target=lambda: reports.append(_gc_in(sessions, store)))
    cleaner.start()
    assert store.deleting.wait(30)
    outcome: list[object] = []

    def refer() -> None:
        from sqlalchemy.exc import IntegrityError

        for _attempt in range(2):
            with sessions() as db:
                try:
                    blob = store_blob(db, store, io.BytesIO(data))
                    db.execute(update(FormDef).where(FormDef.id == def_id)
                               .values(xlsform_blob_id=blob.id))
                    db.commit()
                    outcome.append(blob.id)
                    return
                except IntegrityError:
                    outcome.append("IntegrityError")

    request = threading.Thread(target=refer)
    request.start()
    time.sleep(1.0)
    assert request.is_alive()  # waiting for the clean-up's lock
    store.go.set()
    cleaner.join(30)
    request.join(30)
    assert outcome[0] == "IntegrityError"
    assert isinstance(outcome[1], int) and outcome[1] != old.id
    assert reports[0].rows_deleted >= 1
    with sessions() as db:
        assert has_row(db, sha(data))
    assert stored(store, sha(data)) == data


def _gc_in(sessions, store) -> gc_service.GcReport:
    """No grace, but the real clock: what starts meanwhile (the retry's upload) is young."""
    with sessions() as db:
        return collect_garbage(db, store, grace=dt.timedelta(0))


class PausingPuts(LocalBlobStore):
    """Signals ``put_done`` after each put, then waits (at most 3 s) for ``resume``."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.put_done, self.resume = threading.Event(), threading.Event()

    def put(self, key, fileobj, **kw) -> None:  # type: ignore[override]
        super().put(key, fileobj, **kw)
        self.put_done.set()
        self.resume.wait(3)


def test_gc_race__an_orphan_whose_bytes_arrive_again_is_not_deleted_under_the_new_row(
        scratch, tmp_path):
    _, sessions = scratch
    store = PausingPuts(tmp_path / "blobs")
    data = b"stored by a request that failed, sent again days later"
    put_bytes(LocalBlobStore(tmp_path / "blobs"), data)

    def ingest() -> None:
        with sessions() as db:
            store_blob(db, store, io.BytesIO(data))
            db.commit()

    request = threading.Thread(target=ingest)
    request.start()
    assert store.put_done.wait(30)
    with sessions() as db:
        collect_garbage(db, LocalBlobStore(tmp_path / "blobs"), grace=dt.timedelta(0))
    store.resume.set()
    request.join(30)
    with sessions() as db:
        assert has_row(db, sha(data))
    assert store.exists(sha(data)), "a committed blob row without its bytes"


class LostCommit(Exception):
    pass


def test_gc__a_lost_commit_does_not_leave_a_reusable_row_without_bytes(db, store, monkeypatch):
    data = b"collected, but the commit never arrived"
    store_blob(db, store, io.BytesIO(data))
    db.commit()
    real_commit = db.commit

    def lose_commit() -> None:
        monkeypatch.setattr(db, "commit", real_commit)
        raise OperationalError("COMMIT", {}, LostCommit("server closed the connection"))

    monkeypatch.setattr(db, "commit", lose_commit)
    with pytest.raises(OperationalError):
        everything_old(db, store)
    db.rollback()
    assert has_row(db, sha(data))  # the delete was rolled back; the bytes are gone
    again = store_blob(db, store, io.BytesIO(data))
    db.commit()
    assert again.sha256 == sha(data)
    assert stored(store, sha(data)) == data, "a blob row reused without its bytes"
