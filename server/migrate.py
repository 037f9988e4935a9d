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
    command.upgrade(alembic_config(settings, connection), revision)


def downgrade(settings: Settings | None = None, revision: str = "-1", *,
              connection: Connection | None = None) -> None:
    command.downgrade(alembic_config(settings, connection), revision)


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
