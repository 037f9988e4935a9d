"""Hostile and broken submissions on the OpenRosa surface (hostile-inputs.md, B1 1–37).

Every body here is a real multipart body sent through the Flask test client, built by hand as
bytes where the test client cannot say it (truncated, header-only parts, no boundary, two XML
parts, a thousand parts…). For each case: the status, the OpenRosaResponse error body (its
message is the Problem's, so the assertion is on the registry entry, not on wording), and,
where the case says so, that nothing was stored: no submission, version, attachment, row or
blob row, and no new file anywhere near the blob store.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import re
import resource
import socket
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import func, select

from server import queries
from server.app import create_app
from server.auth.actor import SYSTEM
from server.db import utcnow
from server.errors import Problems, _ProblemType
from server.models import (
    AppUser,
    AuditEvent,
    Blob,
    Project,
    Submission,
    SubmissionAttachment,
    SubmissionDef,
    SubmissionRow,
)
from server.services.forms import assign_app_user
from sync.openrosa import RESPONSE_NS, SUBMISSION_SUCCESS
from tests.conftest import PASSWORD, basic
from tests.forms_corpus import FORMS_DIR
from tests.support.xlsx import XLSX, md_to_xlsx

OR = {"X-OpenRosa-Version": "1.0"}
BOUNDARY = "dodosoHostileBoundary7MA4YWxkTrZu0gW"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
HTTPS = "https://localhost"
STORED_MODELS = (Submission, SubmissionDef, SubmissionAttachment, SubmissionRow, Blob)


def survey(form_id: str = "hh", version: str = "1") -> str:
    return f"""
