"""Submissions racing each other and failing half-way, against a real threaded server with
real commits (hostile-inputs.md B5 76–78, 81–82).

No savepoint here: each backend gets a scratch database (a SQLite file under a temp
directory; a throwaway ``dodoso_conc_<hex>`` PostgreSQL database when
DODOSO_TEST_DATABASE_URL points at PostgreSQL, dropped afterwards), migrated, set up through
the services, and served by Werkzeug's threaded server on 127.0.0.1. Clients are ``requests``
in threads lined up on a barrier. Every test uses its own instanceIDs and attachment bytes, so
the tests share one server per backend.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
import requests
from lxml import etree
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import BaseWSGIServer, make_server

from server import migrate
from server.app import create_app
from server.auth.actor import SYSTEM, Actor
from server.errors import Problems, _ProblemType
from server.models import (
    AuditEvent,
    Blob,
    Submission,
    SubmissionAttachment,
    SubmissionDef,
    SubmissionRow,
)
from server.services import accounts, app_users, projects
from server.services import forms as form_service
from server.settings import Settings
from server.storage import BlobStoreUnavailable, LocalBlobStore
from sync.openrosa import RESPONSE_NS, SUBMISSION_SUCCESS
from tests.conftest import PASSWORD, TEST_DATABASE_URL_VAR
from tests.integration.test_openrosa_hostile import (
    MULTIPART,
    OR,
    instance,
    multipart,
    part,
    survey,
    xml_part,
)
from tests.support.scratch import scratch_postgres_database
from tests.support.xlsx import XLSX, md_to_xlsx

CLIENTS = 10
BACKENDS = ["sqlite", "postgresql"]


# -- a blob store that fails when told to ----------------------------------------------------

class FlakyBlobStore(LocalBlobStore):
    """A local store whose next ``failures`` puts raise BlobStoreUnavailable (fault
    injection: the disk or S3 is gone), after which it works again."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.failures = 0
        self._lock = threading.Lock()

    def put(self, key: str, fileobj: IO[bytes], **kw) -> None:  # type: ignore[override]
        with self._lock:
            failing = self.failures > 0
            if failing:
                self.failures -= 1
        if failing:
            raise BlobStoreUnavailable(f"blob {key}: injected outage")
        super().put(key, fileobj, **kw)


# -- a scratch database and a live server -----------------------------------------------------

@contextmanager
def scratch_database_url(backend: str, tmp: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'concurrency.db'}"
        return
    base_url = os.environ.get(TEST_DATABASE_URL_VAR)
    if not base_url or make_url(base_url).get_backend_name() != "postgresql":
        pytest.skip(f"PostgreSQL not configured: set {TEST_DATABASE_URL_VAR}=postgresql://…")
    with scratch_postgres_database(base_url, tmp, prefix="dodoso_conc") as url:
        yield url


@dataclass
class Live:
    base_url: str
    key_url: str
    store: FlakyBlobStore
    sessions: sessionmaker[Session]

    @property
    def submission_url(self) -> str:
        return f"{self.base_url}{self.key_url}/submission?deviceID=collect%3Arace"

    def post(self, xml: bytes, files: dict[str, bytes] | None = None) -> requests.Response:
        parts = [("xml_submission_file", ("submission.xml", xml, "text/xml"))]
        parts += [(n, (n, c, "image/jpeg")) for n, c in (files or {}).items()]
        return requests.post(self.submission_url, files=parts, headers=OR, timeout=60)


def settings_for(database_url: str, tmp: Path) -> Settings:
    return Settings(
        env="test", database_url=database_url, blob_store=str(tmp / "blobs"),
        secret_key="test-secret-key-test-secret-key-test", public_url="http://127.0.0.1",
        log_format="console", log_level="WARNING", argon2_time_cost=1, argon2_memory_kib=64,
        odk_validate="off", db_pool_size=CLIENTS + 2)


def set_up_collect(app, settings: Settings) -> str:
    """A project, a designer, the published form ``hh`` and an app user assigned to it,
    through the services, committed. Returns the app user's key URL."""
    services = app.extensions["dodoso"]
    with services.sessions() as db:
        designer = accounts.create_user(db, services.passwords, SYSTEM,
                                        email="designer@example.org", password=PASSWORD)
        project = projects.create_project(db, SYSTEM, name="Concurrency")
        projects.assign_role(db, SYSTEM, project, designer, "designer")
        form = form_service.create_form(
            db, form_service.FormsContext(settings=settings, store=services.blob_store),
            Actor(user=designer), project,
            form_service.Upload(md_to_xlsx(survey()), "hh.xlsx", XLSX),
            publish=True, ignore_warnings=True)
        new = app_users.create_app_user(db, SYSTEM, project, display_name="Tablet")
        form_service.assign_app_user(db, SYSTEM, form, new.app_user.id)
        db.commit()
        return f"/v1/key/{new.token}/projects/{project.id}"


