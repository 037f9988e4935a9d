"""Datasets, entities, their versions and the applied-submission markers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session, aliased

from server.models import (
    AppUser,
    Dataset,
    Entity,
    EntitySubmission,
    EntityVersion,
    Form,
    FormAttachment,
    FormDef,
    Submission,
    SubmissionDef,
    User,
)

ENTITY_LIST_KINDS = ("file", "file-csv")
"""Attachment kinds an entity list can back (Central links only "file" attachments)."""


# -- datasets -------------------------------------------------------------------------------

def list_datasets(db: Session, project_id: int) -> list[Dataset]:
    return list(db.scalars(select(Dataset).where(Dataset.project_id == project_id)
                           .order_by(Dataset.name)))


def get_dataset(db: Session, project_id: int, name: str) -> Dataset | None:
    return db.scalar(select(Dataset).where(Dataset.project_id == project_id,
                                           Dataset.name == name))


def lock_dataset(db: Session, dataset_id: int) -> Dataset | None:
    """The dataset row, locked until the transaction ends (``FOR UPDATE`` on PostgreSQL;
    SQLite's ``BEGIN IMMEDIATE`` already serialises writers)."""
    return db.scalar(select(Dataset).where(Dataset.id == dataset_id)
                     .with_for_update().execution_options(populate_existing=True))


def insert_dataset(db: Session, dataset: Dataset) -> Dataset:
    db.add(dataset)
    db.flush()
    return dataset


@dataclass(frozen=True)
class DeclaringDef:
    """A published form version and the entity declarations in its ``FormDef.entities``."""

    form_def_id: int
    form_id: int
    published_at: dt.datetime
    declarations: list[dict[str, Any]]


def list_declaring_defs(db: Session, project_id: int) -> list[DeclaringDef]:
    """Every published version of the project's forms (deleted forms too: a dataset outlives
    them, as in Central) that declares entities, in publishing order."""
    rows = db.execute(
        select(FormDef.id, FormDef.form_id, FormDef.published_at, FormDef.entities)
        .join(Form, Form.id == FormDef.form_id)
        .where(Form.project_id == project_id, FormDef.published_at.is_not(None))
        .order_by(FormDef.published_at, FormDef.id)
    ).all()
    return [DeclaringDef(i, f, p, (e or {}).get("entities") or []) for i, f, p, e in rows
            if e and (e.get("entities") if isinstance(e, dict) else None)]


def list_entity_project_ids(db: Session) -> list[int]:
    """Projects with a published form version that declares entities."""
    rows = db.execute(
        select(Form.project_id, FormDef.entities).join(FormDef, FormDef.form_id == Form.id)
        .where(FormDef.published_at.is_not(None)).order_by(Form.project_id)
    ).all()
    return list(dict.fromkeys(p for p, e in rows
                              if isinstance(e, dict) and e.get("entities")))


def _current_def_id():
    return (select(FormDef.id).where(FormDef.form_id == Form.id,
                                     FormDef.published_at.is_not(None))
            .order_by(FormDef.published_at.desc(), FormDef.id.desc()).limit(1)
            .correlate(Form).scalar_subquery())


def list_current_defs(db: Session, project_id: int) -> list[tuple[Form, FormDef]]:
    """The project's forms (not deleted) with their current published version."""
    rows = db.execute(
        select(Form, FormDef).join(FormDef, FormDef.id == _current_def_id())
        .where(Form.project_id == project_id, Form.deleted_at.is_(None))
        .order_by(Form.xml_form_id)
    ).all()
    return [(f, d) for f, d in rows]


def list_linked_forms(db: Session, project_id: int, attachment_name: str) -> list[tuple[Form,
                                                                                      FormDef]]:
    """Forms whose current version expects ``attachment_name`` with no file uploaded."""
    rows = db.execute(
        select(Form, FormDef).join(FormDef, FormDef.id == _current_def_id())
        .join(FormAttachment, FormAttachment.form_def_id == FormDef.id)
        .where(Form.project_id == project_id, Form.deleted_at.is_(None),
               FormAttachment.name == attachment_name, FormAttachment.blob_id.is_(None),
               FormAttachment.kind.in_(ENTITY_LIST_KINDS))
        .order_by(Form.xml_form_id)
    ).all()
    return [(f, d) for f, d in rows]


# -- catching up with submissions -----------------------------------------------------------

def list_pending(db: Session, dataset_id: int, form_def_ids: Sequence[int], *,
                 limit: int) -> list[tuple[SubmissionDef, Submission]]:
    """Submission versions of the given form versions not yet applied to the dataset, oldest
    first: not drafts, not of a deleted submission."""
    if not form_def_ids:
        return []
    applied = exists().where(EntitySubmission.submission_def_id == SubmissionDef.id,
                             EntitySubmission.dataset_id == dataset_id)
    rows = db.execute(
        select(SubmissionDef, Submission)
        .join(Submission, Submission.id == SubmissionDef.submission_id)
        .where(SubmissionDef.form_def_id.in_(form_def_ids), SubmissionDef.draft.is_(False),
               Submission.deleted_at.is_(None), ~applied)
        .order_by(SubmissionDef.id).limit(limit)
    ).all()
    return [(d, s) for d, s in rows]


def has_pending(db: Session, dataset_id: int, form_def_ids: Sequence[int]) -> bool:
    return bool(list_pending(db, dataset_id, form_def_ids, limit=1))


def submission_applied(db: Session, submission_id: int, dataset_id: int) -> bool:
    """Did any version of this submission already create or update an entity here?"""
    return db.scalar(select(EntitySubmission.submission_def_id).where(
        EntitySubmission.submission_id == submission_id,
        EntitySubmission.dataset_id == dataset_id,
        EntitySubmission.outcome == "applied").limit(1)) is not None


def insert_marker(db: Session, marker: EntitySubmission) -> None:
    db.add(marker)
    db.flush()


# -- entities -------------------------------------------------------------------------------

def get_entity(db: Session, dataset_id: int, uuid: str, *,
               include_deleted: bool = False) -> Entity | None:
    query = select(Entity).where(Entity.dataset_id == dataset_id, Entity.uuid == uuid)
    if not include_deleted:
        query = query.where(Entity.deleted_at.is_(None))
    return db.scalar(query)


def get_version(db: Session, entity_id: int, version: int) -> EntityVersion | None:
    return db.scalar(select(EntityVersion).where(EntityVersion.entity_id == entity_id,
                                                 EntityVersion.version == version))


def list_versions(db: Session, entity_id: int) -> list[EntityVersion]:
    return list(db.scalars(select(EntityVersion).where(EntityVersion.entity_id == entity_id)
                           .order_by(EntityVersion.version)))


def insert_entity(db: Session, entity: Entity, version: EntityVersion) -> Entity:
    db.add(entity)
    db.flush()
    version.entity_id = entity.id
    insert_version(db, version)
    return entity


def insert_version(db: Session, version: EntityVersion) -> EntityVersion:
    db.add(version)
    db.flush()
    return version


def list_entities(db: Session, dataset_id: int) -> list[Entity]:
    """The dataset's entities (not deleted), newest first, as Central lists and serves them."""
    return list(db.scalars(select(Entity).where(Entity.dataset_id == dataset_id,
                                                Entity.deleted_at.is_(None))
                           .order_by(Entity.created_at.desc(), Entity.id.desc())))


def list_entities_with_current(db: Session, dataset_id: int
                               ) -> list[tuple[Entity, EntityVersion]]:
    """The dataset's entities (not deleted), newest first, each with its current version."""
    rows = db.execute(
        select(Entity, EntityVersion)
        .join(EntityVersion, (EntityVersion.entity_id == Entity.id)
              & (EntityVersion.version == Entity.version))
        .where(Entity.dataset_id == dataset_id, Entity.deleted_at.is_(None))
        .order_by(Entity.created_at.desc(), Entity.id.desc())
    ).all()
    return [(e, v) for e, v in rows]


def list_entities_with_creators(db: Session, dataset_id: int
                                ) -> list[tuple[Entity, str | None]]:
    """As ``list_entities``, with each creator's display name (a web user or an app user)."""
    creator_app = aliased(AppUser)
    rows = db.execute(
        select(Entity, func.coalesce(User.display_name, creator_app.display_name))
        .outerjoin(User, User.id == Entity.creator_user_id)
        .outerjoin(creator_app, creator_app.id == Entity.creator_app_user_id)
        .where(Entity.dataset_id == dataset_id, Entity.deleted_at.is_(None))
        .order_by(Entity.created_at.desc(), Entity.id.desc())
    ).all()
    return [(e, n) for e, n in rows]


@dataclass(frozen=True)
class DatasetStats:
    entities: int
    last_entity: dt.datetime | None
    conflicts: int


def dataset_stats(db: Session, dataset_id: int) -> DatasetStats:
    count, last, conflicts = db.execute(
        select(func.count(), func.max(Entity.created_at),
               func.count(Entity.conflict))
        .where(Entity.dataset_id == dataset_id, Entity.deleted_at.is_(None))
    ).one()
    if isinstance(last, dt.datetime) and last.tzinfo is None:
        last = last.replace(tzinfo=dt.timezone.utc)
    return DatasetStats(count, last, conflicts)
