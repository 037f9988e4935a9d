from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from server.models import LoginFailure, User


def normalise_email(email: str) -> str:
    return email.strip().lower()


def get(db: Session, user_id: int) -> User | None:
    return db.scalar(select(User).where(User.id == user_id, User.deleted_at.is_(None)))


def get_by_email(db: Session, email: str) -> User | None:
    return db.scalar(
        select(User).where(User.email == normalise_email(email), User.deleted_at.is_(None))
    )


def list_(db: Session, *, limit: int, offset: int) -> list[User]:
    stmt = (select(User).where(User.deleted_at.is_(None)).order_by(User.id)
            .limit(limit).offset(offset))
    return list(db.scalars(stmt))


def count_admins(db: Session) -> int:
    return db.scalar(
        select(func.count()).select_from(User)
        .where(User.is_admin.is_(True), User.deleted_at.is_(None))
    ) or 0


def insert(db: Session, *, email: str, display_name: str, password_hash: str | None,
           is_admin: bool = False) -> User:
    user = User(email=normalise_email(email), display_name=display_name,
                password_hash=password_hash, is_admin=is_admin)
    db.add(user)
    db.flush()
    return user


def count_recent_login_failures(db: Session, email: str, since: dt.datetime) -> int:
    return db.scalar(
        select(func.count()).select_from(LoginFailure)
        .where(LoginFailure.email == normalise_email(email), LoginFailure.attempted_at >= since)
    ) or 0


def oldest_recent_login_failure(db: Session, email: str, since: dt.datetime) -> dt.datetime | None:
    return db.scalar(
        select(func.min(LoginFailure.attempted_at))
        .where(LoginFailure.email == normalise_email(email), LoginFailure.attempted_at >= since)
    )


def insert_login_failure(db: Session, email: str) -> None:
    db.add(LoginFailure(email=normalise_email(email)))
    db.flush()


def delete_login_failures(db: Session, email: str) -> None:
    db.execute(delete(LoginFailure).where(LoginFailure.email == normalise_email(email)))


def delete_login_failures_before(db: Session, before: dt.datetime) -> int:
    return db.execute(delete(LoginFailure).where(LoginFailure.attempted_at < before)).rowcount


def list_admins(db: Session) -> list[User]:
    return list(db.scalars(select(User).where(User.is_admin.is_(True), User.deleted_at.is_(None))
                           .order_by(User.id)))