| survey   |              |           |             |
|          | type         | name      | label       |
|          | text         | name      | Name        |
|          | image        | photo     | Photo       |
|          | image        | sketch    | Sketch      |
|          | begin repeat | members   | Members     |
|          | text         | m_name    | Member name |
|          | end repeat   |           |             |
| settings |              |           |             |
|          | form_title   | form_id   | version     |
|          | Household    | {form_id} | {version}   |
"""


def instance(instance_id: str | None = "uuid:h-0001", *, form_id: str = "hh",
             version: str = "1", name: str = "Amina", photo: str = "", sketch: str = "",
             deprecated: str | None = None, body: str = "") -> bytes:
    """A plaintext instance of :func:`survey`. Values are XML-escaped; ``body`` is not."""
    meta = "" if instance_id is None else f"<instanceID>{_esc(instance_id)}</instanceID>"
    if deprecated:
        meta += f"<deprecatedID>{_esc(deprecated)}</deprecatedID>"
    return (f'<?xml version="1.0"?><data id="{form_id}" version="{version}">'
            f"<name>{_esc(name)}</name><photo>{_esc(photo)}</photo>"
            f"<sketch>{_esc(sketch)}</sketch>{body}"
            "<members><m_name>Juma</m_name></members>"
            f"<meta>{meta}</meta></data>").encode()


def _esc(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- multipart bodies, by hand ----------------------------------------------------------------

def part(name: str | bytes, content: bytes, *, filename: str | bytes | None = None,
         content_type: str | None = "application/octet-stream", field: bool = False) -> bytes:
    """One part. ``field``: a plain form field (no filename, no Content-Type)."""
    raw = name.encode() if isinstance(name, str) else name
    disposition = b'Content-Disposition: form-data; name="' + raw + b'"'
    if not field:
        fname = raw if filename is None else (
            filename.encode() if isinstance(filename, str) else filename)
        disposition += b'; filename="' + fname + b'"'
    headers = disposition + b"\r\n"
    if content_type and not field:
        headers += f"Content-Type: {content_type}\r\n".encode()
    return b"--" + BOUNDARY.encode() + b"\r\n" + headers + b"\r\n" + content + b"\r\n"


def xml_part(xml: bytes, *, field: bool = False) -> bytes:
    return part("xml_submission_file", xml, filename="submission.xml",
                content_type="text/xml", field=field)


def multipart(*parts: bytes, final: bool = True) -> bytes:
    return b"".join(parts) + (b"--" + BOUNDARY.encode() + b"--\r\n" if final else b"")


def send(client, url: str, body: bytes, *, content_type: str = MULTIPART,
         headers: dict[str, str] | None = None, **kw):
    return client.post(f"{url}/submission?deviceID=collect%3Ahostile",
                       input_stream=io.BytesIO(body), content_length=len(body),
                       content_type=content_type, headers=OR if headers is None else headers,
                       **kw)


def submit(client, url: str, xml: bytes, files: dict[str, bytes] | None = None, **kw):
    parts = [xml_part(xml)] + [part(n, c, content_type="image/jpeg")
                               for n, c in (files or {}).items()]
    return send(client, url, multipart(*parts), **kw)


# -- what the server answered ---------------------------------------------------------------

def error_message(r) -> str:
    root = etree.fromstring(r.data)
    assert root.tag == f"{{{RESPONSE_NS}}}OpenRosaResponse", r.data
    message = root.find(f"{{{RESPONSE_NS}}}message")
    assert message is not None and message.get("nature") == "error", r.data
    return message.text or ""


def expect(r, problem: _ProblemType) -> None:
    """The response is ``problem`` on the OpenRosa surface: its status, an OpenRosaResponse
    whose error message is the registry's template (placeholders filled with anything), the
    OpenRosa headers, and nothing a stack trace or path would leave behind."""
    assert r.status_code == int(problem.code), (r.status_code, r.data[:500])
    assert r.headers["X-OpenRosa-Version"] == "1.0"
    assert "text/xml" in r.headers["Content-Type"]
    if r.request.method == "HEAD":
        return
    message = error_message(r)
    pattern = re.sub(r"\\\{\w+\\\}", ".*", re.escape(problem.template))
    assert re.fullmatch(pattern, message, re.S), (message, problem.template)
    for leak in ("Traceback", "File \"", "sqlalchemy", "/tmp/", "site-packages"):
        assert leak not in r.get_data(as_text=True)


def created(r) -> None:
    assert r.status_code == 201, r.data[:500]
    root = etree.fromstring(r.data)
    message = root.find(f"{{{RESPONSE_NS}}}message")
    assert message is not None and message.text == SUBMISSION_SUCCESS


# -- what was stored ------------------------------------------------------------------------

def count(db, model, *where) -> int:
    return db.scalar(select(func.count()).select_from(model).where(*where))


def files_under(root: Path) -> set[Path]:
    if not root.exists():
        return set()
    return {p for p in root.rglob("*") if p.is_file()
            and not p.name.endswith(("-wal", "-shm", "-journal"))}


@dataclass(frozen=True)
class Snapshot:
    counts: dict[str, int]
    files: frozenset[Path]


def snapshot(db, watch: Path) -> Snapshot:
    return Snapshot({m.__name__: count(db, m) for m in STORED_MODELS},
                    frozenset(files_under(watch)))


def new_files(before: Snapshot, watch: Path) -> set[Path]:
    return files_under(watch) - before.files


@dataclass
class Collect:
    """One project as a tablet sees it: a published form ``hh`` and a key assigned to it."""

    project: Project
    app_user: AppUser
    url: str
    designer: dict[str, str]
    root: Path
    watch: Path

    def snapshot(self, db) -> Snapshot:
        return snapshot(db, self.watch)

    def assert_nothing_stored(self, db, before: Snapshot) -> None:
        assert {m.__name__: count(db, m) for m in STORED_MODELS} == before.counts
        assert new_files(before, self.watch) == set()

    def blob_path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def attachments(self, db, definition: SubmissionDef) -> dict[str, bytes | None]:
        """Attachment name → the bytes the blob store holds for it (``None``: not yet)."""
        return {a.name: None if b is None else self.blob_path(b.sha256).read_bytes()
                for a, b in queries.submissions.attachments(db, definition.id)}


def publish(client, project: Project, headers: dict[str, str], md: str) -> dict:
    r = client.post(f"/v1/projects/{project.id}/forms?publish=true&ignoreWarnings=true",
                    data=md_to_xlsx(md), content_type=XLSX, headers=headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def assign(db, project: Project, app_user: AppUser, xml_form_id: str) -> None:
    assign_app_user(db, SYSTEM, queries.forms.get(db, project.id, xml_form_id), app_user.id)
    db.commit()


@pytest.fixture
def collect(app, client, make, db) -> Collect:
    project = make.project("Hostile inputs")
    designer = make.auth(make.member(project, "designer"))
    publish(client, project, designer, survey())
    app_user, token = make.app_user(project)
    assign(db, project, app_user, "hh")
    root = app.extensions["dodoso"].blob_store.root
    # The blob root's parent holds the test database and every other store: a file written
    # through a "../" name would land here.
    return Collect(project, app_user, f"/v1/key/{token}/projects/{project.id}", designer,
                   root, root.parent)


def stored_def(db, instance_id: str) -> SubmissionDef:
    found = db.scalar(select(SubmissionDef).where(SubmissionDef.instance_id == instance_id))
    assert found is not None
    return found


# == B1.1 HEAD ================================================================================

def test_head__without_the_openrosa_header_is_400(client, collect):
    r = client.head(f"{collect.url}/submission")
    assert r.status_code == 400
    assert r.headers["X-OpenRosa-Version"] == "1.0"


def test_head__with_it_is_204_advertising_at_most_the_real_limit(client, collect, app):
    for method in (client.head, client.get):
        r = method(f"{collect.url}/submission", headers=OR)
        assert r.status_code == 204
        assert r.headers["X-OpenRosa-Version"] == "1.0"
        assert r.headers["Date"]
        advertised = int(r.headers["X-OpenRosa-Accept-Content-Length"])
        assert 0 < advertised <= app.config["MAX_CONTENT_LENGTH"]


# == B1.2 / B1.3 credentials =================================================================

def test_auth__user_route_without_credentials_is_401_with_a_basic_challenge(client, collect):
    base = f"/v1/projects/{collect.project.id}"
    for r in (client.head(f"{base}/submission", headers=OR),
              client.post(f"{base}/submission", data=multipart(xml_part(instance())),
                          content_type=MULTIPART, headers=OR),
              client.get(f"{base}/formList", headers=OR)):
        expect(r, Problems.auth_required)
        assert r.headers["WWW-Authenticate"].startswith("Basic ")


def test_auth__unknown_malformed_or_revoked_key_is_403(client, collect, db, make):
    other, other_token = make.app_user(collect.project, "Tablet 2")
    assign(db, collect.project, other, "hh")
    pid = collect.project.id
    altered = other_token[:-1] + ("B" if other_token.endswith("A") else "A")
    for token in ("x" * 64, "not-a-token", "%00", altered):
        before = collect.snapshot(db)
        expect(send(client, f"/v1/key/{token}/projects/{pid}",
                    multipart(xml_part(instance()))), Problems.forbidden)
        collect.assert_nothing_stored(db, before)
    db.get(AppUser, other.id).revoked_at = utcnow()
    db.commit()
    expect(send(client, f"/v1/key/{other_token}/projects/{pid}",
                multipart(xml_part(instance()))), Problems.forbidden)
    expect(client.get(f"/v1/key/{other_token}/projects/{pid}/formList", headers=OR),
           Problems.forbidden)


def test_auth__a_key_revoked_elsewhere_is_refused_although_this_process_verified_it(
        client, collect, db, monkeypatch):
    """The POST after a HEAD takes the app user from the process's cache of verified keys,
    and ingest's first query checks the key again: revoked by another worker (no cache of
    ours was told), it is refused before anything is stored, whatever the body."""
    created(submit(client, collect.url, instance("uuid:cached-1")))  # verified, remembered
    db.get(AppUser, collect.app_user.id).revoked_at = utcnow()  # as another worker would
    db.commit()
    for body in (multipart(xml_part(instance("uuid:cached-2"))),  # a good submission
                 multipart(xml_part(instance("uuid:cached-3", form_id="nope"))),  # unknown form
                 multipart(xml_part(b"<not xml"))):  # unparseable
        before = collect.snapshot(db)
        expect(send(client, collect.url, body), Problems.forbidden)
        collect.assert_nothing_stored(db, before)
    expect(send(client, collect.url, b"garbage", content_type="text/plain"), Problems.forbidden)
    # A HEAD reveals and stores nothing: a key verified seconds ago passes it until the
    # trust window ends.
    assert client.head(f"{collect.url}/submission", headers=OR).status_code == 204
    monkeypatch.setattr("server.services.app_users.HEAD_TRUST_SECONDS", 0.0)
    expect(client.head(f"{collect.url}/submission", headers=OR), Problems.forbidden)
    expect(client.get(f"{collect.url}/formList", headers=OR), Problems.forbidden)


def test_auth__rotating_or_deleting_the_project_ends_a_remembered_key(client, collect, db,
                                                                      make):
    from server.services.app_users import rotate_token

    created(submit(client, collect.url, instance("uuid:rot-1")))
    new = rotate_token(db, SYSTEM, db.get(AppUser, collect.app_user.id))
    db.commit()
    for r in (client.head(f"{collect.url}/submission", headers=OR),
              submit(client, collect.url, instance("uuid:rot-2"))):
        expect(r, Problems.forbidden)
    fresh = f"/v1/key/{new.token}/projects/{collect.project.id}"
    created(submit(client, fresh, instance("uuid:rot-3")))
    db.get(Project, collect.project.id).deleted_at = utcnow()  # no cache of ours was told
    db.commit()
    expect(submit(client, fresh, instance("uuid:rot-4")), Problems.forbidden)
    assert count(db, SubmissionDef, SubmissionDef.instance_id == "uuid:rot-4") == 0


def test_auth__key_of_project_a_on_project_b_is_403(client, collect, make):
    elsewhere = make.project("Elsewhere")
    token_url = collect.url.rsplit("/projects/", 1)[0]
    expect(send(client, f"{token_url}/projects/{elsewhere.id}", multipart(xml_part(instance()))),
           Problems.forbidden)


def test_auth__user_without_rights_is_401_and_the_form_never_leaks(client, collect, make, db):
    viewer = make.member(collect.project, "viewer")
    stranger = make.user()
    base = f"/v1/projects/{collect.project.id}"
    before = collect.snapshot(db)
    for headers in (make.auth(viewer), make.auth(stranger), basic(viewer.email, PASSWORD)):
        for form_id in ("hh", "no_such_form"):
            r = send(client, base, multipart(xml_part(instance(form_id=form_id))),
                     headers={**OR, **headers}, base_url=HTTPS)
            expect(r, Problems.auth_required)
            assert r.headers["WWW-Authenticate"].startswith("Basic ")
    collect.assert_nothing_stored(db, before)
    collector = make.member(collect.project, "data-manager")
    r = send(client, base, multipart(xml_part(instance("uuid:by-user"))),
             headers={**OR, **basic(collector.email, PASSWORD)}, base_url=HTTPS)
    created(r)
    assert stored_def(db, "uuid:by-user").submitter_user_id == collector.id


def test_auth__app_user_not_assigned_to_the_form_is_401_on_post(client, collect, make, db):
    app_user, token = make.app_user(collect.project, "Unassigned tablet")
    url = f"/v1/key/{token}/projects/{collect.project.id}"
    listed = client.get(f"{url}/formList", headers=OR)
    assert listed.status_code == 200 and b"<formID>" not in listed.data
    before = collect.snapshot(db)
    expect(send(client, url, multipart(xml_part(instance()), part("a.jpg", b"x"))),
           Problems.auth_required)
    collect.assert_nothing_stored(db, before)


def test_auth__basic_over_plain_http_is_401_without_checking_the_password(
        client, collect, make, db, monkeypatch):
    from server.services import accounts

    collector = make.member(collect.project, "data-manager")
    checked: list[str] = []
    real = accounts.verify_credentials

    def spy(*args, **kw):
        checked.append(kw.get("email", "?"))
        return real(*args, **kw)

    monkeypatch.setattr(accounts, "verify_credentials", spy)
    base = f"/v1/projects/{collect.project.id}"
    before = collect.snapshot(db)
    for password in (PASSWORD, "wrong"):
        r = send(client, base, multipart(xml_part(instance())),
                 headers={**OR, **basic(collector.email, password)})
        expect(r, Problems.https_only)
        assert r.headers["WWW-Authenticate"].startswith("Basic ")
    assert checked == []
    collect.assert_nothing_stored(db, before)
    # Behind a proxy that is not trusted, X-Forwarded-Proto changes nothing.
    r = send(client, base, multipart(xml_part(instance())),
             headers={**OR, **basic(collector.email, PASSWORD), "X-Forwarded-Proto": "https"})
    expect(r, Problems.https_only)
    assert checked == []
    created(send(client, base, multipart(xml_part(instance("uuid:over-https"))),
                 headers={**OR, **basic(collector.email, PASSWORD)}, base_url=HTTPS))
    assert checked == [collector.email]


# == B1.4–B1.10 the multipart body ============================================================

def test_body__raw_text_xml_is_400_missing_field(client, collect, db):
    before = collect.snapshot(db)
    for content_type in ("text/xml", "application/xml", "application/x-www-form-urlencoded"):
        expect(send(client, collect.url, instance(), content_type=content_type),
               Problems.missing_multipart)
    collect.assert_nothing_stored(db, before)


def test_body__multipart_without_a_boundary_is_400_unparseable(client, collect, db):
    before = collect.snapshot(db)
    body = multipart(xml_part(instance()))
    for content_type in ("multipart/form-data", "multipart/form-data; boundary=",
                         "multipart/form-data; charset=utf-8"):
        expect(send(client, collect.url, body, content_type=content_type),
               Problems.multipart_unparseable)
    collect.assert_nothing_stored(db, before)


def test_body__empty_is_400_unparseable(client, collect, db):
    before = collect.snapshot(db)
    expect(send(client, collect.url, b""), Problems.multipart_unparseable)
    collect.assert_nothing_stored(db, before)


def test_body__truncated_stores_not_even_the_complete_xml_part(client, collect, db):
    before = collect.snapshot(db)
    xml = instance("uuid:truncated", photo="a.jpg")
    complete = multipart(xml_part(xml), part("a.jpg", b"\xff\xd8" + b"x" * 5000))
    for cut in (complete[:-10], complete[:len(xml_part(xml)) + 200],
                multipart(xml_part(xml), final=False), complete[:len(complete) // 2]):
        expect(send(client, collect.url, cut), Problems.multipart_unparseable)
    collect.assert_nothing_stored(db, before)


def test_body__part_with_headers_but_no_body_is_400(client, collect, db):
    before = collect.snapshot(db)
    header_only = (b"--" + BOUNDARY.encode() + b"\r\n"
                   b'Content-Disposition: form-data; name="a.jpg"; filename="a.jpg"\r\n')
    for body in (multipart(xml_part(instance(photo="a.jpg"))).replace(
                     b"--" + BOUNDARY.encode() + b"--", header_only + b"--" + BOUNDARY.encode()
                     + b"--"),
                 header_only + b"--" + BOUNDARY.encode() + b"--\r\n",
                 b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data\r\n\r\n"):
        expect(send(client, collect.url, body), Problems.multipart_unparseable)
    collect.assert_nothing_stored(db, before)


def test_body__only_attachments_is_400_and_they_are_not_stored(client, collect, db):
    before = collect.snapshot(db)
    body = multipart(part("a.jpg", b"\xff\xd8only-an-attachment"),
                     part("submission.xml", instance(), content_type="text/xml"))
    expect(send(client, collect.url, body), Problems.missing_multipart)
    collect.assert_nothing_stored(db, before)


def test_body__two_xml_parts_are_ambiguous(client, collect, db):
    before = collect.snapshot(db)
    one, other = instance("uuid:one"), instance("uuid:other")
    for body in (multipart(xml_part(one), xml_part(other)),
                 multipart(xml_part(one), xml_part(one)),
                 multipart(xml_part(one), xml_part(other, field=True)),
                 multipart(xml_part(one, field=True), xml_part(one, field=True))):
        expect(send(client, collect.url, body), Problems.ambiguous_submission)
    collect.assert_nothing_stored(db, before)


def test_body__xml_as_a_plain_field_is_read_like_a_file_part(client, collect, db):
    xml = instance("uuid:as-field", photo="a.jpg")
    created(send(client, collect.url, multipart(xml_part(xml, field=True),
                                                part("a.jpg", b"\xff\xd8field"))))
    definition = stored_def(db, "uuid:as-field")
    assert definition.xml == xml.decode()
    assert collect.attachments(db, definition) == {"a.jpg": b"\xff\xd8field"}


def test_body__plain_fields_over_500_kb_are_413(client, collect, db):
    before = collect.snapshot(db)
    big = instance("uuid:big-field", name="n" * 600_000)
    expect(send(client, collect.url, multipart(xml_part(big, field=True))), Problems.too_large)
    expect(send(client, collect.url, multipart(xml_part(instance()),
                                               part("note", b"y" * 600_000, field=True))),
           Problems.too_large)
    collect.assert_nothing_stored(db, before)


# == B1.11 / B1.12 the XML itself =============================================================

@pytest.mark.parametrize("xml", [
    pytest.param(b"<test", id="unclosed"),
    pytest.param(b"", id="empty-part"),
    pytest.param(b"just text", id="not-xml"),
    pytest.param(instance().replace(b"Amina", b"Am\xc3\x28na"), id="invalid-utf8"),
    pytest.param(instance().replace(b"Amina", b"\xff\xfe"), id="invalid-utf8-bytes"),
    pytest.param(instance().replace(b'<?xml version="1.0"?>',
                                    b'<?xml version="1.0" encoding="x-klingon"?>'),
                 id="unsupported-encoding"),
    pytest.param(instance().replace(b"Amina", b"Am&#1;na"), id="char-ref-1"),
    pytest.param(instance().replace(b"Amina", b"Am\x01na"), id="control-char"),
    pytest.param(instance().replace(b"Amina", b"Am&#0;na"), id="char-ref-0"),
    pytest.param(instance().replace(b"Amina", b"&undefined;"), id="undefined-entity"),
    pytest.param(instance() + b"<data/>", id="two-roots"),
    pytest.param(instance().replace(b"</data>", b""), id="unterminated-root"),
    pytest.param(instance().replace(b'<?xml version="1.0"?>',
                                    b'<?xml version="1.0" encoding="ISO-8859-1"?>')
                 .replace(b"Amina", b"Am\xe9lie"), id="latin-1"),
    pytest.param(instance().decode().replace('<?xml version="1.0"?>',
                                             '<?xml version="1.0" encoding="UTF-16"?>')
                 .encode("utf-16"), id="utf-16"),
])
@pytest.mark.parametrize("as_field", [False, True], ids=["file-part", "plain-field"])
def test_xml__not_well_formed_or_not_utf8_is_400(client, collect, db, xml, as_field):
    before = collect.snapshot(db)
    expect(send(client, collect.url, multipart(xml_part(xml, field=as_field))),
           Problems.submission_unparseable)
    collect.assert_nothing_stored(db, before)


def test_xml__root_without_an_id_is_400(client, collect, db):
    before = collect.snapshot(db)
    for xml in (instance().replace(b' id="hh"', b""), instance().replace(b'id="hh"', b'id=""'),
                instance().replace(b'id="hh"', b'id="  "')):
        expect(submit(client, collect.url, xml), Problems.submission_unparseable)
    collect.assert_nothing_stored(db, before)


# == B1.13 which form ========================================================================

def test_form__unknown_id_or_another_projects_form_is_404(client, collect, make, db):
    elsewhere = make.project("Elsewhere")
    designer = make.auth(make.member(elsewhere, "designer"))
    publish(client, elsewhere, designer, survey("other"))
    before = collect.snapshot(db)
    expect(submit(client, collect.url, instance(form_id="nope")), Problems.not_found)
    expect(submit(client, collect.url, instance(form_id="other")), Problems.not_found)
    collect.assert_nothing_stored(db, before)


def test_form__closed_is_409_closing_accepts_but_is_not_listed(client, collect, make, db):
    manager = make.auth(make.member(collect.project, "manager"))
    form_url = f"/v1/projects/{collect.project.id}/forms/hh"
    assert client.patch(form_url, json={"state": "closing"}, headers=manager).status_code == 200
    listed = client.get(f"{collect.url}/formList", headers=OR)
    assert listed.status_code == 200 and b"<formID>hh</formID>" not in listed.data
    created(submit(client, collect.url, instance("uuid:while-closing")))
    assert client.patch(form_url, json={"state": "closed"}, headers=manager).status_code == 200
    before = collect.snapshot(db)
    expect(submit(client, collect.url, instance("uuid:while-closed")), Problems.not_accepting)
    expect(submit(client, collect.url, instance("uuid:while-closing")), Problems.not_accepting)
    collect.assert_nothing_stored(db, before)


def test_form__unknown_version_is_404_an_older_published_one_is_accepted(client, collect, db):
    url = f"/v1/projects/{collect.project.id}/forms/hh/draft"
    r = client.post(f"{url}?ignoreWarnings=true", data=md_to_xlsx(survey(version="2")),
                    content_type=XLSX, headers=collect.designer)
    assert r.status_code == 200, r.get_json()
    assert client.post(f"{url}/publish", headers=collect.designer).status_code == 200
    before = collect.snapshot(db)
    for version in ("3", "", "01", "2.0"):
        expect(submit(client, collect.url, instance(version=version)), Problems.version_unknown)
    collect.assert_nothing_stored(db, before)
    created(submit(client, collect.url, instance("uuid:v1", version="1")))
    created(submit(client, collect.url, instance("uuid:v2", version="2")))
    assert stored_def(db, "uuid:v1").form_def_id != stored_def(db, "uuid:v2").form_def_id


# == B1.14–B1.17 DTDs, entities, depth ========================================================

@pytest.fixture
def secret(tmp_path: Path) -> tuple[Path, str]:
    value = f"TOP-SECRET-{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:16]}"
    path = tmp_path / "secret.txt"
    path.write_text(value)
    return path, value


def xxe_variants(secret_path: Path) -> list[bytes]:
    uri = secret_path.as_uri()
    dtd = f'<!DOCTYPE data [<!ENTITY x SYSTEM "{uri}">]>'
    plain = instance("uuid:xxe", name="&x;").replace(b"&amp;x;", b"&x;").decode()
    body = plain.replace('<?xml version="1.0"?>', "")
    return [
        f'<?xml version="1.0"?>{dtd}{body}'.encode(),
        f"{dtd}{body}".encode(),
        b"\xef\xbb\xbf" + f'<?xml version="1.0"?>\n<!-- hi --><?pi x?>\n{dtd}{body}'.encode(),
        f'<?xml version="1.0"?><!DOCTYPE data SYSTEM "{uri}">{body.replace("&x;", "x")}'
        .encode(),
        f'<?xml version="1.0" encoding="UTF-16"?>{dtd}{body}'.encode("utf-16"),
        f'<?xml version="1.0"?>{dtd}{body}'.encode().replace(b"<!DOCTYPE", b"<!doctype"),
    ]


def test_xml__external_entity_is_400_and_the_secret_appears_nowhere(
        client, collect, db, secret, capfd):
    path, value = secret
    before = collect.snapshot(db)
    for xml in xxe_variants(path):
        for body in (multipart(xml_part(xml)), multipart(xml_part(xml, field=True))):
            r = send(client, collect.url, body)
            expect(r, Problems.submission_unparseable)
            assert value.encode() not in r.data
    collect.assert_nothing_stored(db, before)
    stored = [d.xml for d in db.scalars(select(SubmissionDef))]
    stored += [repr((row.data, row.extra)) for row in db.scalars(select(SubmissionRow))]
    stored += [repr(e.details) for e in db.scalars(select(AuditEvent))]
    assert not any(value in text for text in stored)
    for blob_file_path in files_under(collect.watch):
        assert value.encode() not in blob_file_path.read_bytes()
    out, err = capfd.readouterr()
    assert value not in out and value not in err


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE data [<!ENTITY lol "lol">'
    + b"".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'.encode()
               for i in range(1, 10))
    + b']><data id="hh" version="1"><name>&lol9;</name>'
    b"<meta><instanceID>uuid:lol</instanceID></meta></data>")
QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE data [<!ENTITY a "' + b"A" * 50_000 + b'">]>'
    b'<data id="hh" version="1"><name>' + b"&a;" * 50_000 + b"</name>"
    b"<meta><instanceID>uuid:quad</instanceID></meta></data>")


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, QUADRATIC], ids=["billion-laughs", "quadratic"])
def test_xml__entity_expansion_is_400_fast_and_small(client, collect, db, xml):
    before = collect.snapshot(db)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    r = submit(client, collect.url, xml)
    elapsed = time.perf_counter() - started
    expect(r, Problems.submission_unparseable)
    assert elapsed < 1.0
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert grown_kib < 50 * 1024
    collect.assert_nothing_stored(db, before)


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it is offered."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    yield found
    found.close()


def test_xml__external_dtd_and_parameter_entities_never_reach_the_network(
        client, collect, db, listener):
    base = f"http://127.0.0.1:{listener.port}"
    body = instance("uuid:net").decode().replace('<?xml version="1.0"?>', "")
    before = collect.snapshot(db)
    for doctype in (f'<!DOCTYPE data SYSTEM "{base}/evil.dtd">',
                    f'<!DOCTYPE data PUBLIC "-//X//EN" "{base}/public.dtd">',
                    f'<!DOCTYPE data [<!ENTITY % p SYSTEM "{base}/p.dtd"> %p;]>',
                    f'<!DOCTYPE data [<!ENTITY x SYSTEM "{base}/x">]>'):
        for xml in (f'<?xml version="1.0"?>{doctype}{body}'.encode(),
                    f'<?xml version="1.0" encoding="UTF-16"?>{doctype}{body}'.encode("utf-16")):
            expect(submit(client, collect.url, xml), Problems.submission_unparseable)
    collect.assert_nothing_stored(db, before)
    # No DOCTYPE at all, but an XInclude and a schema location: read as data, never fetched.
    xinclude = instance("uuid:xinclude", body=(
        f'<x xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="{base}/inc"/></x>'
    )).replace(b'<data id="hh"', f'<data xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                                  f'xsi:schemaLocation="urn:x {base}/s.xsd" id="hh"'.encode())
    created(submit(client, collect.url, xinclude))
    time.sleep(0.2)
    assert listener.accepted == 0


def test_xml__nesting_100k_deep_is_400_never_500(client, collect, db):
    before = collect.snapshot(db)
    for depth in (200, 300, 100_000):
        deep = instance(f"uuid:deep-{depth}", body="<junk>" * depth + "</junk>" * depth)
        expect(submit(client, collect.url, deep), Problems.submission_unparseable)
    collect.assert_nothing_stored(db, before)
    # Unknown but reasonably deep junk is kept as extra data, walked without recursion.
    created(submit(client, collect.url, instance("uuid:deep-ok",
                                                 body="<junk>" * 120 + "</junk>" * 120)))


def test_xml__part_over_the_cap_is_413_before_parsing(client, collect, db, monkeypatch):
    import sync.ingest

    parsed: list[int] = []
    real = sync.ingest.parse_instance
    monkeypatch.setattr(sync.ingest, "parse_instance",
                        lambda xml: parsed.append(len(xml)) or real(xml))
    before = collect.snapshot(db)
    huge = instance("uuid:huge", name="n" * (20 * 1024 * 1024))
    expect(submit(client, collect.url, huge), Problems.too_large)
    assert parsed == []
    collect.assert_nothing_stored(db, before)


# == B1.19–B1.28 identity, resends, attachments ==============================================

def test_attachments__split_over_posts_then_resent_identically(client, collect, db):
    xml = instance("uuid:split", photo="photo.jpg", sketch="sketch.png")
    photo, sketch = b"\xff\xd8photo-bytes", b"\x89PNGsketch-bytes"
    first = multipart(xml_part(xml), part("photo.jpg", photo),
                      part("*isIncomplete*", b"yes", field=True))
    created(send(client, collect.url, first))
    definition = stored_def(db, "uuid:split")
    assert (definition.attachments_expected, definition.attachments_present) == (2, 1)
    assert collect.attachments(db, definition) == {"photo.jpg": photo, "sketch.png": None}

    created(submit(client, collect.url, xml, {"sketch.png": sketch}))
    definition = stored_def(db, "uuid:split")
    assert (definition.attachments_expected, definition.attachments_present) == (2, 2)
    assert collect.attachments(db, definition) == {"photo.jpg": photo, "sketch.png": sketch}

    before = collect.snapshot(db)
    created(submit(client, collect.url, xml, {"photo.jpg": photo, "sketch.png": sketch}))
    created(submit(client, collect.url, xml, {"photo.jpg": b"other bytes, same name"}))
    collect.assert_nothing_stored(db, before)
    assert collect.attachments(db, stored_def(db, "uuid:split")) == {
        "photo.jpg": photo, "sketch.png": sketch}
    assert count(db, Submission, Submission.instance_id == "uuid:split") == 1


def test_attachments__identical_bytes_are_one_blob_across_submissions(client, collect, db):
    same = b"\xff\xd8shared-bytes"
    created(submit(client, collect.url, instance("uuid:dedup-1", photo="a.jpg"), {"a.jpg": same}))
    created(submit(client, collect.url, instance("uuid:dedup-2", photo="b.jpg",
                                                 sketch="c.jpg"),
                   {"b.jpg": same, "c.jpg": same}))
    sha = hashlib.sha256(same).hexdigest()
    assert count(db, Blob, Blob.sha256 == sha) == 1
    assert collect.blob_path(sha).read_bytes() == same


def test_attachments__referenced_but_not_sent_leaves_it_incomplete(client, collect, db):
    xml = instance("uuid:missing", photo="photo.jpg")
    created(submit(client, collect.url, xml))
    definition = stored_def(db, "uuid:missing")
    assert (definition.attachments_expected, definition.attachments_present) == (1, 0)
    created(submit(client, collect.url, xml, {"photo.jpg": b"late"}))
    assert stored_def(db, "uuid:missing").attachments_present == 1


def test_attachments__parts_the_xml_does_not_name_are_ignored(client, collect, db):
    before = collect.snapshot(db)
    stray = b"stray bytes nobody asked for"
    created(submit(client, collect.url, instance("uuid:stray"),
                   {"stray.jpg": stray, "photo": stray}))
    assert collect.attachments(db, stored_def(db, "uuid:stray")) == {}
    assert count(db, Blob) == before.counts["Blob"]
    assert not collect.blob_path(hashlib.sha256(stray).hexdigest()).exists()


def test_attachments__same_name_twice(client, collect, db):
    xml = instance("uuid:twice", photo="a.jpg")
    created(send(client, collect.url, multipart(xml_part(xml), part("a.jpg", b"same"),
                                                part("a.jpg", b"same"))))
    assert collect.attachments(db, stored_def(db, "uuid:twice")) == {"a.jpg": b"same"}
    before = collect.snapshot(db)
    xml = instance("uuid:twice-differ", photo="a.jpg")
    expect(send(client, collect.url, multipart(xml_part(xml), part("a.jpg", b"one"),
                                               part("a.jpg", b"two"))),
           Problems.duplicate_attachment)
    collect.assert_nothing_stored(db, before)


def test_attachments__content_not_matching_its_name_is_kept_as_bytes(client, collect, db):
    html = b"<html><script>alert(1)</script></html>"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
    created(send(client, collect.url, multipart(
        xml_part(instance("uuid:html", photo="x.jpg", sketch="y.jpg")),
        part("x.jpg", html, content_type="text/html"),
        part("y.jpg", svg, content_type="image/svg+xml"))))
    assert collect.attachments(db, stored_def(db, "uuid:html")) == {"x.jpg": html, "y.jpg": svg}


# Names a store could never hold are left out of the expected files (sync.instance:
# is_storable_file_name), so a part carrying one is ignored like any unreferenced part.
UNSTORABLE_NAMES = ["../../etc/passwd", "/abs/x.jpg", "..\\..\\x.jpg", "a/b.jpg", ".", "..",
                    "x" * 296 + ".jpg", "é" * 150 + ".jpg"]
STORABLE_NAMES = ["CON", "NUL.jpg", ".htaccess", "x" * 251 + ".jpg", "é" * 125 + ".jpg",
                  "صورة_الهوية.jpg", "📷🇰🇪.jpg", "name with spaces.jpg", "a\"b'c.jpg",
                  "%2e%2e%2fx.jpg"]


def _quoted(name: str) -> bytes:
    """A name as OkHttp writes it into Content-Disposition: UTF-8, with ``"`` as ``%22``."""
    return name.replace('"', "%22").encode()


