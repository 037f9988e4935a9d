"""Background jobs: claimed from the table, retried on failure, never claimed twice.

These tests need real commits (workers are separate transactions), so they use their own
sessions and delete what they made.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session

from server import queries
from server.auth.actor import SYSTEM
from server.db import make_session_factory, utcnow
from server.models import Job
from server.services import jobs


@pytest.fixture
def sessions(engine):
    factory = make_session_factory(engine)
    yield factory
    with factory() as s:
        s.execute(delete(Job))
        s.commit()


@pytest.fixture
def kinds():
    """Test-only handlers, removed afterwards."""
    calls: list[int] = []

    def ok(db: Session, job: Job):
        calls.append(job.id)
        job.progress = 0.5
        return {"echo": job.payload.get("n")}

    def boom(db: Session, job: Job):
        raise ValueError("bad input in job")

    jobs.HANDLERS.update({"test.ok": ok, "test.boom": boom})
    yield calls
    for k in ("test.ok", "test.boom"):
        jobs.HANDLERS.pop(k, None)


def enqueue(sessions, kind: str, **payload) -> int:
    with sessions() as s:
        job = jobs.enqueue(s, SYSTEM, kind, payload)
        s.commit()
        return job.id


def test_run_one__runs_and_records_the_result(sessions, kinds):
    job_id = enqueue(sessions, "test.ok", n=7)
    with sessions() as s:
        done = jobs.run_one(s, "w1")
    assert done.id == job_id
    with sessions() as s:
        job = queries.jobs.get(s, job_id)
        assert (job.status, job.result, job.attempts, job.progress) == (
            "succeeded", {"echo": 7}, 1, 1.0)
        assert job.finished_at is not None


def test_run_one__failure_is_retried_then_failed(sessions, kinds):
    job_id = enqueue(sessions, "test.boom")
    for attempt in range(1, 4):
        with sessions() as s:
            job = queries.jobs.get(s, job_id)
            job.run_after = utcnow() - dt.timedelta(seconds=1)
            s.commit()
            ran = jobs.run_one(s, "w1")
            assert ran.attempts == attempt
    with sessions() as s:
        job = queries.jobs.get(s, job_id)
        assert job.status == "failed"
        assert "bad input in job" in job.error
        assert jobs.run_one(s, "w1") is None


def test_enqueue__unknown_kind_is_refused(sessions):
    with sessions() as s, pytest.raises(ValueError):
        jobs.enqueue(s, SYSTEM, "no.such.kind")


def test_claim__concurrent_workers_never_take_the_same_job(sessions, kinds):
    ids = {enqueue(sessions, "test.ok", n=i) for i in range(12)}
    claimed: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            while True:
                with sessions() as s:
                    job = jobs.run_one(s, name)
                if job is None:
                    return
                with lock:
                    claimed.append(job.id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(claimed) == sorted(ids)
    assert sorted(kinds) == sorted(ids)


def test_requeue_stale__a_dead_workers_job_runs_again(sessions, kinds):
    job_id = enqueue(sessions, "test.ok", n=1)
    with sessions() as s:
        job = queries.jobs.claim_next(s, kinds=["test.ok"], worker="dead", now=utcnow())
        assert job.id == job_id
        job.locked_at = utcnow() - dt.timedelta(hours=1)
        s.commit()
        assert queries.jobs.requeue_stale(s, locked_before=utcnow() - dt.timedelta(minutes=10),
                                          now=utcnow()) == 1
        s.commit()
        assert jobs.run_one(s, "alive").status == "succeeded"


def test_prune__drops_expired_sessions(sessions):
    with sessions() as s:
        job = jobs.enqueue(s, SYSTEM, "maintenance.prune")
        s.commit()
        ran = jobs.run_one(s, "w")
        assert ran.id == job.id
        assert ran.status == "succeeded"
        assert set(ran.result) == {"sessions", "loginFailures"}
