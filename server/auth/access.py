"""Access checks. Another project's resource answers 404, so its existence never leaks."""

from __future__ import annotations

from sqlalchemy.orm import Session

from server import queries
from server.auth.actor import Actor
from server.auth.roles import SITE_ONLY_VERBS, verbs_for
from server.errors import Problems
from server.models import Form, Project


def require_authenticated(actor: Actor) -> None:
    if not actor.authenticated:
        raise Problems.auth_required()


def require_site(actor: Actor, verb: str) -> None:
    """A verb that only site administrators hold (creating projects, managing users)."""
    require_authenticated(actor)
    if not actor.is_admin:
        raise Problems.forbidden()
    assert verb in SITE_ONLY_VERBS, verb


def project_verbs(db: Session, actor: Actor, project_id: int) -> frozenset[str]:
    if actor.user is None:
        return frozenset()
    if actor.is_admin:
        from server.auth.roles import ALL_VERBS

        return ALL_VERBS
    return verbs_for(queries.projects.roles_of(db, project_id, actor.user.id))


def load_project(db: Session, actor: Actor, project_id: int, verb: str) -> Project:
    """The project, if the actor may see it (else 404) and holds ``verb`` on it (else 403)."""
    require_authenticated(actor)
    project = queries.projects.get(db, project_id)
    if project is None:
        raise Problems.not_found()
    verbs = project_verbs(db, actor, project.id)
    if not verbs:
        raise Problems.not_found()
    if verb not in verbs:
        raise Problems.forbidden()
    return project


def load_form(db: Session, actor: Actor, project_id: int, xml_form_id: str, verb: str) -> Form:
    """A form of a project the actor may see (else 404), with ``verb`` on it (else 403)."""
    project = load_project(db, actor, project_id, verb)
    form = queries.forms.get(db, project.id, xml_form_id)
    if form is None:
        raise Problems.not_found()
    return form
