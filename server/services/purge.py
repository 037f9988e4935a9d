"""Soft-deleted submissions are purged for good 30 days after their deletion, as ODK
Central does: until then ``POST …/restore`` brings one back; afterwards its XML, versions,
flattened rows, attachment rows and comments are gone, and the clean-up job
(``server.services.gc``) removes the files nothing refers to any more. The audit log keeps
one ``submission.purge`` event per form and batch, naming the instanceIDs purged.

A purged instanceID is free again: Collect resending it later stores it anew.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from server import queries
from server.auth.actor import SYSTEM, Actor
from server.db import utcnow
from server.models import Job
from server.queries import purge as purge_queries
from server.services import audit
from server.services.jobs import handler, run_every

PURGE_AFTER = dt.timedelta(days=30)
PURGE_ACTION = "submission.purge"
BATCH = 500


@dataclass
class PurgeReport:
    cutoff: dt.datetime
    dry_run: bool = False
    purged: int = 0
    by_form: dict[str, int] = field(default_factory=dict)
    """``<projectId>/<xmlFormId>`` → how many were (or, dry, would be) purged."""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["cutoff"] = self.cutoff.isoformat()
        return out


def purge_deleted(db: Session, *, older_than: dt.timedelta = PURGE_AFTER,
                  now: dt.datetime | None = None, dry_run: bool = False,
                  actor: Actor = SYSTEM, batch: int = BATCH) -> PurgeReport:
    """Purge the submissions deleted more than ``older_than`` ago, in batches (each flushed,
    not committed: the caller commits)."""
    cutoff = (now or utcnow()) - older_than
    report = PurgeReport(cutoff=cutoff, dry_run=dry_run)
    after_id = 0
    while found := purge_queries.purgeable(db, cutoff, batch, after_id):
        after_id = found[-1].id  # a row kept (restored meanwhile) is not looked at again
        if dry_run:
            _count(report, found)
            continue
        gone = set(purge_queries.delete_deleted(db, [r.id for r in found], cutoff))
        purged = [r for r in found if r.id in gone]
        _count(report, purged)
        _audit(db, actor, purged)
        db.flush()
    return report


def _count(report: PurgeReport, rows: list[Any]) -> None:
    for r in rows:
        key = f"{r.project_id}/{r.xml_form_id}"
        report.by_form[key] = report.by_form.get(key, 0) + 1
        report.purged += 1


def _audit(db: Session, actor: Actor, rows: list[Any]) -> None:
    by_form: dict[tuple[int, int, str], list[str]] = defaultdict(list)
    for r in rows:
        by_form[(r.project_id, r.form_id, r.xml_form_id)].append(r.instance_id)
    for (project_id, form_id, xml_form_id), instance_ids in by_form.items():
        queries.audit.insert(db, audit.event(
            actor, PURGE_ACTION, project_id=project_id, target=("form", form_id),
            details={"formId": xml_form_id, "count": len(instance_ids),
                     "instanceIds": instance_ids}))


@handler("submissions.purge")
def purge_job(db: Session, job: Job) -> dict[str, Any]:
    """Payload: ``days`` (default 30), ``dryRun``."""
    days = job.payload.get("days")
    older_than = PURGE_AFTER if days is None else dt.timedelta(days=float(days))
    return purge_deleted(db, older_than=older_than,
                         dry_run=bool(job.payload.get("dryRun", False))).to_json()


run_every("submissions.purge", dt.timedelta(days=1))
