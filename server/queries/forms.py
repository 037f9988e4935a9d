from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.models import Blob, Form, FormAssignment, FormAttachment, FormDef


def get(db: Session, project_id: int, xml_form_id: str) -> Form | None:
    return db.scalar(select(Form).where(Form.project_id == project_id,
                                        Form.xml_form_id == xml_form_id,
                                        Form.deleted_at.is_(None)))


def exists_any(db: Session, project_id: int, xml_form_id: str) -> bool:
    """Deleted forms included: a form id is never reused within a project."""
    return db.scalar(select(Form.id).where(Form.project_id == project_id,
                                           Form.xml_form_id == xml_form_id)) is not None


def list_with_shown_def(db: Session, project_id: int) -> list[tuple[Form, FormDef | None]]:
    """Every form of the project with the version to show for it (the current published
    one, else the draft), in one query."""
    rows = db.execute(
        select(Form, FormDef).outerjoin(FormDef, FormDef.id == _shown_def_id())
        .where(Form.project_id == project_id, Form.deleted_at.is_(None))
        .order_by(Form.xml_form_id)
    ).all()
    return [(f, d) for f, d in rows]


def shown_def(db: Session, form_id: int) -> FormDef | None:
    """The current published version, else the draft."""
    return current_def(db, form_id) or draft_def(db, form_id)


def _latest_published_id():
    """Correlated: the id of the enclosing form's current published version."""
    return (select(FormDef.id).where(FormDef.form_id == Form.id,
                                     FormDef.published_at.is_not(None))
            .order_by(FormDef.published_at.desc(), FormDef.id.desc()).limit(1)
            .correlate(Form).scalar_subquery())


def _shown_def_id():
    draft = (select(FormDef.id).where(FormDef.form_id == Form.id,
                                      FormDef.published_at.is_(None))
             .correlate(Form).scalar_subquery())
    return func.coalesce(_latest_published_id(), draft)


def insert(db: Session, form: Form) -> Form:
    db.add(form)
    db.flush()
    return form


def insert_def(db: Session, form_def: FormDef) -> FormDef:
    db.add(form_def)
    db.flush()
    return form_def


def current_def(db: Session, form_id: int) -> FormDef | None:
    return db.scalar(select(FormDef).where(FormDef.form_id == form_id,
                                           FormDef.published_at.is_not(None))
                     .order_by(FormDef.published_at.desc(), FormDef.id.desc()).limit(1))


def draft_def(db: Session, form_id: int) -> FormDef | None:
    return db.scalar(select(FormDef).where(FormDef.form_id == form_id,
                                           FormDef.published_at.is_(None)))


def published_defs(db: Session, form_id: int) -> list[FormDef]:
    """Every published version, oldest first."""
    return list(db.scalars(select(FormDef).where(FormDef.form_id == form_id,
                                                 FormDef.published_at.is_not(None))
                           .order_by(FormDef.published_at, FormDef.id)))


def published_def_by_version(db: Session, form_id: int, version: str) -> FormDef | None:
    return db.scalar(select(FormDef).where(FormDef.form_id == form_id,
                                           FormDef.version == version,
                                           FormDef.published_at.is_not(None)))


def attachments(db: Session, form_def_id: int) -> list[tuple[FormAttachment, Blob | None]]:
    rows = db.execute(
        select(FormAttachment, Blob).outerjoin(Blob, Blob.id == FormAttachment.blob_id)
        .where(FormAttachment.form_def_id == form_def_id).order_by(FormAttachment.name)
    ).all()
    return [(a, b) for a, b in rows]


def attachment(db: Session, form_def_id: int, name: str) -> FormAttachment | None:
    return db.scalar(select(FormAttachment).where(FormAttachment.form_def_id == form_def_id,
                                                  FormAttachment.name == name))


def insert_attachment(db: Session, attachment: FormAttachment) -> FormAttachment:
    db.add(attachment)
    db.flush()
    return attachment


def delete_def(db: Session, form_def: FormDef) -> None:
    db.delete(form_def)
    db.flush()


def list_offered(db: Session, project_id: int) -> list[tuple[Form, FormDef]]:
    """The forms Collect is offered: open, not deleted, with a published version."""
    rows = db.execute(
        select(Form, FormDef).join(FormDef, FormDef.id == _latest_published_id())
        .where(Form.project_id == project_id, Form.deleted_at.is_(None), Form.state == "open")
        .order_by(Form.xml_form_id)
    ).all()
    return [(f, d) for f, d in rows]


def has_attachments(db: Session, form_def_id: int) -> bool:
    return db.scalar(select(FormAttachment.id).where(FormAttachment.form_def_id == form_def_id)
                     .limit(1)) is not None


def is_assigned(db: Session, form_id: int, app_user_id: int) -> bool:
    return db.get(FormAssignment, (form_id, app_user_id)) is not None


def assigned_app_users(db: Session, form_id: int) -> list[int]:
    return list(db.scalars(select(FormAssignment.app_user_id)
                           .where(FormAssignment.form_id == form_id)
                           .order_by(FormAssignment.app_user_id)))


def insert_assignment(db: Session, form_id: int, app_user_id: int) -> None:
    if not is_assigned(db, form_id, app_user_id):
        db.add(FormAssignment(form_id=form_id, app_user_id=app_user_id))
        db.flush()


def delete_assignment(db: Session, form_id: int, app_user_id: int) -> bool:
    assignment = db.get(FormAssignment, (form_id, app_user_id))
    if assignment is None:
        return False
    db.delete(assignment)
    db.flush()
    return True
