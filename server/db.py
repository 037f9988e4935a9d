"""Engine, sessions and the declarative base shared by every model.

SQLite is the embedded default and must be as durable as it can be: WAL journal,
``synchronous=FULL``, foreign keys on and a busy timeout. PostgreSQL is production.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import JSON, Connection, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.expression import ClauseElement
from sqlalchemy.types import TypeDecorator

from server.settings import Settings, resolve_path

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Execution option for read-only SQLite transactions that must not hold the write lock.
SQLITE_DEFERRED = "dodoso_sqlite_deferred"

# Portable JSON: JSONB on PostgreSQL, JSON text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use server.db.utcnow()")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSONType}


def sqlalchemy_url(settings: Settings) -> str:
    """The database URL with driver defaults filled in (psycopg 3 for PostgreSQL)."""
    url = make_url(settings.database_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        path = resolve_path(url.database)
        path.parent.mkdir(parents=True, exist_ok=True)
        url = url.set(database=os.fspath(path))
    return url.render_as_string(hide_password=False)


def create_db_engine(settings: Settings, **overrides: Any) -> Engine:
    url = sqlalchemy_url(settings)
    if url.startswith("sqlite"):
        engine = create_engine(url, **overrides)
        _make_sqlite_durable(engine, settings.sqlite_busy_timeout_ms)
    else:
        options: dict[str, Any] = dict(
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size,
            pool_timeout=10,
            # A request cut off mid-transaction by a network partition would otherwise hold
            # its instanceID's lock until TCP notices, blocking the tablet's retry
            # (docs/reliability.md): the server ends such a session after 5 minutes, and
            # keepalives find a dead peer within about a minute.
            connect_args={"connect_timeout": 5, "application_name": "dodoso",
                          "options": "-c idle_in_transaction_session_timeout=300000",
                          "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                          "keepalives_count": 3},
        )
        options.update(overrides)
        engine = create_engine(url, **options)
        if not options.get("pool_pre_ping"):
            _ping_after_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


PING_AFTER_IDLE_SECONDS = 5.0


def _ping_after_idle(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection before handing it out only when it sat idle for a while.

    ``pool_pre_ping`` pings on every checkout: one more round trip on every Collect request.
    A connection in steady use was just proven good; one that sat idle may have been cut by
    a database restart or a proxy's idle timeout, and is pinged (and replaced, if dead)
    before a request uses it. A connection that dies while in steady use fails its request
    once (503, Collect retries) and SQLAlchemy then invalidates the whole pool.
    """

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is None or time.monotonic() - returned < idle_seconds:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()
        except Exception as exc:  # the pool retries with a new connection
            raise DisconnectionError(f"idle connection is gone: {exc}") from exc


def _make_sqlite_durable(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide where transactions begin, so that
        # SAVEPOINTs work (tests) and nothing commits implicitly.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front, so a transaction that reads and then
        # writes waits (busy_timeout) instead of failing with "database is locked" when
        # another writer got there first. Long read-only work (exports) can opt out.
        deferred = conn.get_execution_options().get(SQLITE_DEFERRED, False)
        conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


def check_sqlite_durability(engine: Engine) -> None:
    """Refuse to run on a SQLite database that could lose acknowledged writes."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return
    with read_only(engine) as conn:
        journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        fks = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
        busy = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
    if str(journal).lower() != "wal" or sync != 2 or fks != 1 or not busy:
        raise RuntimeError(
            f"SQLite is not configured durably (journal_mode={journal}, synchronous={sync}, "
            f"foreign_keys={fks}, busy_timeout={busy}); refusing to start"
        )


@contextmanager
def read_only(engine: Engine) -> Iterator[Connection]:
    """A connection for reads only: on SQLite it doesn't take the write lock, so start-up
    checks and long exports never wait behind (or block) writers."""
    with engine.connect() as conn:
        yield conn.execution_options(**{SQLITE_DEFERRED: True})


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


class DriverStatement:
    """A statement of a hot path, run on the driver's own connection (PostgreSQL only).

    For a statement that returns a row or two, SQLAlchemy's per-execution bookkeeping (the
    execution context, result wrapping, events) costs about three times psycopg's own work.
    The statement is compiled once by SQLAlchemy, so the SQL sent is what ``db.execute``
    would send, and it runs inside the session's transaction (committed or rolled back
    with it). Parameters must already be what psycopg takes (JSON wrapped in ``Jsonb``):
    no SQLAlchemy type processing happens. Errors are raised as SQLAlchemy's (a unique
    violation is an ``IntegrityError``, an outage an ``OperationalError``), and a connection
    found broken is invalidated, as ``db.execute`` does.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._sql: dict[str, str] = {}

    def sql(self, dialect: Dialect) -> str:
        sql = self._sql.get(dialect.name)
        if sql is None:
            sql = self._sql[dialect.name] = str(self.statement.compile(dialect=dialect))
        return sql

    def execute(self, db: Session, params: dict[str, Any]) -> Any:
        """The driver's cursor, to fetch from."""
        connection = db.connection()
        dialect = connection.dialect
        sql = self.sql(dialect)
        pooled = connection.connection
        driver = pooled.driver_connection
        try:
            return driver.execute(sql, params, prepare=True)  # type: ignore[union-attr]
        except dialect.loaded_dbapi.Error as exc:
            broken = dialect.is_disconnect(exc, driver, None)
            if broken:
                connection.invalidate(exc)
            raise DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error,
                                      connection_invalidated=broken, dialect=dialect) from exc
