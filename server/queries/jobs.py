from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from server.models import Job


def get(db: Session, job_id: int) -> Job | None:
    return db.get(Job, job_id)


def insert(db: Session, job: Job) -> Job:
    db.add(job)
    db.flush()
    return job


def claim_next(db: Session, *, kinds: list[str], worker: str, now: dt.datetime) -> Job | None:
    """Claim the oldest runnable job. PostgreSQL skips rows other workers hold; SQLite
    serialises writers, and the conditional UPDATE makes a lost race claim nothing."""
    pick = (select(Job.id)
            .where(Job.status == "queued", Job.run_after <= now, Job.kind.in_(kinds))
            .order_by(Job.run_after, Job.id).limit(1))
    if db.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    job_id = db.scalar(pick)
    if job_id is None:
        return None
    claimed = db.execute(
        update(Job).where(Job.id == job_id, Job.status == "queued")
        .values(status="running", locked_by=worker, locked_at=now, attempts=Job.attempts + 1)
    ).rowcount
    if not claimed:
        return None
    job = db.get(Job, job_id)
    if job is not None:
        db.refresh(job)
    return job


def requeue_stale(db: Session, *, locked_before: dt.datetime, now: dt.datetime) -> int:
    """Jobs whose worker died mid-run go back to the queue (or fail when out of attempts)."""
    failed = db.execute(
        update(Job).where(Job.status == "running", Job.locked_at < locked_before,
                          Job.attempts >= Job.max_attempts)
        .values(status="failed", error="worker lost", finished_at=now, locked_by=None)
    ).rowcount
    requeued = db.execute(
        update(Job).where(Job.status == "running", Job.locked_at < locked_before)
        .values(status="queued", locked_by=None, locked_at=None, run_after=now)
    ).rowcount
    return failed + requeued


def last_created_at(db: Session, kind: str) -> dt.datetime | None:
    return db.scalar(select(func.max(Job.created_at)).where(Job.kind == kind))
