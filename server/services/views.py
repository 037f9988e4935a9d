"""Keeping each form's analyst views (``server.queries.views``) in step with its versions.

PostgreSQL only: on SQLite (the embedded default, one user) these do nothing.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from forms.schema import FormSchema
from server import queries
from server.models import Form
from server.queries import views


def supported(db: Session) -> bool:
    return db.get_bind().dialect.name == "postgresql"


def refresh(db: Session, form: Form) -> list[str]:
    """(Re)build the form's views from its published versions; returns their names."""
    if not supported(db):
        return []
    old = views.existing(db, form.id)
    published = queries.forms.published_defs(db, form.id)
    if form.deleted_at is not None or not published:
        views.drop(db, old)
        return []
    schemas = [FormSchema.from_json(d.schema) for d in reversed(published)]
    specs = views.view_specs(form.project_id, form.xml_form_id, schemas)
    views.replace(db, form.id, specs, old)
    return [s.name for s in specs]


def drop(db: Session, form: Form) -> None:
    if supported(db):
        views.drop(db, views.existing(db, form.id))


def refresh_all(db: Session) -> list[tuple[Form, list[str]]]:
    """Every live form's views, rebuilt (after an upgrade, or a restore)."""
    return [(form, refresh(db, form)) for form in views.live_forms(db)]
