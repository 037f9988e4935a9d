"""Forms put up without HTTP, through the services: for tests whose app commits for real, or
that migrate a database of their own (HTTP uploads: ``tests.support.api``); and app users
given a form to fill in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from server import queries
from server.auth.actor import SYSTEM, Actor
from server.models import AppUser, Form, Project
from server.services.forms import FormsContext, Upload, assign_app_user, create_form
from tests.support.xlsx import XLSX, md_to_xlsx

if TYPE_CHECKING:
    from tests.conftest import Factory


def publish_md(db: Session, ctx: FormsContext, actor: Actor, project: Project, md: str, *,
               filename: str) -> Form:
    """A form published from an XLSForm written as a markdown table, warnings ignored;
    flushed, not committed."""
    return create_form(db, ctx, actor, project, Upload(md_to_xlsx(md), filename, XLSX),
                       publish=True, ignore_warnings=True)


def assigned_app_user(make: Factory, db: Session, project: Project, xml_form_id: str,
                      name: str = "Tablet 1") -> tuple[AppUser, str]:
    """A new app user of ``project`` (and its token) assigned to the form, so that it may
    list and submit to it; committed."""
    app_user, token = make.app_user(project, name)
    assign_app_user(db, SYSTEM, queries.forms.get(db, project.id, xml_form_id), app_user.id)
    db.commit()
    return app_user, token
