"""App users: the credentials ODK Collect devices use, one token per app user."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from sqlalchemy.orm import Session

from server import queries
from server.auth.actor import Actor
from server.auth.tokens import looks_like_token, new_token, token_hash
from server.db import utcnow
from server.errors import Problems
from server.models import AppUser, Project
from server.services import audit, rules


@dataclass(frozen=True)
class NewAppUser:
    """A freshly created app user and its token: shown once, never stored in plain text."""

    app_user: AppUser
    token: str


def create_app_user(db: Session, actor: Actor, project: Project, *,
                    display_name: str) -> NewAppUser:
    display_name = rules.name("displayName", display_name)
    token = new_token()
    app_user = queries.app_users.insert(db, project_id=project.id, display_name=display_name,
                                        token_hash=token_hash(token),
                                        created_by_id=actor.user_id)
    audit.record(db, actor, "app_user.create", project_id=project.id,
                 target=("app_user", app_user.id), details={"displayName": display_name})
    return NewAppUser(app_user=app_user, token=token)


def revoke_app_user(db: Session, actor: Actor, app_user: AppUser) -> None:
    if app_user.revoked_at is not None:
        raise Problems.already_revoked(resource="app user")
    app_user.revoked_at = utcnow()
    db.flush()
    audit.record(db, actor, "app_user.revoke", project_id=app_user.project_id,
                 target=("app_user", app_user.id))


def rotate_token(db: Session, actor: Actor, app_user: AppUser) -> NewAppUser:
    """A new token for a lost QR code. Devices set up with the old one must be set up again."""
    if app_user.revoked_at is not None:
        raise Problems.already_revoked(resource="app user")
    token = new_token()
    app_user.token_hash = token_hash(token)
    db.flush()
    audit.record(db, actor, "app_user.token.rotate", project_id=app_user.project_id,
                 target=("app_user", app_user.id))
    return NewAppUser(app_user=app_user, token=token)


def holds_token(app_user: AppUser, token: str) -> bool:
    return looks_like_token(token) and hmac.compare_digest(app_user.token_hash,
                                                           token_hash(token))


def authenticate_key(db: Session, token: str) -> Actor:
    """The app user whose key is in the URL (``/v1/key/<token>/…``); 403 otherwise, as
    Central answers."""
    app_user = (queries.app_users.get_active_by_token_hash(db, token_hash(token))
                if looks_like_token(token) else None)
    if app_user is None:
        raise Problems.forbidden()
    return Actor(app_user=app_user)
