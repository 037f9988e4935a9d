from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from server.models import AuthToken, User


def get_active_with_user(db: Session, token_hash: str, now: dt.datetime
                         ) -> tuple[AuthToken, User] | None:
    row = db.execute(
        select(AuthToken, User)
        .join(User, User.id == AuthToken.user_id)
        .where(
            AuthToken.token_hash == token_hash,
            AuthToken.revoked_at.is_(None),
            or_(AuthToken.expires_at.is_(None), AuthToken.expires_at > now),
            User.deleted_at.is_(None),
        )
    ).first()
    return (row[0], row[1]) if row else None


def get_by_hash(db: Session, token_hash: str) -> AuthToken | None:
    return db.scalar(select(AuthToken).where(AuthToken.token_hash == token_hash))


def list_api_tokens(db: Session, user_id: int) -> list[AuthToken]:
    return list(db.scalars(
        select(AuthToken)
        .where(AuthToken.user_id == user_id, AuthToken.kind == "api",
               AuthToken.revoked_at.is_(None))
        .order_by(AuthToken.id)
    ))


def get_api_token(db: Session, user_id: int, token_id: int) -> AuthToken | None:
    return db.scalar(select(AuthToken).where(
        AuthToken.id == token_id, AuthToken.user_id == user_id, AuthToken.kind == "api"))


def insert(db: Session, *, user_id: int, token_hash: str, kind: str,
           expires_at: dt.datetime | None, label: str | None = None) -> AuthToken:
    token = AuthToken(user_id=user_id, token_hash=token_hash, kind=kind, expires_at=expires_at,
                      label=label)
    db.add(token)
    db.flush()
    return token


def revoke_all_for_user(db: Session, user_id: int, now: dt.datetime,
                        except_id: int | None = None) -> int:
    stmt = (update(AuthToken)
            .where(AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None))
            .values(revoked_at=now))
    if except_id is not None:
        stmt = stmt.where(AuthToken.id != except_id)
    return db.execute(stmt).rowcount


def delete_expired(db: Session, now: dt.datetime) -> int:
    return db.execute(
        delete(AuthToken).where(AuthToken.kind == "session",
                                or_(AuthToken.expires_at < now, AuthToken.revoked_at.is_not(None)))
    ).rowcount
