"""Entity lists (ODK Central's datasets): the datasets of a project, their entities, each
entity's versions, and which submission versions have been applied to which dataset.

A dataset exists once a published form declares it (``<meta><entity dataset=…>``); its
properties are the ``entities:saveto`` names of the forms that write to it. Entities are made
from submissions lazily (``server.services.entities.sync_entities``), never at ingest.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, JSONType, utcnow
from server.models.types import BigId

CONFLICT_TYPES = ("soft", "hard")
OUTCOMES = ("applied", "skipped", "error")


class Dataset(Base):
    """``properties``: ``[{"name": …, "publishedAt": …}]`` in the order they were published."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"),
                                            index=True)
    name: Mapped[str] = mapped_column(String(255))
    properties: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None]


class Entity(Base):
    """One entity, with its current version's label, data and number (the CSV reads these)."""

    __tablename__ = "entities"
    __table_args__ = (
        UniqueConstraint("dataset_id", "uuid"),
        CheckConstraint("conflict IN ('soft', 'hard')", name="conflict"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    uuid: Mapped[str] = mapped_column(String(36))
    label: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1)
    data: Mapped[dict[str, Any]]
    conflict: Mapped[str | None] = mapped_column(String(8))
    creator_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    creator_app_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_users.id", ondelete="SET NULL"))
    source_submission_def_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("submission_defs.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime | None]
    deleted_at: Mapped[dt.datetime | None]


class EntityVersion(Base):
    """Every version of an entity (Central's entity_defs): what it became and what was sent."""

    __tablename__ = "entity_versions"
    __table_args__ = (UniqueConstraint("entity_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entity_id: Mapped[int] = mapped_column(BigId, ForeignKey("entities.id", ondelete="CASCADE"))
    version: Mapped[int]
    base_version: Mapped[int | None]
    label: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]]
    data_received: Mapped[dict[str, Any]]
    conflicting_properties: Mapped[list[str] | None] = mapped_column(JSONType)
    submission_def_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("submission_defs.id", ondelete="SET NULL"), index=True)
    creator_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"))
    creator_app_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("app_users.id", ondelete="SET NULL"))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class EntitySubmission(Base):
    """A submission version has been applied to a dataset: the processed marker that makes
    catching up idempotent. ``outcome``: ``applied`` (entities created or updated),
    ``skipped`` (nothing to do) or ``error`` (``problem`` says why, as Central's
    entity.error audit does)."""

    __tablename__ = "entity_submissions"
    __table_args__ = (
        CheckConstraint("outcome IN ('applied', 'skipped', 'error')", name="outcome"),
    )

    submission_def_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("submission_defs.id", ondelete="CASCADE"), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"),
                                            primary_key=True, index=True)
    submission_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any] | None]
    processed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