@pytest.fixture(scope="module", params=BACKENDS)
def live(request, tmp_path_factory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp(f"concurrency-{request.param}")
    with scratch_database_url(request.param, tmp) as url:
        settings = settings_for(url, tmp)
        migrate.upgrade(settings)
        store = FlakyBlobStore(tmp / "blobs")
        app = create_app(settings, blob_store=store)
        services = app.extensions["dodoso"]
        try:
            key_url = set_up_collect(app, settings)
            server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
            thread = threading.Thread(target=server.serve_forever, name="dodoso-live",
                                      daemon=True)
            thread.start()
            try:
                yield Live(f"http://127.0.0.1:{server.server_port}", key_url, store,
                           services.sessions)
            finally:
                server.shutdown()
                server.server_close()
                thread.join(timeout=10)
        finally:
            services.engine.dispose()


# -- helpers ----------------------------------------------------------------------------------

def race(n: int, send: Callable[[int], requests.Response]) -> list[requests.Response]:
    """``n`` requests released at the same moment, one per thread."""
    barrier = threading.Barrier(n)

    def one(i: int) -> requests.Response:
        barrier.wait(timeout=30)
        return send(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def message(body: bytes) -> tuple[str | None, str]:
    root = etree.fromstring(body)
    assert root.tag == f"{{{RESPONSE_NS}}}OpenRosaResponse", body
    found = root.find(f"{{{RESPONSE_NS}}}message")
    assert found is not None
    return found.get("nature"), found.text or ""


def is_problem(r: requests.Response, problem: _ProblemType) -> bool:
    nature, text_ = message(r.content)
    pattern = re.sub(r"\\\{\w+\\\}", ".*", re.escape(problem.template))
    return (r.status_code == int(problem.code) and nature == "error"
            and re.fullmatch(pattern, text_, re.S) is not None)


def is_success(r: requests.Response) -> bool:
    return r.status_code == 201 and message(r.content) == ("", SUBMISSION_SUCCESS)


@dataclass(frozen=True)
class Stored:
    submissions: int
    defs: list[SubmissionDef]
    attachments: list[tuple[str, int | None]]
    rows: int


def stored(live: Live, instance_id: str) -> Stored:
    with live.sessions() as db:
        defs = list(db.scalars(select(SubmissionDef)
                               .where(SubmissionDef.instance_id == instance_id)))
        ids = [d.id for d in defs]
        return Stored(
            submissions=db.scalar(select(func.count()).select_from(Submission)
                                  .where(Submission.instance_id == instance_id)),
            defs=defs,
            attachments=[(a.name, a.blob_id) for a in db.scalars(
                select(SubmissionAttachment)
                .where(SubmissionAttachment.submission_def_id.in_(ids)))],
            rows=db.scalar(select(func.count()).select_from(SubmissionRow)
                           .where(SubmissionRow.submission_def_id.in_(ids))),
        )


def blob_rows(live: Live, content: bytes) -> list[Blob]:
    with live.sessions() as db:
        return list(db.scalars(select(Blob).where(
            Blob.sha256 == hashlib.sha256(content).hexdigest())))


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def temp_files(store: LocalBlobStore) -> list[Path]:
    return [p for p in store.root.rglob(".tmp-*")] if store.root.exists() else []


def unique(label: str) -> bytes:
    """Attachment bytes no other test (or earlier run on this store) has used."""
    return f"{label}:{secrets.token_hex(16)}".encode() * 512


# == B5.77 identical POSTs ====================================================================

def test_identical_posts__all_201_and_stored_once(live):
    xml = instance("uuid:race-identical", photo="photo.jpg")
    photo = unique("identical")
    responses = race(CLIENTS, lambda _: live.post(xml, {"photo.jpg": photo}))
    assert [r.status_code for r in responses] == [201] * CLIENTS, \
        [(r.status_code, r.text[:300]) for r in responses]
    assert all(is_success(r) for r in responses)
    found = stored(live, "uuid:race-identical")
    assert found.submissions == 1
    assert len(found.defs) == 1
    assert found.defs[0].xml == xml.decode()
    assert (found.defs[0].attachments_expected, found.defs[0].attachments_present) == (1, 1)
    assert len(found.attachments) == 1
    name, blob_id = found.attachments[0]
    assert name == "photo.jpg" and blob_id is not None
    blobs = blob_rows(live, photo)
    assert [b.id for b in blobs] == [blob_id]
    with live.store.open(sha(photo)) as f:
        assert f.read() == photo
    assert found.rows == 2  # the submission and its one repeat row, once
    assert temp_files(live.store) == []


# == B5.78 same instanceID, different XML =====================================================

def test_different_xml_posts__one_201_the_rest_409_and_one_requests_bytes(live):
    xmls = [instance("uuid:race-different", name=f"Enumerator {i}", photo="photo.jpg")
            for i in range(CLIENTS)]
    photos = [unique(f"different-{i}") for i in range(CLIENTS)]
    responses = race(CLIENTS, lambda i: live.post(xmls[i], {"photo.jpg": photos[i]}))
    statuses = [r.status_code for r in responses]
    assert sorted(statuses) == [201] + [409] * (CLIENTS - 1), \
        [(r.status_code, r.text[:300]) for r in responses]
    winner = statuses.index(201)
    assert is_success(responses[winner])
    assert all(is_problem(r, Problems.xml_conflict) for r in responses if r.status_code == 409)
    found = stored(live, "uuid:race-different")
    assert found.submissions == 1 and len(found.defs) == 1
    assert found.defs[0].xml.encode() == xmls[winner]
    [(name, blob_id)] = found.attachments
    assert [b.id for b in blob_rows(live, photos[winner])] == [blob_id]
    for i, photo in enumerate(photos):
        if i != winner:
            assert blob_rows(live, photo) == []
            assert not live.store.exists(sha(photo))
    with live.sessions() as db:
        conflicts = db.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "submission.conflict"))
    assert conflicts == CLIENTS - 1


