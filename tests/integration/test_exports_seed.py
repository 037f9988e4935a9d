"""``bench.seed`` stores what ingestion would have stored, and ``dodoso export`` writes every
format from such a database; a long export on SQLite does not keep submissions out.

These tests need real commits (the CLI opens its own connections), so each backend gets a
scratch database: a SQLite file, and a throwaway PostgreSQL database when
DODOSO_TEST_DATABASE_URL points at PostgreSQL (dropped afterwards).
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.orm import Session

from bench.seed import REPEAT, REPEAT_ROWS, iter_xml, seed
from forms.schema import FormSchema
from server import migrate
from server.cli import main
from server.db import create_db_engine
from server.models import FormDef, Job, SubmissionRow
from server.services import exports as svc
from server.settings import Settings
from server.storage import LocalBlobStore
from sync.flatten import flatten
from sync.instance import parse_instance
from tests.conftest import TEST_DATABASE_URL_VAR
from tests.support.scratch import scratch_postgres_database

COUNT = 24
BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get(TEST_DATABASE_URL_VAR, "").startswith(
    "postgresql") else [])


class Seeded:
    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.settings = Settings(env="development", database_url=url,
                                 blob_store=str(tmp / "blobs"), log_format="console",
                                 log_level="WARNING", odk_validate="off")
        self.engine: Engine = create_db_engine(self.settings)
        self.env = {"DODOSO_ENV": "development", "DODOSO_DATABASE_URL": url,
                    "DODOSO_BLOB_STORE": str(tmp / "blobs"), "DODOSO_LOG_LEVEL": "WARNING"}
        self.tmp = tmp

    def export(self, *args: str) -> bytes:
        out = self.tmp / "out.bin"
        out.unlink(missing_ok=True)
        result = CliRunner().invoke(main, ["export", "--project", str(self.project_id),
                                           "--form", self.form_id, "--output", str(out),
                                           *args], env=self.env)
        assert result.exit_code == 0, (result.output, result.exception)
        return out.read_bytes()


@pytest.fixture(scope="module", params=BACKENDS)
def seeded(request, tmp_path_factory) -> Iterator[Seeded]:
    tmp = tmp_path_factory.mktemp(f"seed-{request.param}")
    if request.param == "sqlite":
        yield from _seeded(f"sqlite:///{tmp / 'seed.db'}", tmp)
    else:
        with scratch_postgres_database(os.environ[TEST_DATABASE_URL_VAR], tmp,
                                       prefix="dodoso_exp_seed") as url:
            yield from _seeded(url, tmp)


def _seeded(url: str, tmp: Path) -> Iterator[Seeded]:
    s = Seeded(url, tmp)
    try:
        migrate.upgrade(s.settings)
        s.project_id, s.form_id = seed(s.engine, COUNT, project_name="Seeded",
                                       store=LocalBlobStore(tmp / "blobs"),
                                       settings=s.settings, batch=10)
        yield s
    finally:
        s.engine.dispose()


def test_seed__rows_are_what_ingestion_stores(seeded):
    with Session(seeded.engine) as db:
        schema = FormSchema.from_json(db.scalar(select(FormDef.schema)))
        stored: dict[str, list[tuple]] = {}
        for r in db.scalars(select(SubmissionRow).order_by(SubmissionRow.id)):
            stored.setdefault(r.row_key.split("/")[0], []).append(
                (r.table_path, r.row_key, r.parent_key, r.position, r.data))
    assert len(stored) == COUNT
    for instance_id, xml in iter_xml(COUNT):
        rows = flatten(parse_instance(xml.encode()), schema)
        assert stored[instance_id] == [(row.table or "", row.key, row.parent_key, row.position,
                                        row.values) for row in rows]
        assert not any(row.extra for row in rows)
    assert len(rows) == 1 + REPEAT_ROWS and len(schema.questions()) >= 44


def test_cli__csv_zip_has_every_row(seeded):
    with zipfile.ZipFile(io.BytesIO(seeded.export("--format", "csv.zip"))) as archive:
        names = archive.namelist()
        root = list(csv.DictReader(io.StringIO(archive.read(names[0]).decode(), newline="")))
        members = list(csv.DictReader(io.StringIO(archive.read(names[1]).decode(),
                                                  newline="")))
    assert names == [f"{seeded.form_id}.csv", f"{seeded.form_id}-{REPEAT}.csv"]
    assert len(root) == COUNT and len(members) == COUNT * REPEAT_ROWS
    assert len(root[0]) == 1 + 40 + 3 + 1 + 10  # metadata, questions, geopoint parts, meta
    assert {m["PARENT_KEY"] for m in members} == {r["KEY"] for r in root}


def test_cli__every_format_and_a_filter(seeded):
    book = load_workbook(io.BytesIO(seeded.export("--format", "xlsx")), read_only=True)
    assert book.sheetnames == [seeded.form_id, REPEAT]
    assert len(list(book[seeded.form_id].iter_rows())) == COUNT + 1
    features = json.loads(seeded.export("--format", "geojson"))["features"]
    assert len(features) == COUNT and features[0]["geometry"]["type"] == "Point"
    one_device = seeded.export("--format", "csv", "--device-id", "bench:1", "--labels")
    rows = list(csv.DictReader(io.StringIO(one_device.decode(), newline="")))
    assert {r["DeviceID"] for r in rows} == {"bench:1"} and "Respondent" in rows[0]
    with zipfile.ZipFile(io.BytesIO(seeded.export("--format", "attachments.zip"))) as archive:
        assert archive.namelist() == []


def test_cli__refusals_are_clean(seeded):
    def fails(*args: str) -> str:
        result = CliRunner().invoke(main, ["export", "--project", str(seeded.project_id),
                                           "--output", str(seeded.tmp / "x"), *args],
                                    env=seeded.env)
        assert result.exit_code != 0 and type(result.exception) is SystemExit, result.output
        assert not (seeded.tmp / "x").exists()
        return result.output

    assert "No form" in fails("--form", "nope", "--format", "csv")
    assert "language" in fails("--form", seeded.form_id, "--format", "csv", "--labels",
                               "--language", "xx")
    assert "time zone" in fails("--form", seeded.form_id, "--format", "csv",
                                "--submitted-from", "2026-01-01T00:00:00")
    assert "geoField" in fails("--form", seeded.form_id, "--format", "geojson",
                               "--geo-field", "/respondent")


def test_export_stream__does_not_keep_writers_waiting(seeded):
    """While an export's cursor is open mid-table, another connection commits a write
    (on SQLite: the export's transaction is deferred, so it holds no write lock)."""
    with Session(seeded.engine) as db:
        from server import queries

        form = queries.forms.get(db, seeded.project_id, seeded.form_id)
        plan = svc.plan_export(db, form, svc.ExportRequest("csv.zip", attachments=False))
    chunks = svc.stream_export(seeded.engine, LocalBlobStore(seeded.tmp / "blobs"), plan)
    next(chunks)
    done = threading.Event()

    def write() -> None:
        with seeded.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.execute(text("PRAGMA busy_timeout=2000"))
            conn.execute(insert(Job).values(kind="export.expire", payload={}))
        done.set()

    writer = threading.Thread(target=write)
    started = time.monotonic()
    writer.start()
    writer.join(10)
    assert done.is_set() and time.monotonic() - started < 2
    assert len(b"".join(chunks)) > 0
    with seeded.engine.begin() as conn:
        conn.execute(Job.__table__.delete())