def _landing_spots(collect: Collect, name: str) -> dict[Path, int | None]:
    """Where a name used as a path would land, relative to the places a store might join it
    to, with each spot's mtime (``None``: absent)."""
    bases = [Path.cwd(), collect.root, collect.root / "ab" / "cd", Path("/")]
    return {p: _mtime(p) for p in (base / name.replace("\\", "/") for base in bases)}


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:  # absent, or a name no file system could hold
        return None


@pytest.mark.parametrize("name", UNSTORABLE_NAMES)
def test_attachments__unstorable_names_never_leave_the_blob_root(client, collect, db, name):
    content = f"payload for {name}".encode()
    before = collect.snapshot(db)
    spots = _landing_spots(collect, name)
    instance_id = f"uuid:unstorable-{hashlib.sha1(name.encode()).hexdigest()}"
    created(send(client, collect.url, multipart(
        xml_part(instance(instance_id, photo=name)),
        part(_quoted(name), content, filename=_quoted(name)))))
    definition = stored_def(db, instance_id)
    assert definition.xml == instance(instance_id, photo=name).decode()
    assert collect.attachments(db, definition) == {}
    assert count(db, Blob) == before.counts["Blob"]
    assert new_files(before, collect.watch) == set()
    assert _landing_spots(collect, name) == spots


