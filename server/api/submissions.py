"""Submissions: ``/v1/projects/{id}/forms/{xmlFormId}/submissions`` in ODK Central's layout —
list, create from raw XML, read (JSON and the XML byte for byte), edit by PUT, versions and
attachments (every such write goes through ``sync.ingest`` or ``sync.attachments``); review
(one, or in bulk by filter), comments, delete and restore (``server.services.review``)."""

from __future__ import annotations

import mimetypes

from flask import Response, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint

from server import queries, web
from server.api.forms import send_blob
from server.api.review_schemas import (
    BulkReviewResultSchema,
    BulkReviewSchema,
    CommentCreateSchema,
    CommentExtendedSchema,
    CommentSchema,
    ReviewSchema,
)
from server.api.schemas import (
    SubmissionAttachmentSchema,
    SubmissionExtendedSchema,
    SubmissionFilterArgs,
    SubmissionListArgs,
    SubmissionSchema,
    SubmissionVersionExtendedSchema,
    SubmissionVersionSchema,
    SuccessSchema,
)
from server.auth import roles
from server.auth.access import load_form
from server.errors import Problems
from server.models import Form, SubmissionDef
from server.queries.submissions import SubmissionListing, VersionListing
from server.services import review
from sync.attachments import add_attachment
from sync.ingest import Envelope, IngestResult, ingest_submission
from sync.instance import InstanceInvalid, parse_instance
from sync.routes import XML_PART_LIMIT

blp = Blueprint("submissions", __name__,
                url_prefix="/v1/projects/<int:project_id>/forms/<xml_form_id>/submissions",
                description="Submissions: list, create, read, edit, versions, attachments")

EXTENDED_HEADER = "X-Extended-Metadata"
TOTAL_COUNT_HEADER = "X-Total-Count"
XML_CONTENT_TYPE = "application/xml"


# -- loading, with access checks ------------------------------------------------------------

def _form(project_id: int, xml_form_id: str, verb: str) -> Form:
    return load_form(web.db(), web.actor(), project_id, xml_form_id, verb)


def _listing(form: Form, instance_id: str) -> SubmissionListing:
    found = queries.submissions.get_listing(web.db(), form.id, instance_id)
    if found is None:
        raise Problems.not_found()
    return found


def _version(listing: SubmissionListing, version_id: str) -> VersionListing:
    found = queries.submissions.get_version(web.db(), listing.submission.id, version_id)
    if found is None:
        raise Problems.not_found()
    return found


def _extended() -> bool:
    return request.headers.get(EXTENDED_HEADER, "").strip().lower() == "true"


def _render(value: object, extended: type, *, many: bool = False,
            headers: dict[str, str] | None = None) -> object:
    """The route's schema dumps the plain shape; with ``X-Extended-Metadata: true`` the
    ``extended`` schema does (Central's two shapes of the same resource)."""
    if _extended():
        response = jsonify(extended(many=many).dump(value))
        response.headers.update(headers or {})
        return response
    return (value, 200, headers) if headers else value


def _xml(text: str) -> Response:
    return Response(text.encode("utf-8"), mimetype=XML_CONTENT_TYPE)


# -- writes ---------------------------------------------------------------------------------

def _read_xml() -> bytes:
    """The raw XML body, at most the size Collect's XML part may have."""
    if request.content_length is not None and request.content_length > XML_PART_LIMIT:
        raise Problems.too_large(limit=XML_PART_LIMIT)
    xml = request.stream.read(XML_PART_LIMIT + 1)
    if len(xml) > XML_PART_LIMIT:
        raise Problems.too_large(limit=XML_PART_LIMIT)
    return xml


def _ingest(form: Form, xml: bytes) -> IngestResult:
    result = ingest_submission(
        web.db(), web.services().blob_store, project_id=form.project_id, xml=xml, files={},
        form=form, envelope=Envelope(actor=web.actor(), device_id=request.args.get("deviceID"),
                                     user_agent=request.headers.get("User-Agent")),
        max_file_bytes=web.settings().max_submission_bytes)
    if not result.created:
        # The REST API creates; an instanceID already stored is a conflict (as in Central),
        # even with identical XML (OpenRosa's resend-to-add-files has no place here).
        raise Problems.unique_conflict(fields="instanceId", values=result.definition.instance_id)
    return result


