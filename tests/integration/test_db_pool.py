"""The PostgreSQL pool pings a connection only when it sat idle (server/db.py).

A connection in steady use skips the ping (one round trip less on every Collect request);
one that sat idle longer than the threshold is pinged, and replaced when the server has
ended it, so the request that draws it never sees the dead connection.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

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