def test_attachments__nul_in_a_part_name_is_never_a_500(client, collect, db):
    before = collect.snapshot(db)
    r = send(client, collect.url, multipart(
        xml_part(instance("uuid:nul", photo="ab.jpg")),
        part(b"a\x00b.jpg", b"nul bytes", filename=b"a\x00b.jpg")))
    created(r)
    assert collect.attachments(db, stored_def(db, "uuid:nul")) == {"ab.jpg": None}
    assert new_files(before, collect.watch) == set()
    assert count(db, Blob) == before.counts["Blob"]


@pytest.mark.parametrize("name", STORABLE_NAMES)
def test_attachments__odd_but_storable_names_match_exactly(client, collect, db, name):
    content = f"payload for {name}".encode()
    instance_id = f"uuid:storable-{hashlib.sha1(name.encode()).hexdigest()}"
    before = collect.snapshot(db)
    created(send(client, collect.url, multipart(
        xml_part(instance(instance_id, photo=name)),
        part(_quoted(name), content, filename=_quoted(name)))))
    definition = stored_def(db, instance_id)
    assert collect.attachments(db, definition) == {name: content}
    sha = hashlib.sha256(content).hexdigest()
    assert new_files(before, collect.watch) == {collect.blob_path(sha)}


def test_attachments__nfc_and_nfd_names_are_different_names(client, collect, db):
    nfc = unicodedata.normalize("NFC", "café_ñandú.jpg")
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    for wanted, other in ((nfc, nfd), (nfd, nfc)):
        instance_id = f"uuid:norm-{len(wanted)}"
        xml = instance(instance_id, photo=wanted)
        created(send(client, collect.url, multipart(
            xml_part(xml), part(other, b"the other form"), part(wanted, b"the wanted form"))))
        definition = stored_def(db, instance_id)
        assert definition.xml.encode() == xml
        assert collect.attachments(db, definition) == {wanted: b"the wanted form"}
        assert count(db, Blob, Blob.sha256 == hashlib.sha256(b"the other form").hexdigest()) == 0


