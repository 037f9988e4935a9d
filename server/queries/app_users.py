from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from server.models import AppUser, Project


def get(db: Session, project_id: int, app_user_id: int) -> AppUser | None:
    return db.scalar(select(AppUser).where(AppUser.id == app_user_id,
                                           AppUser.project_id == project_id))


_ACTIVE_BY_TOKEN_HASH = (
    select(AppUser).join(Project, Project.id == AppUser.project_id)
    .where(AppUser.token_hash == bindparam("token_hash"), AppUser.revoked_at.is_(None),
           Project.deleted_at.is_(None))
)  # built once: every Collect request authenticates with it


def get_active_by_token_hash(db: Session, token_hash: str) -> AppUser | None:
    return db.scalar(_ACTIVE_BY_TOKEN_HASH, {"token_hash": token_hash})


def list_(db: Session, project_id: int, *, include_revoked: bool = False) -> list[AppUser]:
    stmt = select(AppUser).where(AppUser.project_id == project_id).order_by(AppUser.id)
    if not include_revoked:
        stmt = stmt.where(AppUser.revoked_at.is_(None))
    return list(db.scalars(stmt))


def insert(db: Session, *, project_id: int, display_name: str, token_hash: str,
           created_by_id: int | None) -> AppUser:
    app_user = AppUser(project_id=project_id, display_name=display_name, token_hash=token_hash,
                       created_by_id=created_by_id)
    db.add(app_user)
    db.flush()
    return app_user
