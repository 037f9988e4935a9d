from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.models import Project, ProjectRole, User


def get(db: Session, project_id: int) -> Project | None:
    return db.scalar(select(Project).where(Project.id == project_id,
                                           Project.deleted_at.is_(None)))


def list_all(db: Session) -> list[Project]:
    return list(db.scalars(select(Project).where(Project.deleted_at.is_(None))
                           .order_by(Project.name, Project.id)))


def list_for_user(db: Session, user_id: int) -> list[Project]:
    member = select(ProjectRole.project_id).where(ProjectRole.user_id == user_id)
    return list(db.scalars(
        select(Project)
        .where(Project.deleted_at.is_(None), Project.id.in_(member))
        .order_by(Project.name, Project.id)
    ))


def insert(db: Session, *, name: str, description: str | None) -> Project:
    project = Project(name=name, description=description)
    db.add(project)
    db.flush()
    return project


def roles_of(db: Session, project_id: int, user_id: int) -> set[str]:
    return set(db.scalars(select(ProjectRole.role).where(
        ProjectRole.project_id == project_id, ProjectRole.user_id == user_id)))


def list_roles(db: Session, project_id: int) -> list[tuple[ProjectRole, User]]:
    rows = db.execute(
        select(ProjectRole, User).join(User, User.id == ProjectRole.user_id)
        .where(ProjectRole.project_id == project_id, User.deleted_at.is_(None))
        .order_by(ProjectRole.role, User.id)
    ).all()
    return [(r, u) for r, u in rows]


def get_role(db: Session, project_id: int, user_id: int, role: str) -> ProjectRole | None:
    return db.get(ProjectRole, (project_id, user_id, role))


def insert_role(db: Session, *, project_id: int, user_id: int, role: str,
                granted_by_id: int | None) -> ProjectRole:
    grant = ProjectRole(project_id=project_id, user_id=user_id, role=role,
                        granted_by_id=granted_by_id)
    db.add(grant)
    db.flush()
    return grant


def delete_role(db: Session, project_id: int, user_id: int, role: str) -> int:
    return db.execute(delete(ProjectRole).where(
        ProjectRole.project_id == project_id, ProjectRole.user_id == user_id,
        ProjectRole.role == role)).rowcount
