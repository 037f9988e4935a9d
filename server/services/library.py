"""Install dodoso's form library (``forms.library``) into a project.

Each form goes through the forms service as a designer's upload would: created from its
workbook, its media attached, then published. A form the project already has is left alone
and reported, so installing again is harmless. Each form is installed inside its own
savepoint: one that fails is reported and rolled back without undoing the others.

The library's workbooks ship with dodoso (built and checked by its tests), so they are
compiled in this process rather than in the sandbox that guards uploads: spawning one
interpreter per form would make ``dodoso demo`` slow for nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from forms.compile import compile_xlsform
from forms.issues import FormInvalid
from forms.library import FORMS, LibraryForm, get
from forms.pipeline import ITEMSETS_CSV, PreparedForm, should_validate
from forms.xform import parse_xform
from server import queries
from server.auth.actor import Actor
from server.errors import Problem, Problems
from server.models import Project
from server.services import forms as forms_svc
from server.settings import Settings
from server.storage import open_blob_store

Status = Literal["installed", "present", "outdated", "unavailable", "failed"]
"""``present``: the project has this version; ``outdated``: it has another version (left
as it is); ``unavailable``: a deleted form of the project used the ID, which is never
reused; ``failed``: the forms service refused it (``detail`` says why)."""

XLSX = forms_svc.XLSFORM_CONTENT_TYPES["xlsx"]


@dataclass(frozen=True)
class Installed:
    form_id: str
    status: Status
    version: str | None
    """The version the project now has (``None`` when it has none)."""
    library_version: str
    detail: str | None = None
    awaiting: tuple[str, ...] = ()
    """Attachments the form expects that the library does not ship: entity lists."""


def resolve(form_ids: Iterable[str] | None) -> list[LibraryForm]:
    """The library forms named (all of them for ``None``), in library order."""
    if form_ids is None:
        return list(FORMS)
    wanted = list(dict.fromkeys(form_ids))
    unknown = [f for f in wanted if get(f) is None]
    if unknown:
        raise Problems.not_found({"libraryForms": unknown})
    return [f for f in FORMS if f.form_id in wanted]


def install_forms(db: Session, ctx: forms_svc.FormsContext, actor: Actor, project: Project,
                  form_ids: Sequence[str] | None = None, *,
                  assign_to: Sequence[int] = ()) -> list[Installed]:
    """Install the named library forms (all by default); ``assign_to`` app users get each
    form installed now (so Collect lists it)."""
    return [_install(db, ctx, actor, project, form, assign_to) for form in resolve(form_ids)]


def install_for_demo(db: Session, settings: Settings, actor: Actor, project: Project,
                     app_user_id: int) -> list[Installed]:
    """The whole library for ``dodoso demo``, assigned to the demo tablet. ODK Validate is
    skipped: it costs a JVM start per form, the test suite runs it on every library form,
    and the demo must work where Java is missing."""
    ctx = forms_svc.FormsContext(dataclasses.replace(settings, odk_validate="off"),
                                 open_blob_store(settings))
    return install_forms(db, ctx, actor, project, assign_to=(app_user_id,))


def summary(results: Sequence[Installed]) -> list[str]:
    """One line per form, for the command line."""
    lines = []
    for r in results:
        line = f"{r.form_id}: {r.status}"
        if r.status in ("present", "outdated", "installed"):
            line += f" (version {r.version or '(none)'}"
            line += f"; the library has {r.library_version})" if r.status == "outdated" else ")"
        if r.detail:
            line += f": {r.detail}"
        if r.awaiting:
            line += (f"; fills {', '.join(f'{n}.csv' for n in r.awaiting)} from the "
                     f"project's entity list")
        lines.append(line)
    return lines


def prepare(ctx: forms_svc.FormsContext, upload: forms_svc.Upload) -> PreparedForm:
    """A library workbook compiled in process (ODK Validate as the settings say)."""
    s = ctx.settings
    try:
        result = compile_xlsform(upload.data, kind="xlsx",
                                 validate=should_validate(s.odk_validate, s.java_path),
                                 java=s.java_path)
    except FormInvalid as invalid:
        raise forms_svc.to_problem(invalid) from None
    media = {ITEMSETS_CSV: result.itemsets.encode("utf-8")} if result.itemsets else {}
    return PreparedForm(kind="xlsx", source=upload.data, xform=result.xform,
                        info=parse_xform(result.xform), warnings=result.warnings,
                        generated_media=media)


def _install(db: Session, ctx: forms_svc.FormsContext, actor: Actor, project: Project,
             form: LibraryForm, assign_to: Sequence[int]) -> Installed:
    library_version = form.version
    existing = queries.forms.get(db, project.id, form.form_id)
    if existing is not None:
        current = queries.forms.current_def(db, existing.id)
        version = current.version if current is not None else None
        status: Status = "present" if version == library_version else "outdated"
        return Installed(form.form_id, status, version, library_version)
    if queries.forms.exists_any(db, project.id, form.form_id):
        return Installed(form.form_id, "unavailable", None, library_version,
                         detail="a deleted form of this project used the ID")
    savepoint = db.begin_nested()
    try:
        upload = forms_svc.Upload(form.xlsx(), form.xlsx_path.name, XLSX)
        created = forms_svc.create_form(db, ctx, actor, project, upload, ignore_warnings=True,
                                        prepared=prepare(ctx, upload))
        draft = queries.forms.draft_def(db, created.id)
        for name, data in form.media_files().items():
            forms_svc.upload_attachment(db, ctx, actor, created, draft, name, data, "text/csv")
        published = forms_svc.publish_draft(db, ctx, actor, created)
        for app_user_id in assign_to:
            forms_svc.assign_app_user(db, actor, created, app_user_id)
        savepoint.commit()
    except Problem as problem:
        savepoint.rollback()
        return Installed(form.form_id, "failed", None, library_version,
                         detail=f"{problem.message} [{problem.code}]")
    return Installed(form.form_id, "installed", published.version, library_version,
                     awaiting=form.entity_lists)