# == B5.81 the blob store is down =============================================================

def test_store_outage__503_with_retry_after_nothing_stored_then_201(live):
    xml = instance("uuid:store-outage", photo="photo.jpg")
    photo = unique("outage")
    live.store.failures = 1
    try:
        r = live.post(xml, {"photo.jpg": photo})
    finally:
        hit, live.store.failures = live.store.failures == 0, 0
    assert hit, "the injected outage was never reached"
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert r.headers["X-OpenRosa-Version"] == "1.0"
    assert is_problem(r, Problems.storage_unavailable)
    found = stored(live, "uuid:store-outage")
    assert (found.submissions, found.defs, found.attachments, found.rows) == (0, [], [], 0)
    assert blob_rows(live, photo) == []
    assert not live.store.exists(sha(photo))
    assert temp_files(live.store) == []

    again = live.post(xml, {"photo.jpg": photo})
    assert is_success(again), again.text
    found = stored(live, "uuid:store-outage")
    assert found.submissions == 1 and len(found.defs) == 1
    assert found.attachments == [("photo.jpg", blob_rows(live, photo)[0].id)]


# == B5.82 the bytes are stored, then the commit fails ========================================

def test_commit_failure_after_upload__503_no_rows_then_201(live):
    xml = instance("uuid:commit-lost", photo="photo.jpg")
    photo = unique("commit")
    armed = threading.Event()
    armed.set()

    def lose_commit(session: Session) -> None:
        if armed.is_set():
            armed.clear()
            raise OperationalError("COMMIT", {}, Exception("injected: connection lost"))

    event.listen(live.sessions, "before_commit", lose_commit)
    try:
        r = live.post(xml, {"photo.jpg": photo})
    finally:
        event.remove(live.sessions, "before_commit", lose_commit)
    assert not armed.is_set(), "the injected commit failure was never reached"
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert is_problem(r, Problems.database_unavailable)
    found = stored(live, "uuid:commit-lost")
    assert (found.submissions, found.defs, found.attachments, found.rows) == (0, [], [], 0)
    assert blob_rows(live, photo) == []
    # Bytes before rows: the object stays behind as an orphan, never a row without bytes.
    assert live.store.exists(sha(photo))

    again = live.post(xml, {"photo.jpg": photo})
    assert is_success(again), again.text
    found = stored(live, "uuid:commit-lost")
    assert found.submissions == 1
    assert found.attachments == [("photo.jpg", blob_rows(live, photo)[0].id)]


# == B5.76 the client goes away mid-upload ====================================================

def test_client_disconnect_mid_upload__nothing_stored_then_a_resend_is_201(live):
    xml = instance("uuid:half-sent", photo="photo.jpg")
    photo = unique("disconnect") * 20
    body = multipart(xml_part(xml), part("photo.jpg", photo, content_type="image/jpeg"))
    path = live.submission_url.removeprefix(live.base_url)
    host, port = live.base_url.removeprefix("http://").split(":")
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nX-OpenRosa-Version: 1.0\r\n"
            f"Content-Type: {MULTIPART}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head + body[:len(body) // 2])  # the whole XML part, half the photo
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = answer.split(b"\r\n", 1)[0]
    assert status.split()[1] == b"400", answer[:300]
    found = stored(live, "uuid:half-sent")
    assert (found.submissions, found.defs, found.attachments, found.rows) == (0, [], [], 0)
    assert blob_rows(live, photo) == []
    assert not live.store.exists(sha(photo))
    assert temp_files(live.store) == []

    again = requests.post(live.submission_url, data=body, timeout=60,
                          headers={**OR, "Content-Type": MULTIPART})
    assert is_success(again), again.text
    found = stored(live, "uuid:half-sent")
    assert found.submissions == 1
    with live.store.open(sha(photo)) as f:
        assert f.read() == photo
