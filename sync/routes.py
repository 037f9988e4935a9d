"""The ODK Collect surface, on ODK Central's URL layout.

- ``/v1/key/<token>/projects/<id>/…``: app users (the key in the URL is the credential);
- ``/v1/projects/<id>/…``: signed-in users (Basic over HTTPS, or a bearer token);
- ``/v1/test/<token>/projects/<id>/forms/<formId>/draft/…``: a draft's test endpoints.

Each offers ``formList``, form XML, ``manifest``, media and ``submission`` (HEAD/GET 204,
POST multipart). Errors are OpenRosaResponse XML. Handlers parse and authorise; the
submission itself is ``sync.ingest``'s job.
"""

from __future__ import annotations

import gzip
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from flask import Blueprint, Response, g, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug import formparser
from werkzeug.exceptions import HTTPException
from werkzeug.sansio.multipart import MultipartDecoder

from server import queries, web
from server.auth import roles
from server.auth.access import load_project, project_verbs
from server.auth.actor import Actor
from server.errors import Problem, Problems
from server.models import Form, FormDef
from server.queries.ingest import FormRef
from server.services.app_users import VERIFIED_KEYS, authenticate_key, authenticate_key_recent
from sync import entity_lists, openrosa
from sync.ingest import Envelope, IncomingFile, ingest_submission


class _MultipartDecoder(MultipartDecoder):
    """Werkzeug 3.1's decoder, minus a bug that stores a byte the tablet never sent: when a
    64 KiB read ends one byte into the closing ``\r\n--<boundary>-``, it hands the CR to
    the last part as data (pallets/werkzeug#3285; found by the fault harness's soak,
    reproduced by tests/faults/test_multipart_chunk_edge.py). Remove once Werkzeug fixes it."""

    def _last_partial_boundary_index(self, data: bytes | bytearray) -> int:
        index = super()._last_partial_boundary_index(data)
        # A CR right before a retained LF belongs to the same partial delimiter.
        if 0 < index < len(data) and data[index] == 0x0A and data[index - 1] == 0x0D:
            index -= 1
        return index


formparser.MultipartDecoder = _MultipartDecoder  # type: ignore[misc]

bp = Blueprint("openrosa", __name__)
web.SELF_AUTHENTICATING_BLUEPRINTS.add(bp.name)

XML_PART_LIMIT = 10 * 1024 * 1024
BASIC_CHALLENGE = 'Basic realm="dodoso", charset="UTF-8"'

KEY = "/v1/key/<token>/projects/<int:project_id>"
USER = "/v1/projects/<int:project_id>"
TEST = "/v1/test/<token>/projects/<int:project_id>/forms/<xml_form_id>/draft"


@dataclass(frozen=True)
class Caller:
    """Who is syncing, through which door, and what that door shows them."""

    actor: Actor
    project_id: int
    base_url: str
    draft: FormDef | None = None  # the draft, on the test endpoints

    def can_see(self, db: Session, form_id: int) -> bool:
        if self.draft is not None:
            return form_id == self.draft.form_id
        if self.actor.app_user is not None:
            return queries.forms.is_assigned(db, form_id, self.actor.app_user.id)
        return roles.FORM_READ in project_verbs(db, self.actor, self.project_id)


@bp.before_request
def _openrosa_errors() -> None:
    g.problem_renderer = render_problem


def render_problem(problem: Problem) -> Response:
    response = Response(openrosa.problem_xml(problem), status=problem.status,
                        content_type=openrosa.OPENROSA_CONTENT_TYPE)
    response.headers.update(_headers())
    response.headers.update(problem.headers)
    if problem.status == 401 and g.get("basic_door"):
        response.headers["WWW-Authenticate"] = BASIC_CHALLENGE
    return response


def _headers() -> dict[str, str]:
    return openrosa.openrosa_headers(web.settings().max_submission_bytes)


# -- who is calling -------------------------------------------------------------------------

def _by_key(token: str, project_id: int, actor: Actor | None = None) -> Caller:
    actor = actor or authenticate_key(web.db(), token)
    if actor.app_user is None or actor.app_user.project_id != project_id:
        raise Problems.forbidden()
    return Caller(actor, project_id, f"{web.settings().public_url}/v1/key/{token}/projects/"
                                     f"{project_id}")


