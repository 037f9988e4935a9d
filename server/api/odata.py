"""OData v4 feeds of a form's submissions on ODK Central's paths, for Excel, Power BI and
pyodk: ``/v1/projects/{id}/forms/{xmlFormId}.svc`` (the published version) and
``…/forms/{xmlFormId}/draft.svc`` (the draft's test submissions).

Errors come in Central's JSON shape with OData's ``error`` object as well (and as Central's
XML ``<error>`` for ``$metadata``). An unauthenticated request is challenged for Basic
credentials too, which is what Excel and Power BI answer. Reads never hold SQLite's write
lock: the request's transaction is a deferred one.
"""

from __future__ import annotations

from flask import Response, g, jsonify, request, stream_with_context
from flask_smorest import Blueprint
from lxml import etree

from server import web
from server.api.errors import render_json
from server.auth import roles
from server.auth.access import load_form, require_authenticated
from server.db import SQLITE_DEFERRED
from server.errors import Problem
from server.services import odata

blp = Blueprint("odata", __name__, url_prefix="/v1/projects/<int:project_id>/forms",
                description="OData feeds of submissions (Central's .svc endpoints)")
web.SELF_AUTHENTICATING_BLUEPRINTS.add(blp.name)

ODATA_VERSION = "4.0"
SERVICE_DOCUMENT_TYPE = "application/json; odata.metadata=minimal"
DATA_TYPE = "application/json"
METADATA_TYPE = "application/xml"
BASIC_CHALLENGE = 'Basic realm="dodoso", charset="UTF-8"'


def render_odata_json(problem: Problem) -> Response:
    response = render_json(problem)
    body = response.get_json()
    body["error"] = {"code": str(problem.code), "message": problem.message}
    response.set_data(jsonify(body).get_data())
    return _challenge(response)


def render_odata_xml(problem: Problem) -> Response:
    error = etree.Element("error", code=str(problem.code))
    etree.SubElement(error, "message").text = problem.message
    etree.SubElement(error, "details").text = str(problem.details) if problem.details else ""
    response = Response(etree.tostring(error, xml_declaration=True, encoding="UTF-8"),
                        status=problem.status, mimetype="text/xml")
    response.headers.update(problem.headers)
    return _challenge(response)


def _challenge(response: Response) -> Response:
    if response.status_code == 401:
        response.headers.add("WWW-Authenticate", BASIC_CHALLENGE)
    return response


def _read_only() -> None:
    """Begin the session's next transaction deferred (SQLite), so reading a feed never
    makes writers wait."""
    db = web.db()
    if not db.in_transaction():
        db.connection(execution_options={SQLITE_DEFERRED: True})


@blp.before_request
def _before() -> None:
    g.problem_renderer = (render_odata_xml if request.path.endswith("/$metadata")
                          else render_odata_json)
    require_authenticated(web.actor())
    db = web.db()
    if db.get_bind().dialect.name == "sqlite":
        # Authentication may write (Basic auth's login bookkeeping), so it ran in an
        # ordinary (IMMEDIATE) transaction; end it, and read the feed in a deferred one.
        db.commit()
        _read_only()


@blp.after_request
def _after(response: Response) -> Response:
    response.headers["OData-Version"] = ODATA_VERSION
    return response


def _feed(project_id: int, xml_form_id: str, draft: bool) -> odata.Feed:
    form = load_form(web.db(), web.actor(), project_id, xml_form_id, roles.SUBMISSION_READ)
    suffix = "/draft.svc" if draft else ".svc"
    service_url = f"{web.settings().public_url}/v1/projects/{project_id}/forms/" \
                  f"{xml_form_id}{suffix}"
    return odata.open_feed(web.db(), form, draft=draft, service_url=service_url)


def _service_document(project_id: int, xml_form_id: str, draft: bool) -> Response:
    response = jsonify(odata.service_document(_feed(project_id, xml_form_id, draft)))
    response.headers["Content-Type"] = SERVICE_DOCUMENT_TYPE
    return response


def _metadata(project_id: int, xml_form_id: str, draft: bool) -> Response:
    return Response(odata.metadata(_feed(project_id, xml_form_id, draft)),
                    mimetype=METADATA_TYPE)


def _data(project_id: int, xml_form_id: str, resource: str, draft: bool) -> Response:
    feed = _feed(project_id, xml_form_id, draft)
    parsed = odata.parse_request(feed, resource, list(request.args.items(multi=True)),
                                 request.path)
    body = odata.read(web.db(), parsed)
    first = next(body)  # the first query runs (and can fail as a Problem) before we answer

    def stream():
        _read_only()
        yield first
        yield from body

    return Response(stream_with_context(stream()), mimetype=DATA_TYPE)


@blp.route("/<xml_form_id>.svc", strict_slashes=False)
def service_document(project_id: int, xml_form_id: str) -> Response:
    """The service document: the entity sets (Submissions and one per repeat)."""
    return _service_document(project_id, xml_form_id, False)


@blp.route("/<xml_form_id>.svc/$metadata")
def metadata(project_id: int, xml_form_id: str) -> Response:
    """The EDMX metadata document."""
    return _metadata(project_id, xml_form_id, False)


@blp.route("/<xml_form_id>.svc/<path:resource>")
def data(project_id: int, xml_form_id: str, resource: str) -> Response:
    """Submissions, a repeat's rows, one submission or a submission's repeat rows, with
    ``$top $skip $skiptoken $count $filter $orderby $select $expand=* $wkt``."""
    return _data(project_id, xml_form_id, resource, False)


@blp.route("/<xml_form_id>/draft.svc", strict_slashes=False)
def draft_service_document(project_id: int, xml_form_id: str) -> Response:
    return _service_document(project_id, xml_form_id, True)


@blp.route("/<xml_form_id>/draft.svc/$metadata")
def draft_metadata(project_id: int, xml_form_id: str) -> Response:
    return _metadata(project_id, xml_form_id, True)


@blp.route("/<xml_form_id>/draft.svc/<path:resource>")
def draft_data(project_id: int, xml_form_id: str, resource: str) -> Response:
    return _data(project_id, xml_form_id, resource, True)
