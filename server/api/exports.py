"""Exports: Central's ``submissions.csv.zip`` and ``submissions.csv`` (GET, and POST as Central
takes it), dodoso's ``submissions.xlsx``, ``submissions.geojson`` and ``attachments.zip``,
streamed as they are made; and background exports (``…/exports``) whose file is fetched
signed in or through an expiring link (``/v1/exports/{token}``) that needs no login.

Options and filters are query arguments (a JSON object for ``POST …/exports``); a bad one is
400.41 naming it. Only people who may read the project's submissions export.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import marshmallow as ma
from flask import Response, redirect, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate
from werkzeug.datastructures import MultiDict

from server import web
from server.api.forms import send_blob
from server.api.schemas import ApiSchema, PageArgs, SubmissionFilterArgs
from server.auth import roles
from server.auth.access import load_form
from server.errors import Problems
from server.exports.columns import Layout, OptionError
from server.models import Blob, Export, Form, Job
from server.queries import exports as queries
from server.services import exports as svc
from server.storage import attachment_disposition

blp = Blueprint("exports", __name__, url_prefix="/v1",
                description="Exports: CSV (Central's), XLSX, GeoJSON, files; background "
                            "exports with expiring download links")

FORM = "/projects/<int:project_id>/forms/<xml_form_id>"
_LISTS = frozenset({"submitterId", "appUserId", "deviceId", "reviewState", "formVersion"})


class ExportOptionArgs(ApiSchema):
    """The options of every export route (each applies where it means something)."""

    class Meta(ApiSchema.Meta):
        unknown = ma.EXCLUDE  # the filter arguments are read by SubmissionFilterArgs

    attachments = fields.Boolean(load_default=True)
    group_paths = fields.Boolean(load_default=True)
    deleted_fields = fields.Boolean(load_default=False)
    split_select_multiples = fields.Boolean(load_default=False)
    labels = fields.Boolean(load_default=False)
    language = fields.String(load_default=None, validate=validate.Length(min=1, max=200))
    geo_field = fields.String(load_default=None, validate=validate.Length(min=1, max=1000))


_KNOWN = frozenset(
    {f.data_key or name for name, f in ExportOptionArgs().fields.items()}
    | {f.data_key or name for name, f in SubmissionFilterArgs().fields.items()})


def _wire(args: MultiDict[str, str]) -> dict[str, Any]:
    """Query (or form) arguments as a dict: lists for the list filters, else the last
    value. Central's decryption passphrases (numeric keys) are not used: dodoso does not
    decrypt."""
    out: dict[str, Any] = {}
    for key in args:
        if key.isdigit():
            continue
        out[key] = args.getlist(key) if key in _LISTS else args.getlist(key)[-1]
    return out


def _request(fmt: str, data: Mapping[str, Any]) -> svc.ExportRequest:
    """An export request from wire arguments, or 400.41 naming the bad one."""
    for key in data:
        if key not in _KNOWN:
            reason = ("OData query options are not supported by exports; use the filter "
                      "arguments" if key.startswith("$") else "unknown option")
            raise Problems.export_option_invalid(option=key, reason=reason)
    try:
        options = ExportOptionArgs().load(data)
        subset = SubmissionFilterArgs().load(data)
    except ma.ValidationError as invalid:
        messages = invalid.messages if isinstance(invalid.messages, dict) else {}
        option = next(iter(messages), "arguments")
        raise Problems.export_option_invalid(
            option=option, reason=_first_message(messages.get(option, invalid.messages)),
            errors=messages) from None
    if subset.submitted_from and subset.submitted_to and \
            subset.submitted_from >= subset.submitted_to:
        raise Problems.export_option_invalid(option="submittedTo",
                                             reason="must be later than submittedFrom")
    try:
        return svc.ExportRequest(
            format=fmt,
            layout=Layout(group_paths=options["group_paths"],
                          split_select_multiples=options["split_select_multiples"],
                          deleted_fields=options["deleted_fields"], labels=options["labels"],
                          language=options["language"]),
            filter=subset, attachments=options["attachments"], geo_field=options["geo_field"])
    except OptionError as error:
        raise svc.request_problem(error) from None


def _first_message(messages: Any) -> str:
    while isinstance(messages, (list, dict)) and messages:
        messages = messages[0] if isinstance(messages, list) else next(iter(messages.values()))
    return str(messages).rstrip(".") if messages else "not valid"


def _form(project_id: int, xml_form_id: str) -> Form:
    return load_form(web.db(), web.actor(), project_id, xml_form_id, roles.SUBMISSION_EXPORT)


def _stream(project_id: int, xml_form_id: str, fmt: str, args: MultiDict[str, str]) -> Response:
    """Check, plan, audit, then answer with the export streamed as it is made."""
    form = _form(project_id, xml_form_id)
    plan = svc.plan_export(web.db(), form, _request(fmt, _wire(args)))
    svc.record_export(web.db(), web.actor(), form, plan)
    chunks = svc.primed(svc.stream_export(web.db().get_bind(), web.services().blob_store,
                                          plan))
    response = Response(chunks, mimetype=plan.content_type.split(";")[0])
    if ";" in plan.content_type:
        response.headers["Content-Type"] = plan.content_type
    response.headers["Content-Disposition"] = attachment_disposition(plan.filename)
    return response


def _post_args() -> MultiDict[str, str]:
    """Central's POST variants take the same arguments, in the query or a form body."""
    merged: MultiDict[str, str] = MultiDict(request.args)
    for key in request.form:
        for value in request.form.getlist(key):
            merged.add(key, value)
    return merged