def _by_user(project_id: int, verb: str = roles.FORM_READ) -> Caller:
    g.basic_door = True
    actor = web.actor()
    if not actor.authenticated:
        raise Problems.auth_required(headers={"WWW-Authenticate": BASIC_CHALLENGE})
    try:
        load_project(web.db(), actor, project_id, verb)
    except Problem as problem:
        # Central answers the OpenRosa routes' missing rights with 401, never a 404 leak.
        raise Problems.auth_required(headers={"WWW-Authenticate": BASIC_CHALLENGE}) \
            if problem.status in (403, 404) else problem from None
    return Caller(actor, project_id, f"{web.settings().public_url}/v1/projects/{project_id}")


def _by_draft_token(token: str, project_id: int, xml_form_id: str) -> Caller:
    form = queries.forms.get(web.db(), project_id, xml_form_id)
    draft = queries.forms.draft_def(web.db(), form.id) if form is not None else None
    if draft is None or not draft.draft_token or not hmac.compare_digest(draft.draft_token,
                                                                         token):
        raise Problems.not_found()
    base = (f"{web.settings().public_url}/v1/test/{token}/projects/{project_id}/forms/"
            f"{quote(xml_form_id, safe='')}/draft")
    return Caller(Actor(), project_id, base, draft=draft)


# -- form list, form, manifest, media -------------------------------------------------------

def _form_list(caller: Caller) -> Response:
    openrosa.check_openrosa_version(request.headers)
    db = web.db()
    wanted = request.args.get("formID")
    entries = []
    if caller.draft is not None:
        form = db.get(Form, caller.draft.form_id)
        entries.append(_entry(db, caller, form, caller.draft, caller.base_url))
    else:
        for form, current in queries.forms.list_offered(db, caller.project_id):
            if (wanted is None or form.xml_form_id == wanted) and caller.can_see(db, form.id):
                base = f"{caller.base_url}/forms/{quote(form.xml_form_id, safe='')}"
                entries.append(_entry(db, caller, form, current, base))
    return _xml(openrosa.form_list_xml(entries), etag_of=None)


def _entry(db: Session, caller: Caller, form: Form, form_def: FormDef,
           base: str) -> openrosa.FormListEntry:
    has_media = queries.forms.has_attachments(db, form_def.id)
    return openrosa.FormListEntry(
        form_id=form.xml_form_id, name=form_def.title, version=form_def.version,
        hash_md5=form_def.xml_md5, download_url=f"{base}.xml",
        manifest_url=f"{base}/manifest" if has_media else None)


def _resolve(caller: Caller, xml_form_id: str) -> tuple[Form, FormDef]:
    db = web.db()
    if caller.draft is not None:
        form = db.get(Form, caller.draft.form_id)
        return form, caller.draft
    form = queries.forms.get(db, caller.project_id, xml_form_id)
    current = queries.forms.current_def(db, form.id) if form is not None else None
    if form is None or current is None or not caller.can_see(db, form.id):
        raise Problems.not_found()
    return form, current


def _form_xml(caller: Caller, xml_form_id: str) -> Response:
    _, form_def = _resolve(caller, xml_form_id)
    return _xml(form_def.xml.encode("utf-8"), etag_of=form_def.xml_md5,
                content_type=openrosa.FORM_XML_CONTENT_TYPE)


def _manifest(caller: Caller, xml_form_id: str) -> Response:
    openrosa.check_openrosa_version(request.headers)
    form, form_def = _resolve(caller, xml_form_id)
    base = (caller.base_url if caller.draft is not None
            else f"{caller.base_url}/forms/{quote(form.xml_form_id, safe='')}")
    attachments = queries.forms.attachments(web.db(), form_def.id)
    lists = entity_lists.linked_lists(web.db(), caller.project_id, attachments)
    files = [openrosa.ManifestFile(name=a.name,
                                   hash_md5=b.md5 if b is not None else lists[a.name].md5,
                                   download_url=f"{base}/attachments/{quote(a.name, safe='')}")
             for a, b in attachments if b is not None or a.name in lists]
    return _xml(openrosa.manifest_xml(files), etag_of=None)


def _media(caller: Caller, xml_form_id: str, name: str) -> Response:
    _, form_def = _resolve(caller, xml_form_id)
    attachment = queries.forms.attachment(web.db(), form_def.id, name)
    blob = (queries.blobs.get(web.db(), attachment.blob_id)
            if attachment is not None and attachment.blob_id else None)
    if blob is None:
        listed = entity_lists.linked_list(web.db(), caller.project_id, attachment)
        if listed is None:
            raise Problems.not_found()
        return entity_lists.csv_response(listed, request, _headers())
    response = Response(web.services().blob_store.iter_chunks(blob.sha256),
                        mimetype=blob.content_type)
    response.headers.update(_headers())
    response.set_etag(blob.md5)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = "attachment"
    return response.make_conditional(request, accept_ranges=True, complete_length=blob.size)


