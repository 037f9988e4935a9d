"""Forms: ``/v1/projects/{id}/forms`` in ODK Central's layout (drafts, publish, versions,
media), with structured feedback for designers."""

from __future__ import annotations

from collections.abc import Callable

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from server import queries, web
from server.api.schemas import (
    AssignedAppUserSchema,
    DraftSchema,
    FieldSchema,
    FormAttachmentSchema,
    FormCreateArgs,
    FormSummarySchema,
    FormUpdateSchema,
    PublishArgs,
    SuccessSchema,
)
from server.auth import roles
from server.auth.access import load_form, load_project
from server.errors import Problems
from server.models import Form, FormDef
from server.services import collect_setup
from server.services import forms as svc
from server.storage import attachment_disposition

blp = Blueprint("forms", __name__, url_prefix="/v1/projects/<int:project_id>/forms",
                description="Forms, drafts, versions and form media")

FALLBACK_HEADER = "X-XlsForm-FormId-Fallback"
EMPTY_VERSION = "___"  # how Central spells the empty version string in URLs


def _ctx() -> svc.FormsContext:
    s = web.services()
    return svc.FormsContext(settings=s.settings, store=s.blob_store)


def _form(project_id: int, xml_form_id: str, verb: str) -> Form:
    return load_form(web.db(), web.actor(), project_id, xml_form_id, verb)


def _draft(form: Form) -> FormDef:
    draft = queries.forms.draft_def(web.db(), form.id)
    if draft is None:
        raise Problems.not_found()
    return draft


def _published(form: Form, version: str | None = None) -> FormDef:
    if version is None:
        found = queries.forms.current_def(web.db(), form.id)
    else:
        version = "" if version == EMPTY_VERSION else version
        found = queries.forms.published_def_by_version(web.db(), form.id, version)
    if found is None:
        raise Problems.not_found()
    return found


def _read_upload(required: bool = True) -> svc.Upload | None:
    """The form file: a raw body with its content type, or the first file of a multipart
    body. Bounded by DODOSO_FORM_MAX_BYTES before anything is parsed."""
    limit = web.settings().form_max_bytes
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise Problems.form_too_large({"errors": [{
            "level": "error", "code": "file.too_large",
            "message": f"Forms may be at most {limit} bytes."}]})
    if request.mimetype == "multipart/form-data":
        upload = next(iter(request.files.values()), None)
        if upload is None:
            raise Problems.missing_multipart(field="file")
        data = upload.stream.read(limit + 1)
        name, content_type = upload.filename, upload.mimetype
    else:
        data = request.stream.read(limit + 1)
        name, content_type = None, request.mimetype
    if not data:
        if required:
            raise Problems.form_invalid({"errors": [{
                "level": "error", "code": "file.empty",
                "message": "The request carried no form file."}], "warnings": []})
        return None
    return svc.Upload(data=data, filename=name, content_type=content_type)


def _fallback_id() -> str | None:
    return request.headers.get(FALLBACK_HEADER) or None


def _summary(form: Form, form_def: FormDef | None) -> dict:
    return {"form": form, "definition": form_def}


def _xml_response(form_def: FormDef, form: Form) -> Response:
    response = Response(form_def.xml.encode("utf-8"), mimetype="application/xml")
    response.headers["Content-Disposition"] = attachment_disposition(f"{form.xml_form_id}.xml")
    return response


def _xlsform_response(form_def: FormDef, form: Form, suffix: str) -> Response:
    if form_def.xlsform_blob_id is None:
        raise Problems.not_found()
    blob = queries.blobs.get(web.db(), form_def.xlsform_blob_id)
    expected = svc.XLSFORM_CONTENT_TYPES.get(suffix)
    if blob is None or form_def.xlsform_content_type != expected:
        raise Problems.not_found()
    return send_blob(blob, f"{form.xml_form_id}.{suffix}", expected)


