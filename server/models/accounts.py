"""People who sign in (web users), their tokens, and failed log-in attempts."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, utcnow
from server.models.types import BigId

TOKEN_KINDS = ("session", "api")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None]
    deleted_at: Mapped[dt.datetime | None]

    def __repr__(self) -> str:
        return f"<User {self.id}>"


class AuthToken(Base):
    """A bearer credential for a user: a log-in session or a long-lived API token.

    Only the sha256 of the token is stored; the token itself is shown once.
    """

    __tablename__ = "auth_tokens"
    __table_args__ = (
        CheckConstraint("kind IN ('session', 'api')", name="kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]


class LoginFailure(Base):
    """One failed password check, kept for the per-account rate limit."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_email_attempted_at", "email", "attempted_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    attempted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