# == B1.22–B1.26, B1.33 instance identity ====================================================

def test_identity__same_instance_id_on_another_form_is_a_new_submission(client, collect, db):
    publish(client, collect.project, collect.designer, survey("hh2"))
    assign(db, collect.project, collect.app_user, "hh2")
    created(submit(client, collect.url, instance("uuid:shared")))
    created(submit(client, collect.url, instance("uuid:shared", form_id="hh2", name="Other")))
    assert count(db, Submission, Submission.instance_id == "uuid:shared") == 2


def test_identity__different_xml_is_409_and_the_stored_one_unchanged(client, collect, db):
    xml = instance("uuid:conflict", photo="a.jpg")
    created(submit(client, collect.url, xml))
    before = collect.snapshot(db)
    expect(submit(client, collect.url, instance("uuid:conflict", name="Someone else",
                                                photo="a.jpg"), {"a.jpg": b"sneaky"}),
           Problems.xml_conflict)
    collect.assert_nothing_stored(db, before)
    assert stored_def(db, "uuid:conflict").xml == xml.decode()


def test_identity__soft_deleted_instance_id_is_409_not_resurrected(client, collect, db):
    xml = instance("uuid:deleted")
    created(submit(client, collect.url, xml))
    submission = db.scalar(select(Submission).where(Submission.instance_id == "uuid:deleted"))
    submission.deleted_at = utcnow()
    db.commit()
    before = collect.snapshot(db)
    for again in (xml, instance("uuid:deleted", name="Changed"),
                  instance("uuid:deleted-edit", deprecated="uuid:deleted")):
        expect(submit(client, collect.url, again), Problems.submission_deleted)
    collect.assert_nothing_stored(db, before)
    assert db.get(Submission, submission.id).deleted_at is not None


