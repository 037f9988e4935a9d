"""Throwaway PostgreSQL databases for tests that need real commits or a schema of their own
(the shared test database runs every other test in a rolled-back transaction)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from server import migrate
from server.db import create_db_engine
from server.settings import Settings


@contextmanager
def scratch_postgres_database(base_url: str, tmp_path: Path, *, prefix: str) -> Iterator[str]:
    """A new database on the server ``base_url`` names; dropped however the test ends."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = create_db_engine(Settings(env="test", database_url=base_url,
                                      blob_store=str(tmp_path / "unused")),
                             isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def migrated_scratch_postgres(base_url: str, tmp_path: Path, *,
                              prefix: str) -> Iterator[tuple[Settings, Engine]]:
    """A scratch database upgraded to the head migration: settings for it (blobs under
    ``tmp_path``, ODK Validate off) and an engine on it, disposed before the drop."""
    with scratch_postgres_database(base_url, tmp_path, prefix=prefix) as url:
        settings = Settings(env="test", database_url=url, blob_store=str(tmp_path / "blobs"),
                            odk_validate="off")
        migrate.upgrade(settings)
        engine = create_db_engine(settings)
        try:
            yield settings, engine
        finally:
            engine.dispose()