def send_blob(blob, filename: str, content_type: str | None = None) -> Response:
    """Stream a blob as a download; never rendered inline, never sniffed."""
    chunks = web.services().blob_store.iter_chunks(blob.sha256)
    response = Response(chunks, mimetype=content_type or blob.content_type)
    response.headers["Content-Length"] = str(blob.size)
    response.headers["Content-Disposition"] = attachment_disposition(filename)
    response.headers["ETag"] = f'"{blob.md5}"'
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# -- forms ----------------------------------------------------------------------------------

@blp.route("")
class Forms(MethodView):
    @blp.response(200, FormSummarySchema(many=True))
    def get(self, project_id):
        """The project's forms with their current versions."""
        project = load_project(web.db(), web.actor(), project_id, roles.FORM_LIST)
        return [_summary(f, d) for f, d in queries.forms.list_with_shown_def(web.db(),
                                                                              project.id)]

    @blp.arguments(FormCreateArgs, location="query")
    @blp.response(200, FormSummarySchema)
    def post(self, args, project_id):
        """Create a form from an XLSForm (.xlsx/.xls/.csv/.md) or an XForm, as the raw body
        or a multipart file. Answers every problem found, with sheet/row/column."""
        actor = web.actor()
        project = load_project(web.db(), actor, project_id, roles.FORM_CREATE)
        if args["publish"]:
            load_project(web.db(), actor, project_id, roles.FORM_PUBLISH)
        form = svc.create_form(web.db(), _ctx(), actor, project, _read_upload(),
                               publish=args["publish"], ignore_warnings=args["ignore_warnings"],
                               fallback_id=_fallback_id())
        return _summary(form, queries.forms.shown_def(web.db(), form.id))


@blp.route("/<xml_form_id>")
class FormById(MethodView):
    @blp.response(200, FormSummarySchema)
    def get(self, project_id, xml_form_id):
        form = _form(project_id, xml_form_id, roles.FORM_READ)
        return _summary(form, queries.forms.shown_def(web.db(), form.id))

    @blp.arguments(FormUpdateSchema)
    @blp.response(200, FormSummarySchema)
    def patch(self, body, project_id, xml_form_id):
        """Set the form's state: open, closing (no longer offered to Collect, still accepts
        submissions) or closed."""
        form = _form(project_id, xml_form_id, roles.FORM_UPDATE)
        svc.update_form(web.db(), web.actor(), form, state=body.get("state"))
        return _summary(form, queries.forms.shown_def(web.db(), form.id))

    @blp.response(200, SuccessSchema)
    def delete(self, project_id, xml_form_id):
        form = _form(project_id, xml_form_id, roles.FORM_DELETE)
        svc.delete_form(web.db(), web.actor(), form)
        return {"success": True}


@blp.route("/<xml_form_id>/schema")
class FormSchemaRoute(MethodView):
    def get(self, project_id, xml_form_id):
        """The current version's full field schema: fields, choice lists and languages."""
        form = _form(project_id, xml_form_id, roles.FORM_READ)
        return _published(form).schema


# -- draft ----------------------------------------------------------------------------------

@blp.route("/<xml_form_id>/draft")
class Draft(MethodView):
    @blp.response(200, DraftSchema)
    def get(self, project_id, xml_form_id):
        """The draft, its test token, and what publishing it would change (``diff``)."""
        form = _form(project_id, xml_form_id, roles.FORM_READ)
        return _draft_view(form, _draft(form))

    @blp.arguments(FormCreateArgs, location="query")
    @blp.response(200, DraftSchema)
    def post(self, args, project_id, xml_form_id):
        """A new draft from an upload, or without a body a copy of the published version."""
        form = _form(project_id, xml_form_id, roles.FORM_UPDATE)
        draft = svc.create_draft(web.db(), _ctx(), web.actor(), form,
                                 _read_upload(required=False),
                                 ignore_warnings=args["ignore_warnings"],
                                 fallback_id=_fallback_id())
        return _draft_view(form, draft)

    @blp.response(200, SuccessSchema)
    def delete(self, project_id, xml_form_id):
        form = _form(project_id, xml_form_id, roles.FORM_UPDATE)
        svc.delete_draft(web.db(), web.actor(), form)
        return {"success": True}


