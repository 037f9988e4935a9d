"""Submissions: the logical submission, each version of it (edits add versions), its
attachments, and its flattened rows (one per root and per repeat instance).

The XML of every version is kept: it is the record. The rows are derived at ingest for
exports, feeds and SQL users, so that reading never re-parses XML.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, utcnow
from server.models.types import BigId

REVIEW_STATES = ("received", "hasIssues", "edited", "approved", "rejected")
ROOT_TABLE = ""  # table_path of the submission's own row; repeats use their schema path


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (
        UniqueConstraint("form_id", "draft", "instance_id"),
        CheckConstraint(
            "review_state IN (" + ", ".join(f"'{s}'" for s in REVIEW_STATES) + ")",
            name="review_state"),
        Index("ix_submissions_form_id_created_at", "form_id", "created_at"),
        # OData's $filter on __system/updatedAt, and the change feed on SQLite.
        Index("ix_submissions_form_id_updated_at", "form_id", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("forms.id", ondelete="CASCADE"))
    draft: Mapped[bool] = mapped_column(default=False)
    instance_id: Mapped[str] = mapped_column(String(255))
    review_state: Mapped[str] = mapped_column(String(16), default="received")
    submitter_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    submitter_app_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_users.id", ondelete="SET NULL"))
    device_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None]
    deleted_at: Mapped[dt.datetime | None]


class SubmissionDef(Base):
    """One version of a submission, exactly as sent. ``current`` marks the latest."""

    __tablename__ = "submission_defs"
    __table_args__ = (
        # An instanceID is used once per form, by any version of any submission.
        UniqueConstraint("form_id", "draft", "instance_id"),
        Index("ix_submission_defs_submission_id_current", "submission_id", "current"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"))
    form_id: Mapped[int] = mapped_column(ForeignKey("forms.id", ondelete="CASCADE"))
    draft: Mapped[bool] = mapped_column(default=False)
    form_def_id: Mapped[int] = mapped_column(ForeignKey("form_defs.id"), index=True)
    instance_id: Mapped[str] = mapped_column(String(255))
    deprecated_id: Mapped[str | None] = mapped_column(String(255))
    instance_name: Mapped[str | None] = mapped_column(String(1000))
    xml: Mapped[str] = mapped_column(Text)
    xml_sha256: Mapped[str] = mapped_column(String(64))
    encrypted: Mapped[bool] = mapped_column(default=False)
    current: Mapped[bool] = mapped_column(default=True)
    submitter_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    submitter_app_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_users.id", ondelete="SET NULL"))
    device_id: Mapped[str | None] = mapped_column(String(255))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    attachments_expected: Mapped[int] = mapped_column(default=0)
    attachments_present: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SubmissionAttachment(Base):
    """A file a submission version refers to; ``blob_id`` is null until it arrives."""

    __tablename__ = "submission_attachments"
    __table_args__ = (UniqueConstraint("submission_def_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    submission_def_id: Mapped[int] = mapped_column(
        ForeignKey("submission_defs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    blob_id: Mapped[int | None] = mapped_column(ForeignKey("blobs.id"), index=True)
    updated_at: Mapped[dt.datetime | None]


class SubmissionRow(Base):
    """One flattened row: the submission itself (``table_path`` = "") or one repeat
    instance, keyed like ODK Central's exports (KEY / PARENT_KEY)."""

    __tablename__ = "submission_rows"
    __table_args__ = (
        Index("ix_submission_rows_form_id_table_path", "form_id", "table_path",
              "submission_def_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    submission_def_id: Mapped[int] = mapped_column(
        ForeignKey("submission_defs.id", ondelete="CASCADE"), index=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("forms.id", ondelete="CASCADE"))
    table_path: Mapped[str] = mapped_column(String(1000))
    row_key: Mapped[str] = mapped_column(Text)
    parent_key: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(default=1)
    data: Mapped[dict[str, Any]]
    extra: Mapped[dict[str, Any] | None]
