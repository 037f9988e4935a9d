"""Form lifecycle: create, draft, publish, versions, state, media.

Rules: one draft per form; a published version string is never reused; a field's data type
never changes between versions except to text; every version is kept.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from forms.diff import check_compatible, diff_schemas
from forms.guards import UploadLimits
from forms.issues import FormInvalid, FormIssue
from forms.media import check_csv
from forms.pipeline import Limits, PreparedForm, prepare_form, set_version, should_validate
from forms.schema import FormSchema
from forms.xform import XFormInfo, parse_xform
from server import queries
from server.auth.actor import Actor
from server.auth.tokens import new_token
from server.db import utcnow
from server.errors import Problem, Problems
from server.models import Form, FormAttachment, FormDef, Project
from server.services import audit, entities, views
from server.services.blobs import store_blob
from server.settings import Settings
from server.storage import BlobStore

XLSFORM_CONTENT_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xls": "application/vnd.ms-excel",
    "csv": "text/csv",
    "md": "text/markdown",
}
MAX_FORM_ID_LENGTH = 255


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class FormsContext:
    """What the form services need besides the session: settings and the blob store."""

    settings: Settings
    store: BlobStore


def _issues(issues: list[FormIssue]) -> list[dict[str, Any]]:
    return [i.to_json() for i in issues]


def prepare(ctx: FormsContext, upload: Upload, fallback_id: str | None) -> PreparedForm:
    s = ctx.settings
    try:
        return prepare_form(
            upload.data, filename=upload.filename, content_type=upload.content_type,
            form_id_fallback=fallback_id, validate=should_validate(s.odk_validate, s.java_path),
            java=s.java_path,
            limits=Limits(upload=UploadLimits(max_bytes=s.form_max_bytes),
                          timeout_s=s.form_compile_timeout_seconds,
                          memory_bytes=s.form_compile_memory_bytes))
    except FormInvalid as invalid:
        raise to_problem(invalid) from None


def to_problem(invalid: FormInvalid) -> Problem:
    details = {"errors": _issues(invalid.errors), "warnings": _issues(invalid.warnings)}
    return (Problems.form_too_large if invalid.too_large else Problems.form_invalid)(details)


def _check_form_id(form_id: str, *, xlsform: bool) -> None:
    lowered = form_id.lower()
    if (not form_id or len(form_id) > MAX_FORM_ID_LENGTH
            or lowered.endswith((".xml", ".xls", ".xlsx"))):
        where = ("Set form_id on the settings sheet." if xlsform else
                 "Change the id attribute of the XForm's primary instance.")
        raise Problems.form_invalid({"errors": [FormIssue(
            "error", "form.bad_id",
            f"The form ID '{form_id[:80]}' cannot be used: it must be 1 to "
            f"{MAX_FORM_ID_LENGTH} characters and must not end in .xml, .xls or .xlsx. "
            + where, sheet="settings" if xlsform else None,
            column="form_id" if xlsform else None).to_json()], "warnings": []})


def create_form(db: Session, ctx: FormsContext, actor: Actor, project: Project, upload: Upload,
                *, publish: bool = False, ignore_warnings: bool = False,
                fallback_id: str | None = None, prepared: PreparedForm | None = None) -> Form:
    """``prepared``: the upload already through the pipeline (dodoso's own form library)."""
    prepared = prepared or prepare(ctx, upload, fallback_id)
    _refuse_warnings(prepared, ignore_warnings)
    form_id = prepared.info.form_id
    _check_form_id(form_id, xlsform=prepared.is_xlsform)
    if queries.forms.exists_any(db, project.id, form_id):
        raise Problems.unique_conflict(fields="xmlFormId", values=form_id)
    form = queries.forms.insert(db, Form(project_id=project.id, xml_form_id=form_id,
                                         created_by_id=actor.user_id))
    draft = _insert_def(db, ctx, actor, form, prepared, upload, previous=None)
    audit.record(db, actor, "form.create", project_id=project.id, target=("form", form.id),
                 details={"xmlFormId": form_id, "version": draft.version})
    if publish:
        publish_draft(db, ctx, actor, form)
    return form


def create_draft(db: Session, ctx: FormsContext, actor: Actor, form: Form,
                 upload: Upload | None, *, ignore_warnings: bool = False,
                 fallback_id: str | None = None) -> FormDef:
    """A new draft from an upload, or (no upload) a copy of the published version. Replaces
    any existing draft."""
    current = queries.forms.current_def(db, form.id)
    source: Upload | FormDef
    if upload is None:
        if current is None:
            raise Problems.not_found()
        xml = current.xml.encode("utf-8")
        prepared = PreparedForm(kind="xml", source=xml, xform=xml, info=parse_xform(xml))
        source = current
    else:
        prepared = prepare(ctx, upload, fallback_id)
        source = upload
    _refuse_warnings(prepared, ignore_warnings)
    if prepared.info.form_id != form.xml_form_id:
        raise Problems.form_id_mismatch(found=prepared.info.form_id, expected=form.xml_form_id)
    _refuse_retyping(db, form, prepared.info.schema)
    old = queries.forms.draft_def(db, form.id)
    previous = old or current
    if old is not None:
        # Keep the old draft's media for the new one before it goes.
        carried = {a.name: a.blob_id for a, _ in queries.forms.attachments(db, old.id)}
        queries.forms.delete_def(db, old)
    else:
        carried = None
    draft = _insert_def(db, ctx, actor, form, prepared, source, previous=previous,
                        carried=carried)
    audit.record(db, actor, "form.draft.create", project_id=form.project_id,
                 target=("form", form.id), details={"version": draft.version})
    return draft


def publish_draft(db: Session, ctx: FormsContext, actor: Actor, form: Form,
                  version: str | None = None) -> FormDef:
    draft = queries.forms.draft_def(db, form.id)
    if draft is None:
        raise Problems.not_found()
    if version is not None and version != draft.version:
        xml = set_version(draft.xml.encode("utf-8"), version)
        draft.xml = xml.decode("utf-8")
        draft.xml_md5 = hashlib.md5(xml).hexdigest()
        draft.xml_sha256 = hashlib.sha256(xml).hexdigest()
        draft.version = version
    if queries.forms.published_def_by_version(db, form.id, draft.version) is not None:
        raise Problems.version_exists(version=draft.version)
    _refuse_retyping(db, form, FormSchema.from_json(draft.schema))
    _refuse_unusable_media(db, ctx, draft)
    draft.published_at = utcnow()
    draft.published_by_id = actor.user_id
    draft.draft_token = None
    queries.submissions.delete_drafts(db, form.id)
    form.updated_at = draft.published_at
    db.flush()
    views.refresh(db, form)
    if draft.entities:  # the datasets it declares exist from the publish on
        entities.sync_datasets(db, form.project_id)
    audit.record(db, actor, "form.publish", project_id=form.project_id,
                 target=("form", form.id), details={"version": draft.version})
    return draft


def delete_draft(db: Session, actor: Actor, form: Form) -> None:
    draft = queries.forms.draft_def(db, form.id)
    if draft is None:
        raise Problems.not_found()
    queries.submissions.delete_drafts(db, form.id)
    queries.forms.delete_def(db, draft)
    audit.record(db, actor, "form.draft.delete", project_id=form.project_id,
                 target=("form", form.id), details={"version": draft.version})


def update_form(db: Session, actor: Actor, form: Form, *, state: str | None) -> Form:
    if state is not None and state != form.state:
        audit.record(db, actor, "form.update", project_id=form.project_id,
                     target=("form", form.id), details={"state": state, "was": form.state})
        form.state = state
        form.updated_at = utcnow()
        db.flush()
    return form


def delete_form(db: Session, actor: Actor, form: Form) -> None:
    """Soft delete: every version and its data are kept."""
    form.deleted_at = utcnow()
    draft = queries.forms.draft_def(db, form.id)
    if draft is not None:
        draft.draft_token = None
    db.flush()
    views.drop(db, form)
    audit.record(db, actor, "form.delete", project_id=form.project_id, target=("form", form.id))


def upload_attachment(db: Session, ctx: FormsContext, actor: Actor, form: Form, draft: FormDef,
                      name: str, data: bytes, content_type: str | None) -> FormAttachment:
    attachment = queries.forms.attachment(db, draft.id, name)
    if attachment is None:
        raise Problems.not_found()
    if _is_csv(name):
        schema_columns = _csv_columns(draft).get(name, set())
        problems = check_csv(name, data, schema_columns)
        if problems:
            raise Problems.attachment_invalid({"errors": _issues(problems)}, name=name)
    blob = store_blob(db, ctx.store, io.BytesIO(data), content_type=content_type,
                      max_bytes=ctx.settings.max_submission_bytes)
    attachment.blob_id = blob.id
    attachment.updated_at = utcnow()
    db.flush()
    audit.record(db, actor, "form.attachment.update", project_id=form.project_id,
                 target=("form", form.id), details={"name": name, "sha256": blob.sha256})
    return attachment


def clear_attachment(db: Session, actor: Actor, form: Form, draft: FormDef, name: str) -> None:
    attachment = queries.forms.attachment(db, draft.id, name)
    if attachment is None or attachment.blob_id is None:
        raise Problems.not_found()
    attachment.blob_id = None
    attachment.updated_at = utcnow()
    db.flush()
    audit.record(db, actor, "form.attachment.clear", project_id=form.project_id,
                 target=("form", form.id), details={"name": name})


def schema_diff(db: Session, form: Form, draft: FormDef) -> dict[str, Any] | None:
    """What publishing the draft would change, against the current published version."""
    current = queries.forms.current_def(db, form.id)
    if current is None:
        return None
    return diff_schemas(FormSchema.from_json(current.schema),
                        FormSchema.from_json(draft.schema)).to_json()


# -- helpers --------------------------------------------------------------------------------

def _refuse_warnings(prepared: PreparedForm, ignore_warnings: bool) -> None:
    if prepared.warnings and not ignore_warnings:
        raise Problems.form_warnings({"warnings": _issues(prepared.warnings)})


def _refuse_retyping(db: Session, form: Form, schema: FormSchema) -> None:
    history = [FormSchema.from_json(d.schema) for d in queries.forms.published_defs(db, form.id)]
    problems = check_compatible(history, schema)
    if problems:
        fields = ", ".join(sorted({p.field or "?" for p in problems}))
        raise Problems.field_retyped({"errors": _issues(problems)}, fields=fields)


def _refuse_unusable_media(db: Session, ctx: FormsContext, draft: FormDef) -> None:
    problems: list[FormIssue] = []
    columns = _csv_columns(draft)
    for attachment, blob in queries.forms.attachments(db, draft.id):
        if blob is not None and _is_csv(attachment.name):
            data = b"".join(ctx.store.iter_chunks(blob.sha256))
            problems.extend(check_csv(attachment.name, data, columns.get(attachment.name, set())))
    if problems:
        raise Problems.media_invalid({"errors": _issues(problems)})


def _insert_def(db: Session, ctx: FormsContext, actor: Actor, form: Form,
                prepared: PreparedForm, source: Upload | FormDef, *,
                previous: FormDef | None, carried: dict[str, int | None] | None = None
                ) -> FormDef:
    info = prepared.info
    blob_id, filename, content_type = _store_source(db, ctx, prepared, source)
    draft = queries.forms.insert_def(db, FormDef(
        form_id=form.id,
        version=info.version or "",
        title=(info.title or form.xml_form_id)[:1000],
        xml=prepared.xform.decode("utf-8"),
        xml_md5=hashlib.md5(prepared.xform).hexdigest(),
        xml_sha256=hashlib.sha256(prepared.xform).hexdigest(),
        schema=info.schema.to_json(),
        encryption_key=info.encryption_key,
        entities={"entities": [e.to_json() for e in info.entities]} if info.entities else None,
        warnings={"warnings": _issues(prepared.warnings)} if prepared.warnings else None,
        xlsform_blob_id=blob_id,
        xlsform_filename=filename,
        xlsform_content_type=content_type,
        draft_token=new_token(),
        created_by_id=actor.user_id,
    ))
    reuse = carried if carried is not None else (
        {a.name: a.blob_id for a, _ in queries.forms.attachments(db, previous.id)}
        if previous is not None else {})
    for name, data in prepared.generated_media.items():
        reuse[name] = store_blob(db, ctx.store, io.BytesIO(data), content_type="text/csv").id
    for ref in _unique_media(info):
        queries.forms.insert_attachment(db, FormAttachment(
            form_def_id=draft.id, name=ref.name, kind=ref.kind, blob_id=reuse.get(ref.name)))
    return draft


def _store_source(db: Session, ctx: FormsContext, prepared: PreparedForm,
                  source: Upload | FormDef) -> tuple[int | None, str | None, str | None]:
    """Keep the original XLSForm (an XForm upload is its own source)."""
    if isinstance(source, FormDef):
        return source.xlsform_blob_id, source.xlsform_filename, source.xlsform_content_type
    if not prepared.is_xlsform:
        return None, None, None
    content_type = XLSFORM_CONTENT_TYPES[prepared.kind]
    blob = store_blob(db, ctx.store, io.BytesIO(source.data), content_type=content_type)
    return blob.id, source.filename, content_type


def _unique_media(info: XFormInfo) -> list[Any]:
    seen: dict[str, Any] = {}
    for ref in info.media:
        seen.setdefault(ref.name, ref)
    return list(seen.values())


def _csv_columns(draft: FormDef) -> dict[str, set[str]]:
    return {k: set(v) for k, v in parse_xform(draft.xml.encode("utf-8")).csv_columns.items()}


def _is_csv(name: str) -> bool:
    return name.lower().endswith(".csv")


def assign_app_user(db: Session, actor: Actor, form: Form, app_user_id: int) -> None:
    app_user = queries.app_users.get(db, form.project_id, app_user_id)
    if app_user is None or app_user.revoked_at is not None:
        raise Problems.not_found()
    queries.forms.insert_assignment(db, form.id, app_user.id)
    audit.record(db, actor, "form.assignment.create", project_id=form.project_id,
                 target=("form", form.id), details={"appUserId": app_user.id})


def unassign_app_user(db: Session, actor: Actor, form: Form, app_user_id: int) -> None:
    if not queries.forms.delete_assignment(db, form.id, app_user_id):
        raise Problems.not_found()
    audit.record(db, actor, "form.assignment.delete", project_id=form.project_id,
                 target=("form", form.id), details={"appUserId": app_user_id})