@blp.route("/<xml_form_id>/draft/qr.<any(png, svg):fmt>")
class DraftQr(MethodView):
    def get(self, project_id, xml_form_id, fmt):
        """The QR code that sets up ODK Collect to test this draft."""
        project = load_project(web.db(), web.actor(), project_id, roles.FORM_READ)
        form = _form(project_id, xml_form_id, roles.FORM_READ)
        draft = _draft(form)
        image = collect_setup.draft_qr(web.settings(), project, draft.draft_token or "",
                                       form.xml_form_id, fmt=fmt)
        return Response(image, mimetype=collect_setup.QR_FORMATS[fmt])


@blp.route("/<xml_form_id>/draft/publish")
class DraftPublish(MethodView):
    @blp.arguments(PublishArgs, location="query")
    @blp.response(200, FormSummarySchema)
    def post(self, args, project_id, xml_form_id):
        """Publish the draft, optionally under a new ``?version=``."""
        form = _form(project_id, xml_form_id, roles.FORM_PUBLISH)
        published = svc.publish_draft(web.db(), _ctx(), web.actor(), form, args.get("version"))
        return _summary(form, published)


@blp.route("/<xml_form_id>/draft/attachments/<name>")
class DraftAttachmentByName(MethodView):
    @blp.response(200, SuccessSchema)
    def post(self, project_id, xml_form_id, name):
        """Upload a media file the draft expects, as the raw body. CSVs are checked for the
        columns the form uses."""
        form = _form(project_id, xml_form_id, roles.FORM_UPDATE)
        draft = _draft(form)
        limit = web.settings().max_submission_bytes
        data = request.stream.read(limit + 1)
        if len(data) > limit:
            raise Problems.too_large(limit=limit)
        svc.upload_attachment(web.db(), _ctx(), web.actor(), form, draft, name, data,
                              request.mimetype or None)
        return {"success": True}

    @blp.response(200, SuccessSchema)
    def delete(self, project_id, xml_form_id, name):
        form = _form(project_id, xml_form_id, roles.FORM_UPDATE)
        svc.clear_attachment(web.db(), web.actor(), form, _draft(form), name)
        return {"success": True}


# -- versions -------------------------------------------------------------------------------

@blp.route("/<xml_form_id>/versions")
class Versions(MethodView):
    @blp.response(200, FormSummarySchema(many=True))
    def get(self, project_id, xml_form_id):
        """Every published version, newest first."""
        form = _form(project_id, xml_form_id, roles.FORM_READ)
        return [_summary(form, d)
                for d in reversed(queries.forms.published_defs(web.db(), form.id))]


@blp.route("/<xml_form_id>/versions/<version>")
class VersionById(MethodView):
    @blp.response(200, FormSummarySchema)
    def get(self, project_id, xml_form_id, version):
        form = _form(project_id, xml_form_id, roles.FORM_READ)
        return _summary(form, _published(form, version))


@blp.route("/<xml_form_id>/assignments/app-user")
class FormAppUsers(MethodView):
    @blp.response(200, AssignedAppUserSchema(many=True))
    def get(self, project_id, xml_form_id):
        """The app users this form is offered to (Collect shows them only these)."""
        form = _form(project_id, xml_form_id, roles.ASSIGNMENT_LIST)
        return [{"actor_id": i, "role_system": "app-user"}
                for i in queries.forms.assigned_app_users(web.db(), form.id)]


@blp.route("/<xml_form_id>/assignments/app-user/<int:app_user_id>")
class FormAppUserById(MethodView):
    @blp.response(200, SuccessSchema)
    def post(self, project_id, xml_form_id, app_user_id):
        form = _form(project_id, xml_form_id, roles.ASSIGNMENT_CREATE)
        svc.assign_app_user(web.db(), web.actor(), form, app_user_id)
        return {"success": True}

    @blp.response(200, SuccessSchema)
    def delete(self, project_id, xml_form_id, app_user_id):
        form = _form(project_id, xml_form_id, roles.ASSIGNMENT_DELETE)
        svc.unassign_app_user(web.db(), web.actor(), form, app_user_id)
        return {"success": True}


