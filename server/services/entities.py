"""Entity lists as ODK Central keeps them: datasets declared by published forms, entities
created and updated from the submissions of those forms.

Nothing happens at ingest. ``sync_entities`` catches a project's datasets up: it creates the
datasets its published forms declare (with their ``saveto`` properties), then applies every
submission version not yet applied, oldest first, under the dataset's row lock. Each applied
version leaves a marker (``EntitySubmission``), so running it again, or from two sessions at
once, applies nothing twice. It runs before an entity list is served (OpenRosa manifest and
media, the REST API) and as the ``entities.sync`` job.

Rules follow Central (``lib/model/query/entities.js``): the ``create``/``update`` attributes
Collect evaluated are read from the instance's ``meta/entity``; an update needs a
``baseVersion`` and merges the properties sent into the current ones; a ``baseVersion``
behind the current version records a soft or hard conflict; an update of an unknown entity
falls back to a create when the submission also says ``create``. A submission whose entity
cannot be applied records the Problem (as Central's ``entity.error``) and changes nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forms.xml import XmlRejected, parse_xml
from server.db import utcnow
from server.errors import Problem, Problems
from server.models import (
    Dataset,
    Entity,
    EntitySubmission,
    EntityVersion,
    Job,
    Submission,
    SubmissionDef,
)
from server.queries import entities as q
from server.services.jobs import handler, run_every

ENTITY_PATH = "/meta/entity"
TRUE_VALUES = frozenset({"1", "true"})
BATCH = 200
RESERVED_PROPERTIES = frozenset({"name", "label"})
CSV_CONTENT_TYPE = "text/csv"
ATTACHMENT_COLUMNS = ("name", "label", "__version")
"""The entity list Collect downloads (Central's ``streamEntityCsvAttachment``)."""
EXPORT_SYSTEM_COLUMNS = ("__createdAt", "__creatorId", "__creatorName", "__updates",
                         "__updatedAt", "__version")
"""After ``__id,label`` and the properties in ``…/entities.csv`` (Central's export)."""

_UUID = re.compile(r"^(?:uuid:)?([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}"
                   r"-[0-9a-f]{12})$", re.IGNORECASE)
_DIGITS = re.compile(r"^[0-9]+$")


@dataclass
class SyncReport:
    applied: int = 0
    skipped: int = 0
    errors: int = 0
    datasets: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"applied": self.applied, "skipped": self.skipped, "errors": self.errors,
                "datasets": self.datasets}


@dataclass(frozen=True)
class _Declared:
    """What the project's published forms say about one dataset."""

    by_def: dict[int, list[dict[str, Any]]]
    """Form version id → its declarations of this dataset."""


# -- datasets -------------------------------------------------------------------------------

def sync_datasets(db: Session, project_id: int) -> dict[str, Dataset]:
    """The project's datasets by name, after creating those its published forms declare and
    adding the properties they write (appended in publishing order, as Central orders them).
    """
    datasets, _ = _sync_datasets(db, project_id)
    return datasets


def _sync_datasets(db: Session, project_id: int
                   ) -> tuple[dict[str, Dataset], dict[str, _Declared]]:
    datasets = {d.name: d for d in q.list_datasets(db, project_id)}
    declared: dict[str, _Declared] = {}
    for form_def in q.list_declaring_defs(db, project_id):
        for declaration in form_def.declarations:
            name = (declaration.get("dataset") or "").strip()
            if not name or name.startswith("__"):
                continue
            declared.setdefault(name, _Declared({})).by_def.setdefault(
                form_def.form_def_id, []).append(declaration)
            dataset = datasets.get(name)
            if dataset is None:
                dataset = datasets[name] = _create_dataset(db, project_id, name,
                                                           form_def.published_at)
            known = {p["name"] for p in dataset.properties}
            added = [p["property"] for p in declaration.get("properties") or []
                     if p.get("property") and p["property"] not in RESERVED_PROPERTIES
                     and not p["property"].startswith("__")]
            added = [p for p in dict.fromkeys(added) if p not in known]
            if added:
                published = form_def.published_at.isoformat()
                dataset.properties = [*dataset.properties,
                                      *({"name": p, "publishedAt": published} for p in added)]
                dataset.updated_at = utcnow()
    db.flush()
    return datasets, declared


def _create_dataset(db: Session, project_id: int, name: str, published_at) -> Dataset:
    """Another session may create it at the same moment: then use theirs."""
    try:
        with db.begin_nested():
            return q.insert_dataset(db, Dataset(project_id=project_id, name=name,
                                                properties=[], created_at=published_at))
    except IntegrityError:
        found = q.get_dataset(db, project_id, name)
        assert found is not None
        return found