def test_identity__edit_whose_new_id_collides_is_409(client, collect, db):
    created(submit(client, collect.url, instance("uuid:first")))
    created(submit(client, collect.url, instance("uuid:second")))
    before = collect.snapshot(db)
    expect(submit(client, collect.url, instance("uuid:second", deprecated="uuid:first")),
           Problems.xml_conflict)
    collect.assert_nothing_stored(db, before)


def test_identity__missing_instance_id_gets_the_xml_hash(client, collect, db):
    xml = instance(None)
    created(submit(client, collect.url, xml))
    created(submit(client, collect.url, xml))
    derived = f"sha256:{hashlib.sha256(xml).hexdigest()}"
    assert count(db, Submission, Submission.instance_id == derived) == 1
    assert stored_def(db, derived).xml == xml.decode()


@pytest.mark.parametrize("raw, stored", [
    ("bad-id:", "bad-id:"),
    ("%2F", "%2F"),
    ("uuid:%2e%2e%2f", "uuid:%2e%2e%2f"),
    (" \t\nuuid:padded\r\n ", "uuid:padded"),
    ("uuid:" + "a" * 250, "uuid:" + "a" * 250),
    ("uuid:صورة-🇰🇪", "uuid:صورة-🇰🇪"),
    ("<&>'\"", "<&>'\""),
])
def test_identity__odd_but_valid_instance_ids_are_stored_as_sent(client, collect, db, raw,
                                                                  stored):
    created(submit(client, collect.url, instance(raw)))
    submission = db.scalar(select(Submission).where(Submission.instance_id == stored))
    assert submission is not None
    rows = db.scalars(select(SubmissionRow).where(
        SubmissionRow.submission_def_id == stored_def(db, stored).id)
        .order_by(SubmissionRow.id)).all()  # the root row is written first
    assert rows[0].row_key == stored
    created(submit(client, collect.url, instance(raw)))
    assert count(db, Submission, Submission.instance_id == stored) == 1