# -- one version's files, for the published version, the draft and any version ----------

def _definition_routes(prefix: str, which: str,
                       resolve: Callable[[Form, dict[str, str]], FormDef]) -> None:
    """The same read-only routes for ``{prefix}.xml``, ``.xlsx``/``.xls``, ``/fields``,
    ``/attachments`` and ``/attachments/{name}`` of one version of a form."""
    base = f"/<xml_form_id>{prefix}"

    def load(project_id: int, xml_form_id: str, kw: dict[str, str]) -> tuple[Form, FormDef]:
        form = _form(project_id, xml_form_id, roles.FORM_READ)
        return form, resolve(form, kw)

    @blp.route(f"{base}.xml", endpoint=f"{which}_xml")
    class Xml(MethodView):
        def get(self, project_id, xml_form_id, **kw):
            """The XForm, byte for byte."""
            form, form_def = load(project_id, xml_form_id, kw)
            return _xml_response(form_def, form)

    @blp.route(f"{base}.<any(xlsx, xls):suffix>", endpoint=f"{which}_xlsform")
    class XlsForm(MethodView):
        def get(self, project_id, xml_form_id, suffix, **kw):
            """The XLSForm the version was made from."""
            form, form_def = load(project_id, xml_form_id, kw)
            return _xlsform_response(form_def, form, suffix)

    @blp.route(f"{base}/fields", endpoint=f"{which}_fields")
    class Fields(MethodView):
        @blp.response(200, FieldSchema(many=True))
        def get(self, project_id, xml_form_id, **kw):
            """The version's fields (path, type, repeat nesting)."""
            return load(project_id, xml_form_id, kw)[1].schema["fields"]

    @blp.route(f"{base}/attachments", endpoint=f"{which}_attachments")
    class Attachments(MethodView):
        @blp.response(200, FormAttachmentSchema(many=True))
        def get(self, project_id, xml_form_id, **kw):
            """The media the version expects, and which have been uploaded."""
            return _attachments(load(project_id, xml_form_id, kw)[1])

    @blp.route(f"{base}/attachments/<name>", endpoint=f"{which}_attachment")
    class Attachment(MethodView):
        def get(self, project_id, xml_form_id, name, **kw):
            return _attachment_download(load(project_id, xml_form_id, kw)[1], name)


_definition_routes("", "published", lambda form, kw: _published(form))
_definition_routes("/draft", "draft", lambda form, kw: _draft(form))
_definition_routes("/versions/<version>", "version",
                   lambda form, kw: _published(form, kw["version"]))


def _attachment_download(form_def: FormDef, name: str) -> Response:
    attachment = queries.forms.attachment(web.db(), form_def.id, name)
    blob = (queries.blobs.get(web.db(), attachment.blob_id)
            if attachment is not None and attachment.blob_id is not None else None)
    if blob is None:
        raise Problems.not_found()
    return send_blob(blob, name)


MEDIA_TYPES = {"file-csv": "file"}  # Central lists CSVs as plain files


def _attachments(form_def: FormDef) -> list[dict]:
    return [{"name": a.name, "type": MEDIA_TYPES.get(a.kind, a.kind), "exists": b is not None,
             "hash": b.md5 if b else None, "size": b.size if b else None,
             "updated_at": a.updated_at}
            for a, b in queries.forms.attachments(web.db(), form_def.id)]


def _draft_view(form: Form, draft: FormDef) -> dict:
    attachments = _attachments(draft)
    return {
        "form": form,
        "definition": draft,
        "draft_token": draft.draft_token,
        "warnings": (draft.warnings or {}).get("warnings", []),
        "diff": svc.schema_diff(web.db(), form, draft),
        "attachments": attachments,
    }
