"""Review of submissions: comments left by reviewers. (The review state itself is a column
of ``submissions``; every change of it is audited.)"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, utcnow
from server.models.types import BigId


class SubmissionComment(Base):
    __tablename__ = "submission_comments"
    __table_args__ = (
        Index("ix_submission_comments_submission_id_created_at", "submission_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    author_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
