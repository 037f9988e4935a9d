"""Exports that run in the background: what was asked for, how far it got, and the file it
produced (a blob) behind an unguessable, expiring download token (stored as sha256)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, utcnow
from server.models.types import BigId

EXPORT_STATUSES = ("queued", "running", "succeeded", "failed", "expired")


class Export(Base):
    __tablename__ = "exports"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in EXPORT_STATUSES) + ")", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("forms.id", ondelete="CASCADE"), index=True)
    format: Mapped[str] = mapped_column(String(32))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    blob_id: Mapped[int | None] = mapped_column(ForeignKey("blobs.id"), index=True)
    filename: Mapped[str | None] = mapped_column(String(255))
    row_count: Mapped[int | None] = mapped_column(BigInteger)
    byte_count: Mapped[int | None] = mapped_column(BigInteger)
    token_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    expires_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