@pytest.mark.parametrize("raw", [
    "../x", "uuid:a/b", "uuid:a\\b", ".", "..", "uuid:" + "a" * 10_000, "uuid:" + "a" * 251,
    "uuid:a b", "uuid:a\tb", "uuid:\u202eevil", "uuid:\u200bzero-width", "uuid:\u2028line",
    "uuid:\ue000private",
])
def test_identity__hostile_instance_ids_are_400(client, collect, db, raw):
    before = collect.snapshot(db)
    expect(submit(client, collect.url, instance(raw)), Problems.submission_unparseable)
    expect(submit(client, collect.url, instance("uuid:ok-edit", deprecated=raw)),
           Problems.submission_unparseable)
    collect.assert_nothing_stored(db, before)


# == B1.34 encrypted forms ===================================================================

ENCRYPTED_MD = (FORMS_DIR / "exit_interview_encrypted.md").read_text(encoding="utf-8")


def envelope(instance_id: str | None = "uuid:enc-1", media: tuple[str, ...] = ("1712.jpg.enc",),
             xml_file: str = "submission.xml.enc") -> bytes:
    meta = ("" if instance_id is None else
            f'<meta xmlns="http://openrosa.org/xforms"><instanceID>{instance_id}</instanceID>'
            "</meta>")
    files = "".join(f"<media><file>{m}</file></media>" for m in media)
    return ('<data xmlns="http://www.opendatakit.org/xforms/encrypted" id="exit_interview" '
            'version="2" encrypted="yes">'
            "<base64EncryptedKey>bm90LWEtcmVhbC1rZXk=</base64EncryptedKey>"
            f"{meta}{files}<encryptedXmlFile>{xml_file}</encryptedXmlFile>"
            "<base64EncryptedElementSignature>c2ln</base64EncryptedElementSignature>"
            "</data>").encode()


PLAINTEXT_SECRET = "Employer-Kept-Passport-Plaintext"


def plaintext_exit(instance_id: str = "uuid:enc-plain") -> bytes:
    return ('<?xml version="1.0"?><data id="exit_interview" version="2">'
            f"<employer>{PLAINTEXT_SECRET}</employer><passport_held>yes</passport_held>"
            "<unpaid_months>4</unpaid_months>"
            f"<meta><instanceID>{instance_id}</instanceID></meta></data>").encode()


@pytest.fixture
def encrypted(client, collect, db) -> Collect:
    r = client.post(f"/v1/projects/{collect.project.id}/forms?publish=true&ignoreWarnings=true",
                    data=md_to_xlsx(ENCRYPTED_MD), content_type=XLSX, headers=collect.designer)
    assert r.status_code == 200, r.get_json()
    assert r.get_json().get("encrypted") in (True, None)
    assign(db, collect.project, collect.app_user, "exit_interview")
    return collect


def test_encrypted__envelope_and_enc_files_keep_only_the_expected_ones(client, encrypted, db):
    xml_enc, media_enc, stray = b"\x00\x01ciphertext-xml", b"\x02\x03ciphertext-jpg", b"junk"
    created(send(client, encrypted.url, multipart(
        xml_part(envelope()), part("submission.xml.enc", xml_enc),
        part("1712.jpg.enc", media_enc), part("other.jpg.enc", stray))))
    definition = stored_def(db, "uuid:enc-1")
    assert definition.encrypted is True
    assert encrypted.attachments(db, definition) == {"1712.jpg.enc": media_enc,
                                                  "submission.xml.enc": xml_enc}
    assert (definition.attachments_expected, definition.attachments_present) == (2, 2)
    assert count(db, SubmissionRow, SubmissionRow.submission_def_id == definition.id) == 0
    assert count(db, Blob, Blob.sha256 == hashlib.sha256(stray).hexdigest()) == 0


def test_encrypted__plaintext_to_an_encrypted_form_is_400(client, encrypted, db):
    before = encrypted.snapshot(db)
    expect(submit(client, encrypted.url, plaintext_exit()), Problems.encryption_required)
    # Collect's failure window: the plaintext instance sent as the submission beside .enc files.
    expect(send(client, encrypted.url, multipart(
        xml_part(plaintext_exit()), part("submission.xml.enc", b"cipher"),
        part("1712.jpg.enc", b"cipher-jpg"))), Problems.encryption_required)
    expect(submit(client, encrypted.url, envelope(None)), Problems.submission_unparseable)
    encrypted.assert_nothing_stored(db, before)


def test_encrypted__a_plaintext_part_beside_the_envelope_is_never_stored(client, encrypted, db):
    before = encrypted.snapshot(db)
    plaintext = plaintext_exit("uuid:enc-2")
    created(send(client, encrypted.url, multipart(
        xml_part(envelope("uuid:enc-2")), part("submission.xml", plaintext,
                                                content_type="text/xml"),
        part("exit_interview_2026-05-01.xml", plaintext, content_type="text/xml"),
        part("submission.xml.enc", b"cipher-2"), part("1712.jpg.enc", b"cipher-jpg-2"))))
    definition = stored_def(db, "uuid:enc-2")
    assert set(encrypted.attachments(db, definition)) == {"1712.jpg.enc", "submission.xml.enc"}
    assert count(db, Blob, Blob.sha256 == hashlib.sha256(plaintext).hexdigest()) == 0
    for path in new_files(before, encrypted.watch):
        assert PLAINTEXT_SECRET.encode() not in path.read_bytes()
    assert PLAINTEXT_SECRET not in definition.xml
    assert not any(PLAINTEXT_SECRET in repr(row.data)
                   for row in db.scalars(select(SubmissionRow)))


# == B1.35 / B1.36 sizes =======================================================================

def test_size__1001_parts_is_413_fast(client, collect, db):
    before = collect.snapshot(db)
    parts = [xml_part(instance("uuid:parts"))] + [part(f"f{i}.jpg", b"x") for i in range(1000)]
    started = time.perf_counter()
    r = send(client, collect.url, multipart(*parts))
    assert time.perf_counter() - started < 2.0
    expect(r, Problems.too_large)
    collect.assert_nothing_stored(db, before)


@pytest.fixture
def small_app(settings, engine, base_app, db):
    """The app with a 200 kB body limit, on the test's session and the same blob store."""
    app = create_app(dataclasses.replace(settings, max_submission_bytes=200_000),
                     engine=engine, blob_store=base_app.extensions["dodoso"].blob_store)
    app.config["TESTING"] = True
    app.extensions["dodoso"].sessions = lambda: db
    return app