def _check_edit(form: Form, listing: SubmissionListing, xml: bytes) -> None:
    """Central's PUT: the XML names this form and deprecates the current version."""
    try:
        instance = parse_instance(xml)
    except InstanceInvalid as invalid:
        raise Problems.submission_unparseable(reason=invalid.message,
                                              issue=invalid.code) from None
    if instance.form_id != form.xml_form_id:
        raise Problems.form_id_mismatch(found=instance.form_id, expected=form.xml_form_id)
    if not instance.deprecated_id:
        raise Problems.expected_deprecation()
    if instance.deprecated_id != listing.current.instance_id:
        raise Problems.not_current_version()


# -- submissions ----------------------------------------------------------------------------

@blp.route("")
class Submissions(MethodView):
    @blp.arguments(SubmissionListArgs, location="query")
    @blp.response(200, SubmissionSchema(many=True))
    def get(self, args, project_id, xml_form_id):
        """The form's submissions, newest first; ``?limit=&offset=`` pages them and
        ``X-Total-Count`` says how many there are in all."""
        form = _form(project_id, xml_form_id, roles.SUBMISSION_LIST)
        page = queries.submissions.list_listings(web.db(), form.id, limit=args["limit"],
                                                 offset=args["offset"])
        total = queries.submissions.count(web.db(), form.id)
        return _render(page, SubmissionExtendedSchema, many=True,
                       headers={TOTAL_COUNT_HEADER: str(total)})

    @blp.response(200, SubmissionSchema)
    def post(self, project_id, xml_form_id):
        """Create a submission from its XML, sent as the raw body (no attachments: upload
        those to ``…/attachments/{name}``)."""
        form = _form(project_id, xml_form_id, roles.SUBMISSION_CREATE)
        result = _ingest(form, _read_xml())
        return _render(_listing(form, result.submission.instance_id),
                       SubmissionExtendedSchema)


@blp.route("/<instance_id>")
class SubmissionById(MethodView):
    @blp.response(200, SubmissionSchema)
    def get(self, project_id, xml_form_id, instance_id):
        form = _form(project_id, xml_form_id, roles.SUBMISSION_READ)
        return _render(_listing(form, instance_id), SubmissionExtendedSchema)

    @blp.response(200, SubmissionSchema)
    def put(self, project_id, xml_form_id, instance_id):
        """Edit: a new version from XML whose ``meta/deprecatedID`` is the current
        version's instanceID (and with an instanceID of its own)."""
        form = _form(project_id, xml_form_id, roles.SUBMISSION_CREATE)
        listing = _listing(form, instance_id)
        xml = _read_xml()
        _check_edit(form, listing, xml)
        _ingest(form, xml)
        return _render(_listing(form, instance_id), SubmissionExtendedSchema)

    @blp.arguments(ReviewSchema)
    @blp.response(200, SubmissionSchema)
    def patch(self, body, project_id, xml_form_id, instance_id):
        """Review: set ``reviewState`` (received, hasIssues, edited, approved, rejected)."""
        form = _form(project_id, xml_form_id, roles.SUBMISSION_UPDATE)
        review.review(web.db(), web.actor(), form, instance_id,
                      body["review_state"] or "received")
        return _render(_listing(form, instance_id), SubmissionExtendedSchema)

    @blp.response(200, SuccessSchema)
    def delete(self, project_id, xml_form_id, instance_id):
        """Soft delete; ``POST …/restore`` undoes it."""
        form = _form(project_id, xml_form_id, roles.SUBMISSION_DELETE)
        review.delete(web.db(), web.actor(), form, instance_id)
        return {"success": True}


@blp.route("/<instance_id>/restore")
class Restore(MethodView):
    @blp.response(200, SuccessSchema)
    def post(self, project_id, xml_form_id, instance_id):
        form = _form(project_id, xml_form_id, roles.SUBMISSION_RESTORE)
        review.restore(web.db(), web.actor(), form, instance_id)
        return {"success": True}


@blp.route("/review")
class BulkReview(MethodView):
    @blp.arguments(SubmissionFilterArgs, location="query", as_kwargs=False)
    @blp.arguments(BulkReviewSchema)
    @blp.response(200, BulkReviewResultSchema)
    def post(self, selected, body, project_id, xml_form_id):
        """Review every submission the query's filter selects (dodoso's own). With
        ``expectedCount``, nothing changes unless the filter selects exactly that many."""
        form = _form(project_id, xml_form_id, roles.SUBMISSION_UPDATE)
        return review.review_matching(web.db(), web.actor(), form, selected,
                                      body["review_state"] or "received",
                                      comment=body["comment"],
                                      expected_count=body["expected_count"])


