"""Migrations: up/down/up, models == migrations, SQLite == PostgreSQL, names, durability.

Each test migrates its own scratch database (a file under tmp_path, or a throwaway
PostgreSQL database when DODOSO_TEST_DATABASE_URL points at PostgreSQL), never the
database the rest of the suite uses.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

import server.models  # noqa: F401  (registers every table on Base.metadata)
from server import migrate
from server.db import Base, check_sqlite_durability, create_db_engine
from server.models import AppUser, Project
from server.settings import Settings
from tests.conftest import TEST_DATABASE_URL_VAR
from tests.support.scratch import scratch_postgres_database

ALEMBIC_VERSION = "alembic_version"
BACKENDS = ["sqlite", "postgresql"]


# -- scratch databases --------------------------------------------------------------------

def configured_postgres_url() -> str | None:
    url = os.environ.get(TEST_DATABASE_URL_VAR)
    return url if url and make_url(url).get_backend_name() == "postgresql" else None


def scratch_settings_for(database_url: str, tmp_path: Path) -> Settings:
    return Settings(env="test", database_url=database_url, blob_store=str(tmp_path / "blobs"))


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return scratch_settings_for(f"sqlite:///{tmp_path / 'migrations.db'}", tmp_path)


@pytest.fixture
def postgresql_settings(tmp_path: Path) -> Iterator[Settings]:
    base_url = configured_postgres_url()
    if base_url is None:
        pytest.skip(f"PostgreSQL not configured: set {TEST_DATABASE_URL_VAR}=postgresql://…")
    with scratch_postgres_database(base_url, tmp_path, prefix="dodoso_migrations") as url:
        yield scratch_settings_for(url, tmp_path)


@pytest.fixture(params=BACKENDS)
def scratch_settings(request: pytest.FixtureRequest) -> Settings:
    """Settings for an empty scratch database on each backend (PostgreSQL if configured)."""
    return request.getfixturevalue(f"{request.param}_settings")


@contextmanager
def engine_for(settings: Settings) -> Iterator[Engine]:
    engine = create_db_engine(settings)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def scratch_engine(scratch_settings: Settings) -> Iterator[Engine]:
    """Disposed before the scratch database is dropped (fixtures tear down in reverse)."""
    with engine_for(scratch_settings) as engine:
        yield engine


# -- reflecting a schema into plain, comparable data ---------------------------------------

def exact_type(type_: TypeEngine) -> str:
    return repr(type_)


def portable_type(type_: TypeEngine) -> str:
    """The type's portable category; an unknown type fails loudly rather than matching."""
    if isinstance(type_, sa.JSON):  # JSONB is a JSON subclass
        return "json"
    if isinstance(type_, sa.Boolean):
        return "boolean"
    if isinstance(type_, sa.DateTime):  # TIMESTAMP, DATETIME
        return "datetime"
    if isinstance(type_, sa.Float):  # DOUBLE PRECISION, DOUBLE, REAL
        return "float"
    if isinstance(type_, sa.Integer):  # BIGINT, INTEGER
        return "integer"
    if isinstance(type_, sa.Text):  # before String: Text is a String subclass
        return "text"
    if isinstance(type_, sa.String):
        return f"string({type_.length})"
    raise AssertionError(f"no portable category for reflected type {type_!r}")


def schema_snapshot(engine: Engine, *, portable: bool = False) -> dict[str, dict[str, Any]]:
    """Every table's columns, keys, constraints and indexes, as plain comparable values.

    ``portable=True`` keeps only what should agree between SQLite and PostgreSQL:
    - types become categories: SQLite loses DATETIME's time zone, our BigId is INTEGER on
      SQLite by design (only INTEGER auto-increments there), JSON is JSONB on PostgreSQL;
    - column defaults are dropped: PostgreSQL reports nextval(...) for serial ids, SQLite
      reports nothing, and the models declare no server defaults;
    - check constraints keep only their names: PostgreSQL rewrites the SQL text
      (``status::text = ANY (ARRAY[...])``).
    Either way, PostgreSQL's reflection lists the unique index that backs each UNIQUE
    constraint (marked ``duplicates_constraint``) while SQLite hides its automatic index;
    that index is the constraint itself, already compared as a unique constraint.
    """
    type_of: Callable[[TypeEngine], str] = portable_type if portable else exact_type
    insp = inspect(engine)
    snapshot = {}
    for table in sorted(insp.get_table_names()):
        pk = insp.get_pk_constraint(table)
        snapshot[table] = {
            "columns": {
                c["name"]: {
                    "type": type_of(c["type"]),
                    "nullable": bool(c["nullable"]),
                    **({} if portable else {"default": c.get("default")}),
                }
                for c in insp.get_columns(table)
            },
            "primary_key": (pk["name"], tuple(pk["constrained_columns"])),
            "foreign_keys": sorted(
                (fk["name"], tuple(fk["constrained_columns"]), fk["referred_table"],
                 tuple(fk["referred_columns"]), fk["options"].get("ondelete"))
                for fk in insp.get_foreign_keys(table)
            ),
            "unique_constraints": sorted(
                (uq["name"], tuple(uq["column_names"]))
                for uq in insp.get_unique_constraints(table)
            ),
            "indexes": sorted(
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                for ix in insp.get_indexes(table)
                if "duplicates_constraint" not in ix
            ),
            "check_constraints": sorted(
                ck["name"] if portable else (ck["name"], ck["sqltext"])
                for ck in insp.get_check_constraints(table)
            ),
        }
    return snapshot


