"""The change feed with real commits: creations, edits, reviews, deletes and restores come
through once per poll in order, cursors page and resume, and on PostgreSQL a writer that
commits after a later writer (an earlier timestamp and a lower id, committed last) is not
skipped.

No savepoint here: like the ingest concurrency tests, each backend gets a scratch database
(a SQLite file; a throwaway PostgreSQL database when DODOSO_TEST_DATABASE_URL points at one)
and an app whose requests commit for real. Each test makes its own form, so feeds don't mix.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from server import migrate
from server.app import create_app
from server.auth.actor import SYSTEM, Actor
from server.models import Form, Project, User
from server.services import accounts, projects, review
from server.services.forms import FormsContext
from server.storage import LocalBlobStore
from sync.ingest import Envelope, ingest_submission
from tests.conftest import PASSWORD, bearer
from tests.integration.test_openrosa_concurrency import scratch_database_url, settings_for
from tests.integration.test_openrosa_hostile import instance, survey
from tests.support.api import XML, submit_xml
from tests.support.forms import publish_md

BACKENDS = ["sqlite", "postgresql"]
_forms = itertools.count(1)


@dataclass
class Env:
    app: Flask
    client: FlaskClient
    sessions: sessionmaker[Session]
    store: LocalBlobStore
    project_id: int
    manager_id: int
    headers: dict[str, str]
    backend: str

    def new_form(self) -> Form:
        form_id = f"f{next(_forms)}"
        with self.sessions() as db:
            project = db.get(Project, self.project_id)
            manager = db.get(User, self.manager_id)
            ctx = FormsContext(settings=self.app.extensions["dodoso"].settings, store=self.store)
            form = publish_md(db, ctx, Actor(user=manager), project, survey(form_id),
                              filename=f"{form_id}.xlsx")
            db.commit()
            return form

    def url(self, form: Form) -> str:
        return f"/v1/projects/{self.project_id}/forms/{form.xml_form_id}"

    def submit(self, form: Form, instance_id: str, **kw) -> None:
        submit_xml(self.client, f"{self.url(form)}/submissions", self.headers,
                   instance(instance_id, form_id=form.xml_form_id, **kw))

    def poll(self, form: Form, cursor: str | None = None, limit: int | None = None) -> dict:
        query = {k: v for k, v in (("cursor", cursor), ("limit", limit)) if v is not None}
        r = self.client.get(f"{self.url(form)}/changes", query_string=query,
                            headers=self.headers)
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    def drain(self, form: Form, cursor: str | None, limit: int = 100
              ) -> tuple[list[dict], str]:
        """Poll until there is nothing more right now."""
        seen: list[dict] = []
        while True:
            page = self.poll(form, cursor, limit)
            seen += page["changes"]
            cursor = page["cursor"]
            if not page["hasMore"]:
                return seen, cursor


@pytest.fixture(scope="module", params=BACKENDS)
def env(request, tmp_path_factory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp(f"changes-{request.param}")
    with scratch_database_url(request.param, tmp) as url:
        settings = settings_for(url, tmp)
        migrate.upgrade(settings)
        store = LocalBlobStore(tmp / "blobs")
        app = create_app(settings, blob_store=store)
        services = app.extensions["dodoso"]
        try:
            with services.sessions() as db:
                manager = accounts.create_user(db, services.passwords, SYSTEM,
                                               email="manager@example.org", password=PASSWORD)
                project = projects.create_project(db, SYSTEM, name="Changes")
                projects.assign_role(db, SYSTEM, project, manager, "manager")
                db.commit()
                ids = project.id, manager.id
            client = app.test_client()
            login = client.post("/v1/sessions", json={"email": "manager@example.org",
                                                      "password": PASSWORD})
            headers = bearer(login.get_json()["token"])
            yield Env(app, client, services.sessions, store, *ids, headers, request.param)
        finally:
            services.engine.dispose()


def kinds(changes: list[dict]) -> list[tuple[str, str]]:
    return [(c["instanceId"], c["kind"]) for c in changes]


def test_changes__every_kind_of_change_once_per_poll_in_order(env):
    form = env.new_form()
    first = env.poll(form)
    assert first["changes"] == [] and first["hasMore"] is False
    cursor = first["cursor"]
    env.submit(form, "uuid:c-1")
    env.submit(form, "uuid:c-2")
    changes, cursor = env.drain(form, cursor)
    assert kinds(changes) == [("uuid:c-1", "created"), ("uuid:c-2", "created")]
    assert changes[0]["currentVersion"]["instanceId"] == "uuid:c-1"
    assert changes[0]["reviewState"] is None and changes[0]["updatedAt"] is None

    again, cursor = env.drain(form, cursor)
    assert again == []

    url = f"{env.url(form)}/submissions"
    assert env.client.patch(f"{url}/uuid:c-1", json={"reviewState": "approved"},
                            headers=env.headers).status_code == 200
    changes, cursor = env.drain(form, cursor)
    assert kinds(changes) == [("uuid:c-1", "updated")]
    assert changes[0]["reviewState"] == "approved" and changes[0]["updatedAt"]

    edit = instance("uuid:c-2b", form_id=form.xml_form_id, name="Edited",
                    deprecated="uuid:c-2")
    assert env.client.put(f"{url}/uuid:c-2", data=edit, content_type=XML,
                          headers=env.headers).status_code == 200
    changes, cursor = env.drain(form, cursor)
    assert kinds(changes) == [("uuid:c-2", "updated")]
    assert changes[0]["reviewState"] == "edited"
    assert changes[0]["currentVersion"]["instanceId"] == "uuid:c-2b"

    assert env.client.delete(f"{url}/uuid:c-1", headers=env.headers).status_code == 200
    changes, cursor = env.drain(form, cursor)
    assert kinds(changes) == [("uuid:c-1", "deleted")] and changes[0]["deletedAt"]
    assert env.client.post(f"{url}/uuid:c-1/restore", headers=env.headers).status_code == 200
    r = env.client.post(f"{url}/review", json={"reviewState": "hasIssues"}, headers=env.headers)
    assert r.get_json() == {"count": 2}
    changes, cursor = env.drain(form, cursor)
    assert sorted(kinds(changes)) == [("uuid:c-1", "updated"), ("uuid:c-2", "updated")]
    assert {c["reviewState"] for c in changes} == {"hasIssues"}
    assert all(c["deletedAt"] is None for c in changes)

    # a poll from the start sees each submission once, in its state now
    everything, _ = env.drain(form, None)
    assert sorted(kinds(everything)) == [("uuid:c-1", "updated"), ("uuid:c-2", "updated")]


def test_changes__pages_with_limit_and_resumes(env):
    form = env.new_form()
    cursor = env.poll(form)["cursor"]
    for n in range(7):
        env.submit(form, f"uuid:p-{n}")
    page = env.poll(form, cursor, limit=3)
    assert len(page["changes"]) == 3 and page["hasMore"] is True
    rest, cursor = env.drain(form, page["cursor"], limit=3)
    assert [c["instanceId"] for c in page["changes"] + rest] == [f"uuid:p-{n}"
                                                                 for n in range(7)]
    # a change made between two pages of the same window is not lost
    page = env.poll(form, cursor, limit=1)
    assert page["changes"] == []
    for n in (7, 8):
        env.submit(form, f"uuid:p-{n}")
    first = env.poll(form, page["cursor"], limit=1)
    assert first["hasMore"] is True
    env.client.patch(f"{env.url(form)}/submissions/uuid:p-0", json={"reviewState": "rejected"},
                     headers=env.headers)
    rest, cursor = env.drain(form, first["cursor"], limit=1)
    later, _ = env.drain(form, cursor, limit=1)  # PostgreSQL: in the next window
    got = [c["instanceId"] for c in first["changes"] + rest + later]
    assert set(got) == {"uuid:p-7", "uuid:p-8", "uuid:p-0"}


def test_changes__bad_cursors_limits_and_rights(env):
    form, other = env.new_form(), env.new_form()
    cursor = env.poll(form)["cursor"]
    forged = base64.urlsafe_b64encode(json.dumps(
        {"b": "pg", "f": form.id, "prev": "9:1:", "next": None, "after": None}
        if env.backend == "postgresql" else
        {"b": "sqlite", "f": form.id, "t": "yesterday", "id": 1}).encode()).decode()
    for bad in ("garbage", "e30", forged, cursor + "x"):
        r = env.client.get(f"{env.url(form)}/changes?cursor={bad}", headers=env.headers)
        assert r.status_code == 400, bad
        assert r.get_json()["code"] == 400.36
    r = env.client.get(f"{env.url(other)}/changes?cursor={cursor}", headers=env.headers)
    assert r.get_json()["code"] == 400.36  # a cursor belongs to its form
    for limit in (0, 1001, "x"):
        r = env.client.get(f"{env.url(form)}/changes?limit={limit}", headers=env.headers)
        assert r.status_code == 422
    assert env.client.get(f"{env.url(form)}/changes").status_code == 401
    assert env.client.get(f"/v1/projects/{env.project_id}/forms/nope/changes",
                          headers=env.headers).status_code == 404


def _writer(env: Env, form: Form) -> tuple[Session, User]:
    db = env.sessions()
    return db, db.get(User, env.manager_id)


def _ingest(env: Env, db: Session, user: User, form: Form, instance_id: str) -> None:
    ingest_submission(db, env.store, project_id=env.project_id,
                      xml=instance(instance_id, form_id=form.xml_form_id), files={},
                      envelope=Envelope(actor=Actor(user=user)),
                      form=db.get(Form, form.id))


def test_changes__a_late_commit_with_an_earlier_stamp_is_not_skipped(env):
    """Writer A inserts first (earlier created_at, lower id) but commits after writer B;
    a poll between the two commits sees only B. The next poll must bring A: a feed that
    only moved forward by time or id would have skipped it for good."""
    if env.backend != "postgresql":
        pytest.skip("concurrent writers interleave on PostgreSQL only (SQLite serializes)")
    form = env.new_form()
    cursor = env.poll(form)["cursor"]
    a_db, a_user = _writer(env, form)
    b_db, b_user = _writer(env, form)
    try:
        _ingest(env, a_db, a_user, form, "uuid:late-a")
        a_db.flush()
        _ingest(env, b_db, b_user, form, "uuid:late-b")
        b_db.commit()
        between, cursor = env.drain(form, cursor)
        assert kinds(between) == [("uuid:late-b", "created")]
        a_db.commit()
    finally:
        a_db.close()
        b_db.close()
    after, cursor = env.drain(form, cursor)
    assert kinds(after) == [("uuid:late-a", "created")]
    a, b = (env.client.get(f"{env.url(form)}/submissions/{i}", headers=env.headers).get_json()
            for i in ("uuid:late-a", "uuid:late-b"))
    assert a["createdAt"] < b["createdAt"]  # A really was stamped first
    assert env.drain(form, cursor)[0] == []

    # the same with reviews: A's update stamps first, commits last
    a_db, a_user = _writer(env, form)
    b_db, b_user = _writer(env, form)
    try:
        review.review(a_db, Actor(user=a_user), a_db.get(Form, form.id), "uuid:late-a",
                      "approved")
        review.review(b_db, Actor(user=b_user), b_db.get(Form, form.id), "uuid:late-b",
                      "rejected")
        b_db.commit()
        between, cursor = env.drain(form, cursor)
        assert [(c["instanceId"], c["reviewState"]) for c in between] == [
            ("uuid:late-b", "rejected")]
        a_db.commit()
    finally:
        a_db.close()
        b_db.close()
    after, _ = env.drain(form, cursor)
    assert [(c["instanceId"], c["reviewState"]) for c in after] == [("uuid:late-a", "approved")]


def test_changes__sqlite_writers_take_turns_so_order_is_commit_order(env):
    """On SQLite a second writer waits for the first to commit (BEGIN IMMEDIATE), so a
    stamp taken inside a transaction is never earlier than one already committed."""
    if env.backend != "sqlite":
        pytest.skip("SQLite only")
    form = env.new_form()
    cursor = env.poll(form)["cursor"]
    a_db, a_user = _writer(env, form)
    done = threading.Event()

    def second_writer() -> None:
        b_db, b_user = _writer(env, form)
        try:
            _ingest(env, b_db, b_user, form, "uuid:turn-b")
            b_db.commit()
        finally:
            b_db.close()
            done.set()

    try:
        _ingest(env, a_db, a_user, form, "uuid:turn-a")
        a_db.flush()
        thread = threading.Thread(target=second_writer)
        thread.start()
        time.sleep(0.5)
        assert not done.is_set()  # B waits for A's lock
        a_db.commit()
    finally:
        a_db.close()
    thread.join(timeout=30)
    assert done.is_set()
    changes, _ = env.drain(form, cursor)
    assert kinds(changes) == [("uuid:turn-a", "created"), ("uuid:turn-b", "created")]
