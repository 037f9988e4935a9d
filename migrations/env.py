"""Alembic environment: batch mode so the same migrations run on SQLite and PostgreSQL."""

from alembic import context

import server.models  # noqa: F401  (registers every table)
from server.db import Base, create_db_engine
from server.settings import Settings

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    settings = config.attributes.get("settings") or Settings.from_env()
    engine = create_db_engine(settings)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("dodoso runs migrations online only: use `dodoso db upgrade`.")
run_migrations_online()