# -- 1. up → down → up ---------------------------------------------------------------------

def test_upgrade_downgrade_upgrade__round_trips(scratch_settings, scratch_engine):
    """Upgrade creates every model table, downgrade removes them all, upgrade again is equal."""
    migrate.upgrade(scratch_settings, "head")
    first = schema_snapshot(scratch_engine)
    assert set(first) == set(Base.metadata.tables) | {ALEMBIC_VERSION}
    with scratch_engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.head_revision()

    migrate.downgrade(scratch_settings, "base")
    insp = inspect(scratch_engine)
    assert set(insp.get_table_names()) <= {ALEMBIC_VERSION}
    assert insp.get_view_names() == []
    if scratch_engine.dialect.supports_sequences:
        assert insp.get_sequence_names() == []  # serial ids' sequences went with their tables
    with scratch_engine.connect() as conn:
        assert migrate.current_revision(conn) is None

    migrate.upgrade(scratch_settings, "head")
    assert schema_snapshot(scratch_engine) == first
    with scratch_engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.head_revision()


# -- 2. models == migrations ---------------------------------------------------------------

def test_models_match_migrations(scratch_settings, scratch_engine):
    """Autogenerate finds nothing to do after upgrade head: no model change lacks a migration."""
    migrate.upgrade(scratch_settings, "head")
    with scratch_engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True})
        diffs = compare_metadata(context, Base.metadata)
    assert diffs == []


# -- 3. SQLite == PostgreSQL ---------------------------------------------------------------

def test_sqlite_and_postgresql_schemas_match(sqlite_settings, postgresql_settings):
    """The same migrations build the same schema on both backends (see schema_snapshot)."""
    snapshots = {}
    for name, settings in (("sqlite", sqlite_settings), ("postgresql", postgresql_settings)):
        migrate.upgrade(settings, "head")
        with engine_for(settings) as engine:
            snapshots[name] = schema_snapshot(engine, portable=True)
    sqlite, postgresql = snapshots["sqlite"], snapshots["postgresql"]
    assert sorted(sqlite) == sorted(postgresql)
    for table in sqlite:
        assert sqlite[table] == postgresql[table], table


# -- 4. naming convention ------------------------------------------------------------------

def test_naming_convention__every_constraint_and_index_is_named(scratch_settings,
                                                                scratch_engine):
    """Names follow server.db.NAMING_CONVENTION, so later migrations can drop them by name.

    alembic_version is Alembic's own table (its key is ``alembic_version_pkc``) and is left
    out. Unique constraints are checked in full; check constraints and indexes carry a name
    chosen in the model, so only their ``ck_<table>_`` / ``ix_<table>_`` prefix is fixed.
    """
    migrate.upgrade(scratch_settings, "head")
    snapshot = schema_snapshot(scratch_engine)
    del snapshot[ALEMBIC_VERSION]
    assert snapshot
    for table, s in snapshot.items():
        assert s["primary_key"][0] == f"pk_{table}"
        for name, columns, referred_table, _, _ in s["foreign_keys"]:
            assert name == f"fk_{table}_{columns[0]}_{referred_table}"
        for name, columns in s["unique_constraints"]:
            assert name == f"uq_{table}_{'_'.join(columns)}"
        for name, _ in s["check_constraints"]:
            assert name and name.startswith(f"ck_{table}_")
        for name, _, _ in s["indexes"]:
            assert name and name.startswith(f"ix_{table}_")


# -- 5. SQLite durability ------------------------------------------------------------------

def sqlite_pragmas(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                for p in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")}


def test_sqlite_durability__engine_sets_pragmas(sqlite_settings):
    with engine_for(sqlite_settings) as engine:
        pragmas = sqlite_pragmas(engine)
        check_sqlite_durability(engine)
    assert str(pragmas["journal_mode"]).lower() == "wal"
    assert pragmas["synchronous"] == 2  # FULL
    assert pragmas["foreign_keys"] == 1
    assert pragmas["busy_timeout"] > 0


def test_sqlite_durability__plain_engine_is_refused(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    try:
        with pytest.raises(RuntimeError):
            check_sqlite_durability(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("weakened", ["journal_mode=DELETE", "synchronous=NORMAL",
                                      "foreign_keys=OFF", "busy_timeout=0"])
def test_sqlite_durability__any_weakened_pragma_is_refused(sqlite_settings, weakened):
    with engine_for(sqlite_settings) as engine:
        @event.listens_for(engine, "connect")  # runs after create_db_engine's own listener
        def _weaken(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA {weakened}")

        with pytest.raises(RuntimeError):
            check_sqlite_durability(engine)


# -- 6. foreign keys -----------------------------------------------------------------------

def test_foreign_keys__enforced(scratch_settings, scratch_engine):
    """An app user needs an existing project (SQLite only checks with foreign_keys=ON)."""
    migrate.upgrade(scratch_settings, "head")
    with Session(scratch_engine) as db:
        project = Project(name="Household survey")
        db.add(project)
        db.flush()
        db.add(AppUser(project_id=project.id, display_name="Tablet 1", token_hash="a" * 64))
        db.flush()  # the control: a valid reference is accepted

        db.add(AppUser(project_id=project.id + 1000, display_name="Tablet 2",
                       token_hash="b" * 64))
        with pytest.raises(IntegrityError):
            db.flush()
