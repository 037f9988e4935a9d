"""Projects and the roles people hold in them."""

from __future__ import annotations

from sqlalchemy.orm import Session

from server import queries
from server.auth.actor import Actor
from server.db import utcnow
from server.errors import Problems
from server.models import Project, ProjectRole, User
from server.services import audit, rules
from server.services.app_users import VERIFIED_KEYS


def create_project(db: Session, actor: Actor, *, name: str,
                   description: str | None = None) -> Project:
    name = rules.name("name", name)
    project = queries.projects.insert(db, name=name, description=description)
    audit.record(db, actor, "project.create", project_id=project.id,
                 target=("project", project.id), details={"name": name})
    return project


def update_project(db: Session, actor: Actor, project: Project, *, name: str | None = None,
                   description: str | None = None, archived: bool | None = None) -> Project:
    changes: dict[str, object] = {}
    name = rules.name("name", name) if name is not None else None
    for field, value in (("name", name), ("description", description), ("archived", archived)):
        if value is not None and getattr(project, field) != value:
            setattr(project, field, value)
            changes[field] = value
    if changes:
        project.updated_at = utcnow()
        db.flush()
        audit.record(db, actor, "project.update", project_id=project.id,
                     target=("project", project.id), details=changes)
    return project


def delete_project(db: Session, actor: Actor, project: Project) -> None:
    """Soft delete: the project disappears from every listing; its data is kept."""
    project.deleted_at = utcnow()
    for app_user in queries.app_users.list_(db, project.id):
        app_user.revoked_at = project.deleted_at
        VERIFIED_KEYS.forget(app_user.id)
    db.flush()
    audit.record(db, actor, "project.delete", project_id=project.id,
                 target=("project", project.id))


def assign_role(db: Session, actor: Actor, project: Project, user: User,
                role: str) -> ProjectRole:
    existing = queries.projects.get_role(db, project.id, user.id, role)
    if existing is not None:
        return existing
    grant = queries.projects.insert_role(db, project_id=project.id, user_id=user.id, role=role,
                                         granted_by_id=actor.user_id)
    audit.record(db, actor, "project.role.assign", project_id=project.id,
                 target=("user", user.id), details={"role": role})
    return grant


def unassign_role(db: Session, actor: Actor, project: Project, user_id: int, role: str) -> None:
    if not queries.projects.delete_role(db, project.id, user_id, role):
        raise Problems.not_found()
    audit.record(db, actor, "project.role.unassign", project_id=project.id,
                 target=("user", user_id), details={"role": role})
