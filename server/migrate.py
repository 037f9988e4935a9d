"""Run Alembic migrations from code (the CLI, tests and the Procfile's release step)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

import migrations
from server.db import read_only
from server.settings import Settings

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


def alembic_config(settings: Settings | None = None,
                   connection: Connection | None = None) -> Config:
    cfg = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["settings"] = settings
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(settings: Settings | None = None, revision: str = "head", *,
            connection: Connection | None = None) -> None:
    """The analysts' SQL views depend on the tables a migration may change: they are
    dropped first and rebuilt once the schema is at head (PostgreSQL only)."""
    postgresql = _drop_views(settings, connection)
    command.upgrade(alembic_config(settings, connection), revision)
    if postgresql and revision == "head":
        _rebuild_views(settings, connection)


def downgrade(settings: Settings | None = None, revision: str = "-1", *,
              connection: Connection | None = None) -> None:
    """Views are dropped first (``dodoso db views`` rebuilds them once back at head)."""
    _drop_views(settings, connection)
    command.downgrade(alembic_config(settings, connection), revision)


def _on_connection(settings: Settings | None, connection: Connection | None, work) -> object:
    if connection is not None:
        return work(connection)
    from server.db import create_db_engine

    engine = create_db_engine(settings or Settings.from_env())
    try:
        with engine.begin() as conn:
            return work(conn)
    finally:
        engine.dispose()


def _drop_views(settings: Settings | None, connection: Connection | None) -> bool:
    """Drop every form's views; False on a database that has none (SQLite)."""
    from server.queries import views

    def work(conn: Connection) -> bool:
        if conn.dialect.name != "postgresql":
            return False
        views.drop(conn, views.all_views(conn))
        return True
    return bool(_on_connection(settings, connection, work))


def _rebuild_views(settings: Settings | None, connection: Connection | None) -> None:
    from sqlalchemy.orm import Session

    from server.services import views

    def work(conn: Connection) -> None:
        with Session(bind=conn, join_transaction_mode="create_savepoint") as db:
            views.refresh_all(db)
            db.commit()
    _on_connection(settings, connection, work)


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


class SchemaNotCurrent(RuntimeError):
    """The database is reachable but its schema is not at this code's head revision."""


def check_schema_current(engine: Engine) -> None:
    """Raise SchemaNotCurrent unless the database is at the head revision."""
    with read_only(engine) as conn:
        current = current_revision(conn)
    head = head_revision()
    if current != head:
        raise SchemaNotCurrent(
            f"The database schema is at {current or 'nothing (empty database)'}, this dodoso "
            f"needs {head}: run `dodoso db upgrade`."
        )