# -- synchronous exports ------------------------------------------------------------------------

@blp.route(f"{FORM}/submissions.csv.zip")
class CsvZip(MethodView):
    def get(self, project_id, xml_form_id):
        """A zip of CSVs, one per table, with the files under ``media/`` unless
        ``attachments=false`` (Central's export)."""
        return _stream(project_id, xml_form_id, "csv.zip", request.args)

    def post(self, project_id, xml_form_id):
        return _stream(project_id, xml_form_id, "csv.zip", _post_args())


@blp.route(f"{FORM}/submissions.csv")
class Csv(MethodView):
    def get(self, project_id, xml_form_id):
        """The submissions table alone, as CSV."""
        return _stream(project_id, xml_form_id, "csv", request.args)

    def post(self, project_id, xml_form_id):
        return _stream(project_id, xml_form_id, "csv", _post_args())


@blp.route(f"{FORM}/submissions.xlsx")
class Xlsx(MethodView):
    def get(self, project_id, xml_form_id):
        """One sheet per table (split past Excel's row limit)."""
        return _stream(project_id, xml_form_id, "xlsx", request.args)


@blp.route(f"{FORM}/submissions.geojson")
class GeoJson(MethodView):
    def get(self, project_id, xml_form_id):
        """A FeatureCollection of one geo field (``geoField``, else the first)."""
        return _stream(project_id, xml_form_id, "geojson", request.args)


@blp.route(f"{FORM}/attachments.zip")
class AttachmentsZip(MethodView):
    def get(self, project_id, xml_form_id):
        """Every stored file of the selected submissions, in a folder per instanceID."""
        return _stream(project_id, xml_form_id, "attachments.zip", request.args)


# -- background exports -------------------------------------------------------------------------

class ExportSchema(ApiSchema):
    id = fields.Integer(attribute="export.id")
    project_id = fields.Integer(attribute="export.project_id")
    xml_form_id = fields.String()
    format = fields.String(attribute="export.format")
    options = fields.Dict(attribute="export.options")
    status = fields.Function(lambda v: "expired" if svc.is_expired(v.export)
                             else v.export.status)
    progress = fields.Function(lambda v: _progress(v.export, v.job))
    row_count = fields.Integer(attribute="export.row_count", allow_none=True)
    byte_count = fields.Integer(attribute="export.byte_count", allow_none=True)
    filename = fields.String(attribute="export.filename", allow_none=True)
    error = fields.Function(lambda v: "The export failed; request it again."
                            if v.export.error else None)
    created_at = fields.DateTime(attribute="export.created_at")
    finished_at = fields.DateTime(attribute="export.finished_at", allow_none=True)
    expires_at = fields.DateTime(attribute="export.expires_at", allow_none=True)
    download_url = fields.Function(lambda v: v.download_url)


class NewExportSchema(ExportSchema):
    token = fields.String()
    token_url = fields.String()


