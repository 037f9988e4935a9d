"""The PostgreSQL pool pings a connection only when it sat idle (server/db.py).

A connection in steady use skips the ping (one round trip less on every Collect request);
one that sat idle longer than the threshold is pinged, and replaced when the server has
ended it, so the request that draws it never sees the dead connection.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from server import db as server_db
from server.settings import Settings

IDLE = 2.0  # seconds, for the test's engine: well above what a terminate takes


@pytest.fixture
def pool_engine(settings: Settings, engine: Engine, monkeypatch) -> Engine:
    if engine.dialect.name != "postgresql":
        pytest.skip("the idle ping is PostgreSQL's (SQLite has no server to lose)")
    monkeypatch.setattr(server_db, "PING_AFTER_IDLE_SECONDS", IDLE)
    test_engine = server_db.create_db_engine(settings, pool_size=1, max_overflow=0)
    yield test_engine
    test_engine.dispose()


def backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def terminate(engine: Engine, pid: int) -> None:
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        conn.commit()
    time.sleep(0.2)  # the backend exits asynchronously


def test_a_connection_idle_past_the_threshold_is_pinged_and_replaced(pool_engine, engine):
    first = backend_pid(pool_engine)
    time.sleep(IDLE + 0.2)
    terminate(engine, first)
    assert backend_pid(pool_engine) != first  # the ping found it dead: a new connection


def test_a_connection_in_steady_use_is_not_pinged(pool_engine, engine):
    """Without a ping, a connection the server ended just now fails its one request (503 to
    Collect, which retries); SQLAlchemy then discards the pool and the next one works."""
    first = backend_pid(pool_engine)
    terminate(engine, first)
    with pytest.raises(DBAPIError) as failed:
        backend_pid(pool_engine)
    assert failed.value.connection_invalidated
    assert backend_pid(pool_engine) != first


# -- statements run on the driver's own connection (server.db.DriverStatement) --------------

def test_a_driver_statement_raises_sqlalchemys_errors_and_leaves_the_session_usable(
        pool_engine):
    insert = server_db.DriverStatement(text("INSERT INTO driver_t (k) VALUES (:k) RETURNING k"))
    with server_db.make_session_factory(pool_engine)() as session:
        session.execute(text("CREATE TEMP TABLE driver_t (k text UNIQUE)"))
        assert insert.execute(session, {"k": "a"}).fetchone() == ("a",)
        with pytest.raises(IntegrityError) as duplicate:
            insert.execute(session, {"k": "a"})
        assert not duplicate.value.connection_invalidated
        session.rollback()
        assert session.execute(text("SELECT 1")).scalar_one() == 1


def test_a_driver_statement_on_a_dead_connection_invalidates_it(pool_engine, engine):
    """A connection the server ended fails its one statement as an outage (503 to Collect,
    which retries), and is replaced: the next request gets a live one."""
    select_pid = server_db.DriverStatement(text("SELECT pg_backend_pid()"))
    sessions = server_db.make_session_factory(pool_engine)
    with sessions() as session:
        first = select_pid.execute(session, {}).fetchone()[0]
        session.commit()
        terminate(engine, first)
        with pytest.raises(OperationalError) as failed:
            select_pid.execute(session, {})
        assert failed.value.connection_invalidated
        session.rollback()
    with sessions() as session:
        assert select_pid.execute(session, {}).fetchone()[0] != first