def _xml(body: bytes, *, etag_of: str | None,
         content_type: str = openrosa.OPENROSA_CONTENT_TYPE) -> Response:
    """An XML response: ETag/If-None-Match → 304, gzip when the client accepts it."""
    headers = _headers()
    if etag_of is not None:
        tag = openrosa.etag(etag_of)
        headers["ETag"] = tag
        if openrosa.if_none_match(request.headers.get("If-None-Match"), tag):
            return Response(status=304, headers=headers)
    if "gzip" in request.headers.get("Accept-Encoding", "") and len(body) > 512:
        body = gzip.compress(body, compresslevel=6)
        headers["Content-Encoding"] = "gzip"
    headers["Vary"] = "Accept-Encoding"
    return Response(body, status=200, content_type=content_type, headers=headers)


# -- submission -----------------------------------------------------------------------------

def _submission(caller: Caller, authorize: Callable[[Form], None] | None = None,
                key_hash: str | None = None) -> Response:
    openrosa.check_openrosa_version(request.headers)
    if request.method in ("HEAD", "GET"):
        return _no_content()
    xml, files = _read_multipart()

    def ingest() -> None:
        ingest_submission(
            web.db(), web.services().blob_store, project_id=caller.project_id, xml=xml,
            files=files, form=db_form(caller), authorize=authorize,
            envelope=Envelope(actor=caller.actor, device_id=request.args.get("deviceID"),
                              user_agent=request.headers.get("User-Agent"),
                              draft=caller.draft is not None, key_hash=key_hash),
            max_file_bytes=web.settings().max_submission_bytes)

    try:
        ingest()
    except IntegrityError:
        # Another request stored the same instanceID meanwhile (Collect retrying, or two
        # devices racing): run again, and it is now a resend like any other.
        web.db().rollback()
        for incoming in files.values():
            incoming.stream.seek(0)
        ingest()
    return Response(openrosa.SUBMISSION_SUCCESS_XML, status=201,
                    content_type=openrosa.OPENROSA_CONTENT_TYPE, headers=_headers())


def _no_content() -> Response:
    """Collect's go-ahead before an upload (``sync.head`` answers most of these alike)."""
    response = Response(status=204, headers=_headers())
    del response.headers["Content-Type"]  # there is no content
    return response


def db_form(caller: Caller) -> Form | None:
    return web.db().get(Form, caller.draft.form_id) if caller.draft is not None else None


def _read_multipart() -> tuple[bytes, dict[str, IncomingFile]]:
    """The XML part and the attachment parts, refusing every ambiguous or broken body."""
    if request.mimetype != "multipart/form-data":
        raise Problems.missing_multipart(field=openrosa.XML_SUBMISSION_FILE)
    if not request.mimetype_params.get("boundary"):
        raise Problems.multipart_unparseable()
    files, form = request.files, request.form
    if not files and not form:
        # Werkzeug answers an empty, truncated or malformed body with an empty form.
        raise Problems.multipart_unparseable()
    xml_parts = (files.getlist(openrosa.XML_SUBMISSION_FILE)
                 + form.getlist(openrosa.XML_SUBMISSION_FILE))
    if not xml_parts:
        raise Problems.missing_multipart(field=openrosa.XML_SUBMISSION_FILE)
    if len(xml_parts) > 1:
        raise Problems.ambiguous_submission()
    part = xml_parts[0]
    if isinstance(part, str) and "\ufffd" in part:
        # Werkzeug decodes a plain field with errors="replace": the bytes sent are lost, so
        # refuse it as the same bytes in a file part would be refused (not UTF-8).
        raise Problems.submission_unparseable(reason="it is not UTF-8",
                                              issue="instance.not_utf8")
    xml = part.encode("utf-8") if isinstance(part, str) else part.stream.read(XML_PART_LIMIT + 1)
    if len(xml) > XML_PART_LIMIT:
        raise Problems.too_large(limit=XML_PART_LIMIT)
    attachments: dict[str, IncomingFile] = {}
    for name, storage in files.items(multi=True):
        if name == openrosa.XML_SUBMISSION_FILE:
            continue
        incoming = IncomingFile(name=name, stream=storage.stream,
                                content_type=storage.mimetype or None)
        if name in attachments and not _same_bytes(attachments[name], incoming):
            raise Problems.duplicate_attachment(name=name)
        attachments.setdefault(name, incoming)
    return xml, attachments