@blp.route("/<instance_id>/comments")
class Comments(MethodView):
    @blp.response(200, CommentSchema(many=True))
    def get(self, project_id, xml_form_id, instance_id):
        """Newest first."""
        form = _form(project_id, xml_form_id, roles.SUBMISSION_READ)
        return _render(review.comments(web.db(), form, instance_id), CommentExtendedSchema,
                       many=True)

    @blp.arguments(CommentCreateSchema)
    @blp.response(200, CommentSchema)
    def post(self, body, project_id, xml_form_id, instance_id):
        form = _form(project_id, xml_form_id, roles.SUBMISSION_UPDATE)
        return _render(review.add_comment(web.db(), web.actor(), form, instance_id,
                                          body["body"]), CommentExtendedSchema)


@blp.route("/<instance_id>.xml")
class SubmissionXml(MethodView):
    def get(self, project_id, xml_form_id, instance_id):
        """The current version's XML, byte for byte."""
        form = _form(project_id, xml_form_id, roles.SUBMISSION_READ)
        return _xml(_listing(form, instance_id).current.xml)


# -- versions -------------------------------------------------------------------------------

@blp.route("/<instance_id>/versions")
class Versions(MethodView):
    @blp.response(200, SubmissionVersionSchema(many=True))
    def get(self, project_id, xml_form_id, instance_id):
        """Every version, newest first."""
        form = _form(project_id, xml_form_id, roles.SUBMISSION_READ)
        listing = _listing(form, instance_id)
        return _render(queries.submissions.list_versions(web.db(), listing.submission.id),
                       SubmissionVersionExtendedSchema, many=True)


@blp.route("/<instance_id>/versions/<version_id>")
class VersionById(MethodView):
    @blp.response(200, SubmissionVersionSchema)
    def get(self, project_id, xml_form_id, instance_id, version_id):
        form = _form(project_id, xml_form_id, roles.SUBMISSION_READ)
        return _render(_version(_listing(form, instance_id), version_id),
                       SubmissionVersionExtendedSchema)


@blp.route("/<instance_id>/versions/<version_id>.xml")
class VersionXml(MethodView):
    def get(self, project_id, xml_form_id, instance_id, version_id):
        """That version's XML, byte for byte."""
        form = _form(project_id, xml_form_id, roles.SUBMISSION_READ)
        return _xml(_version(_listing(form, instance_id), version_id).definition.xml)


# -- attachments (of the current version) --------------------------------------------------

def _current(project_id: int, xml_form_id: str, instance_id: str, verb: str) -> SubmissionDef:
    return _listing(_form(project_id, xml_form_id, verb), instance_id).current


@blp.route("/<instance_id>/attachments")
class Attachments(MethodView):
    @blp.response(200, SubmissionAttachmentSchema(many=True))
    def get(self, project_id, xml_form_id, instance_id):
        """The files the current version refers to, and whether each has arrived."""
        current = _current(project_id, xml_form_id, instance_id, roles.SUBMISSION_READ)
        return sorted(({"name": a.name, "exists": b is not None}
                       for a, b in queries.submissions.attachments(web.db(), current.id)),
                      key=lambda a: a["name"])


@blp.route("/<instance_id>/attachments/<name>")
class AttachmentByName(MethodView):
    def get(self, project_id, xml_form_id, instance_id, name):
        current = _current(project_id, xml_form_id, instance_id, roles.SUBMISSION_READ)
        found = queries.submissions.get_attachment(web.db(), current.id, name)
        if found is None or found[1] is None:
            raise Problems.not_found()
        return send_blob(found[1], name)

    @blp.response(200, SuccessSchema)
    def post(self, project_id, xml_form_id, instance_id, name):
        """Upload (or replace) a file the current version refers to, as the raw body."""
        current = _current(project_id, xml_form_id, instance_id, roles.SUBMISSION_UPDATE)
        content_type = (request.mimetype or mimetypes.guess_type(name)[0]
                        or "application/octet-stream")
        add_attachment(web.db(), web.services().blob_store, web.actor(), current, name,
                       request.stream, content_type, web.settings().max_submission_bytes)
        return {"success": True}