def property_names(dataset: Dataset) -> list[str]:
    return [p["name"] for p in dataset.properties]


# -- catching up with submissions -----------------------------------------------------------

def sync_entities(db: Session, project_id: int,
                  names: Iterable[str] | None = None) -> SyncReport:
    """Apply every not-yet-applied submission version to the project's datasets (``names``
    only, when given). Flushes; the caller commits."""
    datasets, declared = _sync_datasets(db, project_id)
    report = SyncReport()
    for name in sorted(set(names) if names is not None else set(datasets)):
        dataset = datasets.get(name)
        if dataset is not None and name in declared:
            report.datasets.append(name)
            _catch_up(db, dataset, declared[name], report)
    return report


def _catch_up(db: Session, dataset: Dataset, declared: _Declared, report: SyncReport) -> None:
    def_ids = sorted(declared.by_def)
    if not q.has_pending(db, dataset.id, def_ids):
        return  # the common case: no lock taken, nothing written
    q.lock_dataset(db, dataset.id)
    while batch := q.list_pending(db, dataset.id, def_ids, limit=BATCH):
        for submission_def, submission in batch:
            outcome = _apply_submission(db, dataset, submission_def, submission,
                                        declared.by_def[submission_def.form_def_id])
            report.applied += outcome == "applied"
            report.skipped += outcome == "skipped"
            report.errors += outcome == "error"


def _apply_submission(db: Session, dataset: Dataset, submission_def: SubmissionDef,
                      submission: Submission, declarations: list[dict[str, Any]]) -> str:
    outcome, details = "skipped", None
    if submission_def.encrypted:
        details = {"reason": "encrypted"}
    elif q.submission_applied(db, submission.id, dataset.id):
        # Central: once a submission made or changed an entity, its edits are not applied.
        details = {"reason": "an earlier version of this submission was applied"}
    else:
        savepoint = db.begin_nested()
        try:
            results = _apply_entities(db, dataset, submission_def, declarations)
            savepoint.commit()
            if results:
                outcome, details = "applied", {"entities": results}
        except Problem as problem:
            savepoint.rollback()
            outcome, details = "error", {"problem": problem.to_json()}
    q.insert_marker(db, EntitySubmission(
        submission_def_id=submission_def.id, dataset_id=dataset.id,
        submission_id=submission.id, outcome=outcome, details=details))
    return outcome


@dataclass(frozen=True)
class _Sent:
    """One ``meta/entity`` of a submission: its attributes, label and saved properties."""

    attrs: dict[str, str]
    label: str | None
    data: dict[str, str]

    def flag(self, name: str) -> bool:
        return (self.attrs.get(name) or "").strip() in TRUE_VALUES