def _same_bytes(a: IncomingFile, b: IncomingFile) -> bool:
    a.stream.seek(0)
    b.stream.seek(0)
    while True:
        x, y = a.stream.read(1 << 16), b.stream.read(1 << 16)
        if x != y:
            a.stream.seek(0)
            b.stream.seek(0)
            return False
        if not x:
            a.stream.seek(0)
            b.stream.seek(0)
            return True


def _assigned(caller: Caller) -> Callable[[FormRef], None]:
    def check(form: FormRef) -> None:
        # Ingest's own lookup already tells whether the app user is assigned the form.
        seen = (form.assigned if caller.actor.app_user is not None and caller.draft is None
                else caller.can_see(web.db(), form.id))
        if not seen:
            raise Problems.auth_required(headers={"WWW-Authenticate": BASIC_CHALLENGE})
    return check


# -- routes ---------------------------------------------------------------------------------

@bp.get(f"{KEY}/formList")
def key_form_list(token: str, project_id: int):
    return _form_list(_by_key(token, project_id))


@bp.get(f"{KEY}/forms/<xml_form_id>.xml")
def key_form_xml(token: str, project_id: int, xml_form_id: str):
    return _form_xml(_by_key(token, project_id), xml_form_id)


@bp.get(f"{KEY}/forms/<xml_form_id>/manifest")
def key_manifest(token: str, project_id: int, xml_form_id: str):
    return _manifest(_by_key(token, project_id), xml_form_id)


@bp.get(f"{KEY}/forms/<xml_form_id>/attachments/<name>")
def key_media(token: str, project_id: int, xml_form_id: str, name: str):
    return _media(_by_key(token, project_id), xml_form_id, name)


@bp.route(f"{KEY}/submission", methods=["HEAD", "GET", "POST"])
def key_submission(token: str, project_id: int):
    if request.method != "POST":
        # Collect's HEAD before each upload reveals and stores nothing: a key this process
        # verified in the last few seconds is taken on trust.
        caller = _by_key(token, project_id, authenticate_key_recent(web.db, token))
        return _submission(caller, _assigned(caller))
    recalled = VERIFIED_KEYS.recall(token)
    if recalled is None:
        caller = _by_key(token, project_id)
        return _submission(caller, _assigned(caller))
    # A key verified earlier is checked again by ingest's first query, before anything is
    # stored. Any refusal before that query (a broken body, an unknown form) re-checks the
    # key first, so that a revoked key is always answered 403 and learns nothing else.
    try:
        caller = _by_key(token, project_id, recalled.actor)
        return _submission(caller, _assigned(caller), key_hash=recalled.token_hash)
    except (Problem, HTTPException):
        web.db().rollback()
        _by_key(token, project_id)
        raise


@bp.get(f"{USER}/formList")
def user_form_list(project_id: int):
    return _form_list(_by_user(project_id))


@bp.get(f"{USER}/forms/<xml_form_id>/manifest")
def user_manifest(project_id: int, xml_form_id: str):
    return _manifest(_by_user(project_id), xml_form_id)


@bp.route(f"{USER}/submission", methods=["HEAD", "GET", "POST"])
def user_submission(project_id: int):
    return _submission(_by_user(project_id, roles.SUBMISSION_CREATE))


@bp.get(f"{TEST}/formList")
def test_form_list(token: str, project_id: int, xml_form_id: str):
    return _form_list(_by_draft_token(token, project_id, xml_form_id))


@bp.get(f"{TEST}.xml")
def test_form_xml(token: str, project_id: int, xml_form_id: str):
    return _form_xml(_by_draft_token(token, project_id, xml_form_id), xml_form_id)


@bp.get(f"{TEST}/manifest")
def test_manifest(token: str, project_id: int, xml_form_id: str):
    return _manifest(_by_draft_token(token, project_id, xml_form_id), xml_form_id)


@bp.get(f"{TEST}/attachments/<name>")
def test_media(token: str, project_id: int, xml_form_id: str, name: str):
    return _media(_by_draft_token(token, project_id, xml_form_id), xml_form_id, name)


@bp.route(f"{TEST}/submission", methods=["HEAD", "GET", "POST"])
def test_submission(token: str, project_id: int, xml_form_id: str):
    return _submission(_by_draft_token(token, project_id, xml_form_id))
