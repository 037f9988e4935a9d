"""Background jobs: enqueue from a request, run in the ``worker`` process.

Handlers register by kind; a handler gets the job and a session, reports progress by setting
``job.progress``, and returns a JSON-able result. Each job runs in its own transaction.
"""

from __future__ import annotations

import datetime as dt
import traceback
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from server import queries
from server.auth.actor import SYSTEM, Actor
from server.db import utcnow
from server.models import Job
from server.settings import Settings
from server.storage import BlobStore, open_blob_store

Handler = Callable[[Session, Job], dict[str, Any] | None]

HANDLERS: dict[str, Handler] = {}
RETRY_BACKOFF = dt.timedelta(seconds=30)


def handler(kind: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn
    return register


def enqueue(db: Session, actor: Actor, kind: str, payload: dict[str, Any] | None = None, *,
            project_id: int | None = None, max_attempts: int = 3) -> Job:
    if kind not in HANDLERS:
        raise ValueError(f"no handler for job kind {kind!r}")
    return queries.jobs.insert(db, Job(kind=kind, payload=payload or {}, project_id=project_id,
                                       created_by_id=actor.user_id, max_attempts=max_attempts))


def run_one(db: Session, worker: str) -> Job | None:
    """Claim and run the next job; commit its outcome. Returns the job, or None when idle."""
    job = queries.jobs.claim_next(db, kinds=sorted(HANDLERS), worker=worker, now=utcnow())
    db.commit()
    if job is None:
        return None
    try:
        result = HANDLERS[job.kind](db, job)
    except Exception as exc:  # a job's failure is recorded, never lost
        db.rollback()
        job = db.get(Job, job.id)
        assert job is not None
        job.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:2000]
        if job.attempts >= job.max_attempts:
            job.status, job.finished_at = "failed", utcnow()
        else:
            job.status, job.run_after = "queued", utcnow() + RETRY_BACKOFF * job.attempts
        job.locked_by = job.locked_at = None
        db.commit()
        return job
    job.status, job.result, job.progress = "succeeded", result, 1.0
    job.finished_at, job.locked_by = utcnow(), None
    db.commit()
    return job


@handler("maintenance.prune")
def prune(db: Session, job: Job) -> dict[str, Any]:
    """Drop expired sessions and login failures older than a day."""
    now = utcnow()
    return {
        "sessions": queries.tokens.delete_expired(db, now),
        "loginFailures": queries.users.delete_login_failures_before(
            db, now - dt.timedelta(days=1)),
    }


# -- periodic jobs ----------------------------------------------------------------------------

PERIODIC: dict[str, dt.timedelta] = {}


def run_every(kind: str, period: dt.timedelta) -> None:
    """Have the worker enqueue ``kind`` (a registered handler) once per ``period``."""
    PERIODIC[kind] = period


def enqueue_due(db: Session, now: dt.datetime) -> list[Job]:
    """Enqueue each periodic kind not enqueued within its period; the worker calls this now
    and then. Two workers may both enqueue one, so periodic jobs must be safe to repeat."""
    return [enqueue(db, SYSTEM, kind) for kind, period in PERIODIC.items()
            if (last := queries.jobs.last_created_at(db, kind)) is None or last <= now - period]


BLOB_STORE_KEY = "dodoso.blob_store"
"""``Session.info`` key under which whoever runs jobs may hand them a blob store (tests do)."""


def blob_store(db: Session) -> BlobStore:
    """The blob store for jobs: the one handed over in ``db.info``, else the one the
    worker's settings name (opened once per session)."""
    store = db.info.get(BLOB_STORE_KEY)
    if store is None:
        store = db.info[BLOB_STORE_KEY] = open_blob_store(Settings.from_env())
    return store
