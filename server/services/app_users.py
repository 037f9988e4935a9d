"""App users: the credentials ODK Collect devices use, one token per app user."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from server import queries
from server.auth.actor import Actor
from server.auth.tokens import looks_like_token, new_token, token_hash
from server.caches import bounded_put
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
    VERIFIED_KEYS.forget(app_user.id)
    audit.record(db, actor, "app_user.revoke", project_id=app_user.project_id,
                 target=("app_user", app_user.id))


def rotate_token(db: Session, actor: Actor, app_user: AppUser) -> NewAppUser:
    """A new token for a lost QR code. Devices set up with the old one must be set up again."""
    if app_user.revoked_at is not None:
        raise Problems.already_revoked(resource="app user")
    token = new_token()
    app_user.token_hash = token_hash(token)
    db.flush()
    VERIFIED_KEYS.forget(app_user.id)
    audit.record(db, actor, "app_user.token.rotate", project_id=app_user.project_id,
                 target=("app_user", app_user.id))
    return NewAppUser(app_user=app_user, token=token)


def holds_token(app_user: AppUser, token: str) -> bool:
    return looks_like_token(token) and hmac.compare_digest(app_user.token_hash,
                                                           token_hash(token))


def authenticate_key(db: Session, token: str) -> Actor:
    """The app user whose key is in the URL (``/v1/key/<token>/…``); 403 otherwise, as
    Central answers. Always checked against the database."""
    if not looks_like_token(token):
        raise Problems.forbidden()
    hashed = token_hash(token)
    app_user = queries.app_users.get_active_by_token_hash(db, hashed)
    if app_user is None:
        raise Problems.forbidden()
    VERIFIED_KEYS.remember(hashed, app_user.id, app_user.project_id)
    return Actor(app_user=app_user)


HEAD_TRUST_SECONDS = 5.0
"""How long a key verified by this process is taken on trust by requests that neither reveal
nor store anything (Collect's HEAD before each upload)."""


@dataclass(frozen=True)
class RecalledKey:
    """A key this process verified earlier: who it belonged to. Whether it is still valid
    (not revoked, not rotated, its project not deleted) must be checked again by the
    transaction that relies on it."""

    token_hash: str
    app_user_id: int
    project_id: int
    verified_at: float
    actor: Actor
    """A stand-in built once: a transient app user with only its id and project, which is
    all the sync path reads. Never added to a session."""


class VerifiedKeys:
    """Keys this process verified recently, by hash (never the key itself). Collect sends a
    HEAD and then a POST for every submission; verifying the key once for both, and folding
    the POST's re-check into ingest's own lookup, saves two queries per submission."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._entries: dict[str, RecalledKey] = {}

    def remember(self, hashed: str, app_user_id: int, project_id: int) -> None:
        bounded_put(self._entries, hashed, RecalledKey(
            hashed, app_user_id, project_id, time.monotonic(),
            Actor(app_user=AppUser(id=app_user_id, project_id=project_id))), self.size)

    def recall(self, token: str) -> RecalledKey | None:
        return self._entries.get(token_hash(token)) if looks_like_token(token) else None

    def forget(self, app_user_id: int) -> None:
        """After a revocation or a rotation here (other processes find out by re-checking)."""
        for hashed, entry in list(self._entries.items()):
            if entry.app_user_id == app_user_id:
                self._entries.pop(hashed, None)

    def clear(self) -> None:
        self._entries.clear()


VERIFIED_KEYS = VerifiedKeys()


def authenticate_key_recent(db: Callable[[], Session], token: str,
                            within: float | None = None) -> Actor:
    """``authenticate_key``, but a key this process verified in the last ``within`` seconds
    is taken on trust, without opening a session (``db`` is called only when needed). Only
    for requests that reveal and store nothing: a revoked key may pass such a request for
    that long, never a submission or a download."""
    recalled = recall_trusted(token, within)
    if recalled is not None:
        return recalled.actor
    return authenticate_key(db(), token)


def recall_trusted(token: str, within: float | None = None) -> RecalledKey | None:
    """The key, if this process verified it in the last ``within`` seconds (by default
    ``HEAD_TRUST_SECONDS``): to be taken on trust only where nothing is revealed or stored."""
    within = HEAD_TRUST_SECONDS if within is None else within
    recalled = VERIFIED_KEYS.recall(token)
    if recalled is not None and time.monotonic() - recalled.verified_at < within:
        return recalled
    return None