def _apply_entities(db: Session, dataset: Dataset, submission_def: SubmissionDef,
                    declarations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    try:
        root = parse_xml(submission_def.xml.encode("utf-8"))
    except XmlRejected:
        raise Problems.entity_invalid(reason="the submission's XML could not be read") from None
    results = []
    for declaration in declarations:
        path = declaration.get("path") or ENTITY_PATH
        container_path = path.removesuffix(ENTITY_PATH)
        for container in _find_all(root, container_path):
            sent = _read_entity(container, container_path, declaration)
            if sent is not None:
                result = _apply_one(db, dataset, submission_def, declaration, sent)
                if result is not None:
                    results.append(result)
    return results


def _read_entity(container: etree._Element, container_path: str,
                 declaration: dict[str, Any]) -> _Sent | None:
    entities = _find_all(container, ENTITY_PATH)
    if not entities:
        return None
    entity = entities[0]
    labels = _find_all(entity, "/label")
    data = {}
    for prop in declaration.get("properties") or []:
        relative = prop["path"].removeprefix(container_path)
        found = _find_all(container, relative)
        if found:
            data[prop["property"]] = _text(found[0])
    return _Sent(attrs={etree.QName(k).localname: v for k, v in entity.attrib.items()},
                 label=_text(labels[0]) if labels else None, data=data)


def _find_all(start: etree._Element, path: str) -> list[etree._Element]:
    """Elements at ``path`` (``/a/b``, local names) below ``start``; ``""`` is ``start``."""
    found = [start]
    for step in [s for s in path.split("/") if s]:
        found = [c for e in found for c in e
                 if isinstance(c.tag, str) and etree.QName(c).localname == step]
    return found


def _text(element: etree._Element) -> str:
    return "".join(element.itertext())


def _apply_one(db: Session, dataset: Dataset, submission_def: SubmissionDef,
               declaration: dict[str, Any], sent: _Sent) -> dict[str, Any] | None:
    create, update = sent.flag("create"), sent.flag("update")
    permitted = declaration.get("actions") or []
    for action, wanted in (("create", create), ("update", update)):
        if wanted and action not in permitted:
            raise Problems.entity_action_not_permitted(action=action, permitted=permitted)
    if not create and not update:
        return None
    uuid = _uuid(sent.attrs.get("id"))
    if not update:
        return _create(db, dataset, submission_def, uuid, sent)
    base_text = (sent.attrs.get("baseVersion") or "").strip()
    if not base_text:
        if create:
            return _create(db, dataset, submission_def, uuid, sent)
        raise Problems.entity_invalid(reason="baseVersion is missing", field="baseVersion")
    if not _DIGITS.match(base_text):
        raise Problems.entity_invalid(reason="baseVersion is not an integer",
                                      field="baseVersion")
    entity = q.get_entity(db, dataset.id, uuid, include_deleted=True)
    if entity is None:
        if create:
            return _create(db, dataset, submission_def, uuid, sent)
        raise Problems.entity_not_found(uuid=uuid, dataset=dataset.name)
    if entity.deleted_at is not None:
        raise Problems.entity_deleted(uuid=uuid)
    return _update(db, dataset, submission_def, entity, sent, int(base_text))


def _uuid(value: str | None) -> str:
    if not value or not value.strip():
        raise Problems.entity_invalid(reason="the entity ID is missing", field="id")
    match = _UUID.match(value.strip())
    if match is None:
        raise Problems.entity_invalid(reason="the entity ID is not a version 4 UUID",
                                      field="id")
    return match.group(1).lower()


def _create(db: Session, dataset: Dataset, submission_def: SubmissionDef, uuid: str,
            sent: _Sent) -> dict[str, Any]:
    label = sent.label or ""
    if not label.strip():
        raise Problems.entity_invalid(reason="the label is empty or missing", field="label")
    if q.get_entity(db, dataset.id, uuid, include_deleted=True) is not None:
        raise Problems.unique_conflict(fields="uuid", values=uuid)
    # Applied as of the submission's arrival: Central applies it within seconds of receipt.
    when = submission_def.created_at
    q.insert_entity(db, Entity(
        dataset_id=dataset.id, uuid=uuid, label=label, version=1, data=dict(sent.data),
        creator_user_id=submission_def.submitter_user_id,
        creator_app_user_id=submission_def.submitter_app_user_id,
        source_submission_def_id=submission_def.id, created_at=when,
    ), _version(submission_def, 1, None, label, dict(sent.data),
                {**sent.data, "label": label}, None))
    _touch(dataset)
    return {"uuid": uuid, "action": "create", "version": 1}


def _update(db: Session, dataset: Dataset, submission_def: SubmissionDef, entity: Entity,
            sent: _Sent, base_version: int) -> dict[str, Any]:
    base = q.get_version(db, entity.id, base_version)
    if base is None:
        raise Problems.entity_version_not_found(base_version=base_version, uuid=entity.uuid,
                                                dataset=dataset.name)
    label = sent.label if sent.label and sent.label.strip() else None
    received = {**sent.data, **({"label": label} if label else {})}
    conflict, conflicting = entity.conflict, None
    if base.version != entity.version:
        # What changed on the server since the version the device started from …
        keys = set(entity.data) | set(base.data)
        changed = {k: entity.data.get(k) for k in keys if entity.data.get(k) != base.data.get(k)}
        if entity.label != base.label:
            changed["label"] = entity.label
        # … that this submission sets to something else is a hard conflict.
        conflicting = [k for k in received if k in changed and received[k] != changed[k]]
        if conflict != "hard":
            conflict = "hard" if conflicting else "soft"
    data = {**entity.data, **sent.data}
    version = entity.version + 1
    q.insert_version(db, _version(submission_def, version, base.version, label or entity.label,
                                  data, received, conflicting, entity_id=entity.id))
    entity.label, entity.data, entity.version = label or entity.label, data, version
    entity.conflict = conflict
    entity.updated_at = max(submission_def.created_at, entity.created_at)
    db.flush()
    _touch(dataset)
    return {"uuid": entity.uuid, "action": "update", "version": version,
            **({"conflict": conflict} if conflict else {})}


def _version(submission_def: SubmissionDef, version: int, base_version: int | None,
             label: str, data: dict[str, Any], received: dict[str, Any],
             conflicting: list[str] | None, entity_id: int | None = None) -> EntityVersion:
    return EntityVersion(
        entity_id=entity_id, version=version, base_version=base_version, label=label,
        data=data, data_received=received, conflicting_properties=conflicting,
        submission_def_id=submission_def.id, creator_user_id=submission_def.submitter_user_id,
        creator_app_user_id=submission_def.submitter_app_user_id,
        user_agent=submission_def.user_agent, created_at=submission_def.created_at)


def _touch(dataset: Dataset) -> None:
    dataset.updated_at = utcnow()


# -- serving --------------------------------------------------------------------------------

@dataclass(frozen=True)
class EntityListCsv:
    """An entity list as Collect downloads it, and the MD5 the manifest and ETag carry."""

    name: str
    data: bytes
    md5: str


def entity_list_csv(db: Session, dataset: Dataset) -> EntityListCsv:
    """``name,label,__version,<properties>``: name is the entity's UUID. Like Central, the
    newest entity first, comma-separated, quoted only when needed, ``\\n`` line ends."""
    properties = property_names(dataset)
    rows = ([e.uuid, e.label, str(e.version), *(_cell(e.data.get(p)) for p in properties)]
            for e in q.list_entities(db, dataset.id))
    data = _csv([*ATTACHMENT_COLUMNS, *properties], rows)
    return EntityListCsv(f"{dataset.name}.csv", data, hashlib.md5(data).hexdigest())


def export_csv(db: Session, dataset: Dataset) -> bytes:
    """``GET …/entities.csv``: Central's export columns."""
    properties = property_names(dataset)
    rows = ([e.uuid, e.label, *(_cell(e.data.get(p)) for p in properties),
             _iso(e.created_at), str(e.creator_user_id or e.creator_app_user_id or ""),
             creator or "", str(e.version - 1), _iso(e.updated_at), str(e.version)]
            for e, creator in q.list_entities_with_creators(db, dataset.id))
    return _csv(["__id", "label", *properties, *EXPORT_SYSTEM_COLUMNS], rows)


def _csv(header: list[str], rows: Iterable[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _iso(value) -> str:
    if value is None:
        return ""
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dataset_metadata(db: Session, dataset: Dataset) -> dict[str, Any]:
    """``GET …/datasets/{name}``: the dataset, its properties with the forms that write
    each, the forms that create or update its entities, and the forms that read it."""
    sources = [(f, d) for f, d in q.list_current_defs(db, dataset.project_id)
               if any(e.get("dataset") == dataset.name
                      for e in ((d.entities or {}).get("entities") or []))]
    properties = []
    for prop in dataset.properties:
        forms = [{"xmlFormId": f.xml_form_id, "name": d.title} for f, d in sources
                 if any(p.get("property") == prop["name"]
                        for e in (d.entities or {}).get("entities") or []
                        if e.get("dataset") == dataset.name
                        for p in e.get("properties") or [])]
        properties.append({"name": prop["name"], "published_at": prop.get("publishedAt"),
                           "odata_name": prop["name"], "forms": forms})
    linked = q.list_linked_forms(db, dataset.project_id, f"{dataset.name}.csv")
    return {
        "dataset": dataset,
        "last_update": dataset.updated_at or dataset.created_at,
        "properties": properties,
        "source_forms": [{"xmlFormId": f.xml_form_id, "name": d.title} for f, d in sources],
        "linked_forms": [{"xmlFormId": f.xml_form_id, "name": d.title} for f, d in linked],
    }


# -- the background job ---------------------------------------------------------------------

# Lists are caught up whenever they are read; the periodic run keeps the REST views and the
# next manifest cheap when no one has looked for a while.
run_every("entities.sync", dt.timedelta(minutes=5))


@handler("entities.sync")
def sync_job(db: Session, job: Job) -> dict[str, Any]:
    """Payload: ``projectId`` (default: the job's project, else every project whose forms
    declare entities), ``datasets`` (names; default all)."""
    project_id = job.payload.get("projectId", job.project_id)
    project_ids = [project_id] if project_id is not None else q.list_entity_project_ids(db)
    reports = {str(p): sync_entities(db, p, job.payload.get("datasets")).to_json()
               for p in project_ids}
    return {"projects": reports}