def test_size__body_over_the_limit_is_413_before_any_write(small_app, collect, db,
                                                          monkeypatch):
    import sync.ingest

    monkeypatch.setattr(sync.ingest, "ingest_submission",
                        lambda *a, **kw: pytest.fail("ingested an oversized body"))
    client = small_app.test_client()
    head = client.head(f"{collect.url}/submission", headers=OR)
    assert head.status_code == 204
    assert int(head.headers["X-OpenRosa-Accept-Content-Length"]) <= \
        small_app.config["MAX_CONTENT_LENGTH"]
    before = collect.snapshot(db)
    xml = instance("uuid:too-big", photo="a.jpg")
    body = multipart(xml_part(xml), part("a.jpg", b"z" * 300_000))
    expect(send(client, collect.url, body), Problems.too_large)
    chunked = client.post(
        f"{collect.url}/submission", input_stream=io.BytesIO(body), content_type=MULTIPART,
        headers={**OR, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True})
    expect(chunked, Problems.too_large)
    collect.assert_nothing_stored(db, before)


# == B1.37 drafts ============================================================================

def test_draft__test_submissions_are_partitioned_and_go_on_publish(client, collect, db):
    draft_url = f"/v1/projects/{collect.project.id}/forms/hh/draft"
    r = client.post(f"{draft_url}?ignoreWarnings=true", data=md_to_xlsx(survey(version="2")),
                    content_type=XLSX, headers=collect.designer)
    assert r.status_code == 200, r.get_json()
    token = client.get(draft_url, headers=collect.designer).get_json()["draftToken"]
    assert token
    test_url = f"/v1/test/{token}/projects/{collect.project.id}/forms/hh/draft"
    assert client.head(f"{test_url}/submission", headers=OR).status_code == 204
    listed = client.get(f"{test_url}/formList", headers=OR)
    assert b"<version>2</version>" in listed.data

    xml = instance("uuid:draft-1", version="2", photo="d.jpg")
    r = client.post(f"{test_url}/submission", data=multipart(xml_part(xml), part("d.jpg", b"d")),
                    content_type=MULTIPART, headers=OR)
    created(r)
    draft_sub = db.scalar(select(Submission).where(Submission.instance_id == "uuid:draft-1"))
    assert draft_sub.draft is True and stored_def(db, "uuid:draft-1").draft is True
    form = queries.forms.get(db, collect.project.id, "hh")
    assert queries.submissions.count(db, form.id) == 0
    assert queries.submissions.list_(db, form.id) == []

    expect(submit(client, collect.url, xml), Problems.version_unknown)
    expect(client.post(f"{test_url}/submission", data=multipart(xml_part(instance(
        "uuid:draft-v1"))), content_type=MULTIPART, headers=OR), Problems.version_unknown)
    wrong = f"/v1/test/{'x' * len(token)}/projects/{collect.project.id}/forms/hh/draft"
    expect(client.post(f"{wrong}/submission", data=multipart(xml_part(xml)),
                       content_type=MULTIPART, headers=OR), Problems.not_found)
    other = instance("uuid:draft-1", form_id="other", version="2")
    expect(client.post(f"{test_url}/submission", data=multipart(xml_part(other)),
                       content_type=MULTIPART, headers=OR), Problems.form_id_mismatch)

    published = client.post(f"{draft_url}/publish", headers=collect.designer)
    assert published.status_code == 200, published.get_json()
    assert count(db, Submission, Submission.draft.is_(True)) == 0
    assert count(db, SubmissionDef, SubmissionDef.draft.is_(True)) == 0
    assert count(db, SubmissionRow, SubmissionRow.submission_def_id == draft_sub.id) == 0
    expect(client.post(f"{test_url}/submission", data=multipart(xml_part(xml)),
                       content_type=MULTIPART, headers=OR), Problems.not_found)
    created(submit(client, collect.url, xml))
    assert queries.submissions.count(db, form.id) == 1


# == the rest of the conversation: formList, form XML, media =================================

def test_form_list__without_the_openrosa_header_is_400(client, collect):
    expect(client.get(f"{collect.url}/formList"), Problems.missing_header)
    expect(client.get(f"{collect.url}/formList", headers={"X-OpenRosa-Version": "2.0"}),
           Problems.missing_header)
    expect(submit(client, collect.url, instance(), headers={}), Problems.missing_header)


def test_form_xml__etag_then_304_and_gzip_when_accepted(client, collect):
    url = f"{collect.url}/forms/hh.xml"
    plain = client.get(url, headers=OR)
    assert plain.status_code == 200
    tag = plain.headers["ETag"]
    assert tag == f'"{hashlib.md5(plain.data).hexdigest()}"'
    for header in (tag, f"W/{tag}", f'"nope", {tag}', "*"):
        again = client.get(url, headers={**OR, "If-None-Match": header})
        assert again.status_code == 304 and again.data == b""
    assert client.get(url, headers={**OR, "If-None-Match": '"nope"'}).status_code == 200
    zipped = client.get(url, headers={**OR, "Accept-Encoding": "gzip, deflate"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert gzip.decompress(zipped.data) == plain.data


MEDIA_FORM = """
| survey   |                                   |            |          |
|          | type                              | name       | label    |
|          | select_one_from_file councils.csv | council    | Council  |
| settings |                                   |            |          |
|          | form_title                        | form_id    | version  |
|          | Registry                          | registry   | 1        |
"""


def test_media__manifest_then_range_request_is_206_with_those_bytes(client, collect, db):
    csv = b"name,label\n" + b"".join(f"c{i},Council number {i}\n".encode() for i in range(200))
    forms = f"/v1/projects/{collect.project.id}/forms"
    r = client.post(f"{forms}?ignoreWarnings=true", data=md_to_xlsx(MEDIA_FORM),
                    content_type=XLSX, headers=collect.designer)
    assert r.status_code == 200, r.get_json()
    assert client.post(f"{forms}/registry/draft/attachments/councils.csv", data=csv,
                       content_type="text/csv", headers=collect.designer).status_code == 200
    assert client.post(f"{forms}/registry/draft/publish",
                       headers=collect.designer).status_code == 200
    assign(db, collect.project, collect.app_user, "registry")

    manifest = client.get(f"{collect.url}/forms/registry/manifest", headers=OR)
    assert manifest.status_code == 200
    ns = {"m": "http://openrosa.org/xforms/xformsManifest"}
    root = etree.fromstring(manifest.data)
    assert root.xpath("//m:filename/text()", namespaces=ns) == ["councils.csv"]
    assert root.xpath("//m:hash/text()", namespaces=ns) == [
        f"md5:{hashlib.md5(csv).hexdigest()}"]

    url = f"{collect.url}/forms/registry/attachments/councils.csv"
    whole = client.get(url, headers=OR)
    assert whole.status_code == 200 and whole.data == csv
    assert whole.headers["Accept-Ranges"] == "bytes"
    part_ = client.get(url, headers={**OR, "Range": "bytes=10-99"})
    assert part_.status_code == 206
    assert part_.data == csv[10:100]
    assert part_.headers["Content-Range"] == f"bytes 10-99/{len(csv)}"
    tail = client.get(url, headers={**OR, "Range": "bytes=-20"})
    assert tail.status_code == 206 and tail.data == csv[-20:]
    beyond = client.get(url, headers={**OR, "Range": f"bytes={len(csv) + 10}-"})
    assert beyond.status_code == 416
    expect(client.get(f"{collect.url}/forms/registry/attachments/nope.csv", headers=OR),
           Problems.not_found)
