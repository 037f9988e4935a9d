"""Forms and their versions (definitions), with the media each version expects.

A form has any number of published definitions (every version is kept, so old tablets'
submissions still parse) and at most one draft. The current version is the latest published.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, utcnow

FORM_STATES = ("open", "closing", "closed")


class Form(Base):
    __tablename__ = "forms"
    __table_args__ = (
        UniqueConstraint("project_id", "xml_form_id"),
        CheckConstraint("state IN ('open', 'closing', 'closed')", name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"),
                                            index=True)
    xml_form_id: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[dt.datetime | None]
    deleted_at: Mapped[dt.datetime | None]


class FormDef(Base):
    """One version of a form: its XForm, field schema and original XLSForm.

    ``published_at`` is null for the draft. The draft's test token lets a designer try it in
    Collect before publishing; it only ever grants test submissions to that draft.
    """

    __tablename__ = "form_defs"
    __table_args__ = (
        Index("ix_form_defs_form_id_published_at", "form_id", "published_at"),
        # At most one draft per form, and a published version string is never reused.
        Index("ix_form_defs_one_draft", "form_id", unique=True,
              sqlite_where=text("published_at IS NULL"),
              postgresql_where=text("published_at IS NULL")),
        Index("ix_form_defs_published_version", "form_id", "version", unique=True,
              sqlite_where=text("published_at IS NOT NULL"),
              postgresql_where=text("published_at IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("forms.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(255), default="")
    title: Mapped[str] = mapped_column(String(1000))
    xml: Mapped[str] = mapped_column(Text)
    xml_md5: Mapped[str] = mapped_column(String(32))
    xml_sha256: Mapped[str] = mapped_column(String(64))
    schema: Mapped[dict[str, Any]]
    encryption_key: Mapped[str | None] = mapped_column(Text)
    entities: Mapped[dict[str, Any] | None]
    warnings: Mapped[dict[str, Any] | None]
    xlsform_blob_id: Mapped[int | None] = mapped_column(ForeignKey("blobs.id"))
    xlsform_filename: Mapped[str | None] = mapped_column(String(255))
    xlsform_content_type: Mapped[str | None] = mapped_column(String(255))
    draft_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    published_at: Mapped[dt.datetime | None]
    published_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))


class FormAttachment(Base):
    """A media file a form version expects; ``blob_id`` is null until it is uploaded."""

    __tablename__ = "form_attachments"
    __table_args__ = (UniqueConstraint("form_def_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    form_def_id: Mapped[int] = mapped_column(ForeignKey("form_defs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    blob_id: Mapped[int | None] = mapped_column(ForeignKey("blobs.id"))
    updated_at: Mapped[dt.datetime | None]


class FormAssignment(Base):
    """An app user may see and submit to this form (Central's app-user form assignment)."""

    __tablename__ = "form_assignments"

    form_id: Mapped[int] = mapped_column(ForeignKey("forms.id", ondelete="CASCADE"),
                                         primary_key=True)
    app_user_id: Mapped[int] = mapped_column(ForeignKey("app_users.id", ondelete="CASCADE"),
                                             primary_key=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