class ExportLinkSchema(ApiSchema):
    token = fields.String()
    token_url = fields.String()
    expires_at = fields.DateTime(attribute="export.expires_at", allow_none=True)


class ExportView:
    """An export as the API shows it."""

    def __init__(self, export: Export, job: Job | None, form: Form,
                 token: str | None = None) -> None:
        self.export, self.job, self.xml_form_id, self.token = export, job, form.xml_form_id, token
        base = web.settings().public_url
        done = export.status == "succeeded" and not svc.is_expired(export)
        self.download_url = (f"{base}/v1/projects/{export.project_id}/forms/"
                             f"{quote(form.xml_form_id, safe='')}/exports/{export.id}/download"
                             if done else None)
        self.token_url = f"{base}/v1/exports/{token}" if token else None


def _progress(export: Export, job: Job | None) -> float:
    if export.status in ("succeeded", "expired"):
        return 1.0
    return float(job.progress or 0.0) if job is not None else 0.0


def _export(form: Form, export_id: int) -> tuple[Export, Job | None]:
    found = queries.get_for_form(web.db(), form.id, export_id)
    if found is None:
        raise Problems.not_found()
    return found


@blp.route(f"{FORM}/exports")
class Exports(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, ExportSchema(many=True))
    def get(self, args, project_id, xml_form_id):
        """The form's background exports, newest first."""
        form = _form(project_id, xml_form_id)
        return [ExportView(e, j, form) for e, j in queries.list_for_form(
            web.db(), form.id, limit=args["limit"], offset=args["offset"])]

    @blp.response(202, NewExportSchema)
    def post(self, project_id, xml_form_id):
        """Queue an export: ``{"format": "csv.zip", …options and filters}``. The answer
        shows the download link's token once."""
        form = _form(project_id, xml_form_id)
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise Problems.export_option_invalid(option="body", reason="must be a JSON object "
                                                 "with at least a format")
        data = dict(body)
        fmt = data.pop("format", None)
        if not isinstance(fmt, str) or fmt not in svc.FORMATS:
            raise Problems.export_option_invalid(
                option="format", reason=f"must be one of {', '.join(svc.FORMATS)}")
        new = svc.request_export(web.db(), web.actor(), form, _request(fmt, data))
        return ExportView(new.export, None, form, new.token)


@blp.route(f"{FORM}/exports/<int:export_id>")
class ExportById(MethodView):
    @blp.response(200, ExportSchema)
    def get(self, project_id, xml_form_id, export_id):
        """Status, progress and counts; ``downloadUrl`` once the file is ready."""
        form = _form(project_id, xml_form_id)
        return ExportView(*_export(form, export_id), form)


@blp.route(f"{FORM}/exports/<int:export_id>/download")
class ExportDownload(MethodView):
    def get(self, project_id, xml_form_id, export_id):
        """The export's file (a redirect to a short-lived URL when files live on S3)."""
        form = _form(project_id, xml_form_id)
        export, _job = _export(form, export_id)
        return _send(export, svc.downloadable(web.db(), export))


@blp.route(f"{FORM}/exports/<int:export_id>/link")
class ExportLink(MethodView):
    @blp.response(200, ExportLinkSchema)
    def post(self, project_id, xml_form_id, export_id):
        """A new download link (the previous one stops working)."""
        form = _form(project_id, xml_form_id)
        export, job = _export(form, export_id)
        new = svc.reissue_token(web.db(), web.actor(), form, export)
        return ExportView(new.export, job, form, new.token)


@blp.route("/exports/<token>")
class ExportByToken(MethodView):
    def get(self, token):
        """Download with the link's token alone (no login): 404 for an unknown token, 410
        once the export has expired."""
        export, blob = svc.by_token(web.db(), token)
        return _send(export, blob)


def _send(export: Export, blob: Blob) -> Response:
    filename = export.filename or f"export-{export.id}"
    content_type = svc.CONTENT_TYPES.get(export.format, blob.content_type)
    url = web.services().blob_store.download_url(
        blob.sha256, filename=filename, content_type=content_type,
        expires_in=web.settings().download_url_ttl_seconds)
    if url is not None:
        return redirect(url, code=302)
    return send_blob(blob, filename, content_type)
