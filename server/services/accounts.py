"""Users, log-in, sessions and API tokens."""

from __future__ import annotations

import datetime as dt
import hmac
import math
from dataclasses import dataclass

from sqlalchemy.orm import Session

from server import queries
from server.auth.actor import Actor
from server.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, Passwords
from server.auth.tokens import looks_like_token, new_token, token_hash
from server.db import utcnow
from server.errors import Problems
from server.models import AuthToken, User
from server.services import audit, rules
from server.settings import Settings


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued bearer token: the only moment its plain text exists."""

    token: str
    record: AuthToken


def check_password_policy(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise Problems.invalid_parameter(
            field="password",
            reason=f"must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long",
        )


def create_user(db: Session, passwords: Passwords, actor: Actor, *, email: str,
                display_name: str | None = None, password: str | None = None,
                is_admin: bool = False) -> User:
    email = rules.email(email)
    display_name = rules.name("displayName", display_name or email.split("@")[0])
    if queries.users.get_by_email(db, email) is not None:
        raise Problems.unique_conflict(fields="email", values=queries.users.normalise_email(email))
    if password is not None:
        check_password_policy(password)
    user = queries.users.insert(
        db, email=email, display_name=display_name,
        password_hash=passwords.hash(password) if password is not None else None,
        is_admin=is_admin,
    )
    audit.record(db, actor, "user.create", target=("user", user.id),
                 details={"email": user.email, "isAdmin": is_admin})
    return user


def update_user(db: Session, actor: Actor, user: User, *, display_name: str | None = None,
                email: str | None = None) -> User:
    changes: dict[str, str] = {}
    email = rules.email(email) if email is not None else None
    display_name = rules.name("displayName", display_name) if display_name is not None else None
    if email is not None and queries.users.normalise_email(email) != user.email:
        if queries.users.get_by_email(db, email) is not None:
            raise Problems.unique_conflict(fields="email",
                                           values=queries.users.normalise_email(email))
        user.email = queries.users.normalise_email(email)
        changes["email"] = user.email
    if display_name is not None and display_name != user.display_name:
        user.display_name = display_name
        changes["displayName"] = display_name
    if changes:
        user.updated_at = utcnow()
        db.flush()
        audit.record(db, actor, "user.update", target=("user", user.id), details=changes)
    return user


def set_admin(db: Session, actor: Actor, user: User, is_admin: bool) -> User:
    if user.is_admin and not is_admin and queries.users.count_admins(db) <= 1:
        raise Problems.last_admin()
    if user.is_admin != is_admin:
        user.is_admin = is_admin
        user.updated_at = utcnow()
        db.flush()
        audit.record(db, actor, "user.promote" if is_admin else "user.demote",
                     target=("user", user.id))
    return user


def set_password(db: Session, passwords: Passwords, actor: Actor, user: User, new: str, *,
                 old: str | None = None, keep_token_id: int | None = None) -> None:
    """Change a password. Every session and API token of the user is revoked, except the one
    making the change when ``keep_token_id`` says so."""
    if old is not None and not passwords.verify(user.password_hash, old):
        raise Problems.wrong_password()
    check_password_policy(new)
    user.password_hash = passwords.hash(new)
    user.updated_at = utcnow()
    revoked = queries.tokens.revoke_all_for_user(db, user.id, utcnow(), except_id=keep_token_id)
    queries.users.delete_login_failures(db, user.email)
    db.flush()
    audit.record(db, actor, "user.password.change", target=("user", user.id),
                 details={"revokedTokens": revoked})


def delete_user(db: Session, actor: Actor, user: User) -> None:
    if user.is_admin and queries.users.count_admins(db) <= 1:
        raise Problems.last_admin()
    now = utcnow()
    user.deleted_at = now
    user.password_hash = None
    queries.tokens.revoke_all_for_user(db, user.id, now)
    db.flush()
    audit.record(db, actor, "user.delete", target=("user", user.id))


# -- log-in -------------------------------------------------------------------------------

def check_login_rate(db: Session, settings: Settings, email: str) -> None:
    """Refuse before hashing when the account has too many recent failures (429)."""
    now = utcnow()
    since = now - dt.timedelta(seconds=settings.login_window_seconds)
    if queries.users.count_recent_login_failures(db, email, since) < settings.login_max_failures:
        return
    oldest = queries.users.oldest_recent_login_failure(db, email, since) or now
    wait = oldest + dt.timedelta(seconds=settings.login_window_seconds) - now
    raise Problems.too_many_login_attempts(
        headers={"Retry-After": str(max(1, math.ceil(wait.total_seconds())))})


def verify_credentials(db: Session, settings: Settings, passwords: Passwords, *, email: str,
                       password: str) -> User:
    """The user these credentials name, or 401. Each failure counts toward the rate limit and
    is committed at once, since the request that carries it will be rolled back."""
    check_login_rate(db, settings, email)
    user = queries.users.get_by_email(db, email)
    if len(password) > MAX_PASSWORD_LENGTH:
        password = password[:MAX_PASSWORD_LENGTH + 1]
    ok = passwords.verify(user.password_hash if user else None, password)
    if user is None or not ok:
        _record_failure(db, settings, email, user)
        db.commit()
        raise Problems.unauthenticated()
    if passwords.needs_rehash(user.password_hash or ""):
        user.password_hash = passwords.hash(password)
    queries.users.delete_login_failures(db, email)
    return user


def _record_failure(db: Session, settings: Settings, email: str, user: User | None) -> None:
    queries.users.insert_login_failure(db, email)
    if user is None:
        return
    audit.record(db, Actor(), "user.session.failed", target=("user", user.id))
    since = utcnow() - dt.timedelta(seconds=settings.login_window_seconds)
    if queries.users.count_recent_login_failures(db, email, since) == settings.login_max_failures:
        audit.record(db, Actor(), "user.lockout", target=("user", user.id),
                     details={"windowSeconds": settings.login_window_seconds})


def log_in(db: Session, settings: Settings, passwords: Passwords, *, email: str,
           password: str) -> IssuedToken:
    user = verify_credentials(db, settings, passwords, email=email, password=password)
    issued = _issue(db, user, kind="session",
                    expires_at=utcnow() + dt.timedelta(seconds=settings.session_ttl_seconds))
    audit.record(db, Actor(user=user), "user.session.create", target=("user", user.id))
    return issued


def log_out(db: Session, actor: Actor, token: str) -> None:
    """End the session whose token is given (one's own; an administrator may end any)."""
    record = queries.tokens.get_by_hash(db, token_hash(token)) if looks_like_token(token) else None
    if record is None or record.revoked_at is not None or (
        actor.user is None or (record.user_id != actor.user.id and not actor.is_admin)
    ):
        raise Problems.not_found()
    record.revoked_at = utcnow()
    db.flush()
    audit.record(db, actor, "user.session.end", target=("user", record.user_id))


def end_token(db: Session, actor: Actor, record: AuthToken) -> None:
    record.revoked_at = utcnow()
    db.flush()
    audit.record(db, actor, f"user.{record.kind}.end", target=("user", record.user_id))


def create_api_token(db: Session, actor: Actor, *, label: str,
                     expires_in_days: int | None) -> IssuedToken:
    assert actor.user is not None
    expires = utcnow() + dt.timedelta(days=expires_in_days) if expires_in_days else None
    issued = _issue(db, actor.user, kind="api", expires_at=expires, label=label)
    audit.record(db, actor, "user.api_token.create", target=("user", actor.user.id),
                 details={"tokenId": issued.record.id, "label": label})
    return issued


def authenticate_bearer(db: Session, token: str) -> Actor:
    if not looks_like_token(token):
        raise Problems.unauthenticated()
    digest = token_hash(token)
    found = queries.tokens.get_active_with_user(db, digest, utcnow())
    if found is None or not hmac.compare_digest(found[0].token_hash, digest):
        raise Problems.unauthenticated()
    record, user = found
    return Actor(user=user, token=record)


def _issue(db: Session, user: User, *, kind: str, expires_at: dt.datetime | None,
           label: str | None = None) -> IssuedToken:
    token = new_token()
    record = queries.tokens.insert(db, user_id=user.id, token_hash=token_hash(token), kind=kind,
                                   expires_at=expires_at, label=label)
    return IssuedToken(token=token, record=record)
