"""Seed a database with many synthetic submissions, fast, for benchmarks.

    from bench.seed import seed
    project_id, xml_form_id = seed(engine, 100_000, project_name="Export bench")

The form (``SEED_FORM_ID``: 40 questions, a group, a repeat of 4 questions) is published
through the normal service, as a designer's upload would be. The submissions then go in
directly with SQL Core inserts, in batches: for each, the submission, its version (the XML as
Collect would send it) and its flattened rows (one root row and ``REPEAT_ROWS`` repeat rows),
exactly what ingestion would have stored (``tests/integration/test_exports_seed.py`` checks
that against ``sync.flatten``). No blobs, no audit events. Values are pseudo-random from
``random_seed``, so two runs seed the same data.

    .venv/bin/python -m bench.seed --database-url postgresql://…/bench_exp --count 10000
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from openpyxl import Workbook
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.orm import Session

from server.auth.actor import SYSTEM
from server.db import create_db_engine
from server.models import FormDef, Submission, SubmissionDef, SubmissionRow
from server.services.app_users import create_app_user
from server.services.forms import FormsContext, Upload, create_form
from server.services.projects import create_project
from server.settings import Settings
from server.storage import BlobStore, LocalBlobStore

SEED_FORM_ID = "export_bench"
REPEAT = "members"
REPEAT_ROWS = 3
BATCH = 2_000
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)

CHOICES = {
    "yesno": ["yes", "no", "dont_know"],
    "region": [f"region_{i}" for i in range(12)],
    "reason": ["work", "family", "study", "conflict", "climate", "other"],
    "sex": ["female", "male", "other"],
    "country": ["tz", "ke", "ug", "qa", "ae", "sa", "om", "za", "de", "it"],
}
# (type, name): 40 questions; ``work/…`` sit in a group.
QUESTIONS: list[tuple[str, str]] = (
    [("text", "respondent"), ("integer", "age"), ("select_one sex", "sex"),
     ("select_one region", "region"), ("geopoint", "location"), ("date", "interview_date")]
    + [("text", f"note_{i}") for i in range(9)]
    + [("integer", f"count_{i}") for i in range(6)]
    + [("decimal", f"amount_{i}") for i in range(4)]
    + [("select_one yesno", f"yesno_{i}") for i in range(5)]
    + [("select_multiple reason", "reasons"), ("select_multiple country", "countries_visited"),
       ("date", "left_home"), ("date", "returned")]
    + [("text", f"work/{n}") for n in ("employer", "job_title", "city")]
    + [("integer", "work/hours"), ("decimal", "work/wage"), ("select_one yesno", "work/contract")]
)
MEMBER_QUESTIONS = [("text", "m_name"), ("integer", "m_age"), ("select_one sex", "m_sex"),
                    ("decimal", "m_income")]
assert len(QUESTIONS) == 40


def form_xlsx(form_id: str = SEED_FORM_ID, version: str = "1") -> bytes:
    """The benchmark form as an .xlsx XLSForm."""
    book = Workbook()
    survey = book.active
    survey.title = "survey"
    survey.append(["type", "name", "label"])
    in_group = False
    for kind, name in QUESTIONS:
        group, _, leaf = name.rpartition("/")
        if group and not in_group:
            survey.append(["begin group", group, group.title()])
            in_group = True
        survey.append([kind, leaf, leaf.replace("_", " ").title()])
    if in_group:
        survey.append(["end group", None, None])
    survey.append(["begin repeat", REPEAT, "Household members"])
    for kind, name in MEMBER_QUESTIONS:
        survey.append([kind, name, name.replace("_", " ").title()])
    survey.append(["end repeat", None, None])
    choices = book.create_sheet("choices")
    choices.append(["list_name", "name", "label"])
    for list_name, values in CHOICES.items():
        for value in values:
            choices.append([list_name, value, value.replace("_", " ").title()])
    settings = book.create_sheet("settings")
    settings.append(["form_title", "form_id", "version"])
    settings.append(["Export benchmark", form_id, version])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


class _Answers:
    """Deterministic answers of the right type for each question."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def __call__(self, kind: str) -> str:
        rng = self.rng
        if kind == "text":
            return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 6)))
        if kind == "integer":
            return str(rng.randint(-5, 120))
        if kind == "decimal":
            return f"{rng.uniform(-1000, 100000):.2f}"
        if kind == "date":
            return (START.date() - dt.timedelta(days=rng.randint(0, 3000))).isoformat()
        if kind == "geopoint":
            return (f"{rng.uniform(-11, 4):.6f} {rng.uniform(29, 41):.6f} "
                    f"{rng.uniform(0, 2000):.1f} {rng.uniform(2, 30):.1f}")
        list_name = kind.split()[1]
        values = CHOICES[list_name]
        if kind.startswith("select_multiple"):
            return " ".join(rng.sample(values, rng.randint(1, 3)))
        return rng.choice(values)


_WORDS = ["Dar es Salaam", "Kigoma", "Doha", "kazi", "familia", "=SUM(1)", "mama", "safari",
          "Dubai", "Mwanza", "ujenzi", "ndani", "-", "zaidi", "O'Neil", 'say "hi"', "a,b",
          "mstari\nmpya", "ñandú", "علي"]


def _submission(i: int, rng: random.Random, form_id: str, version: str
                ) -> tuple[str, str, dict[str, Any], list[dict[str, Any]]]:
    """(instanceID, XML, root data, repeat rows' data) of the i-th submission."""
    answer = _Answers(rng)
    instance_id = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
    root: dict[str, Any] = {}
    parts = [f'<?xml version="1.0"?><data id="{form_id}" version="{version}">']
    open_group = None
    for kind, name in QUESTIONS:
        group, _, leaf = name.rpartition("/")
        if group != open_group:
            if open_group:
                parts.append(f"</{open_group}>")
            if group:
                parts.append(f"<{group}>")
            open_group = group or None
        value = answer(kind)
        root[f"/{name}"] = value
        parts.append(f"<{leaf}>{escape(value)}</{leaf}>")
    if open_group:
        parts.append(f"</{open_group}>")
    members = []
    for _ in range(REPEAT_ROWS):
        values = {f"/{REPEAT}/{name}": answer(kind) for kind, name in MEMBER_QUESTIONS}
        members.append(values)
        parts.append(f"<{REPEAT}>" + "".join(
            f"<{path.rsplit('/', 1)[1]}>{escape(value)}</{path.rsplit('/', 1)[1]}>"
            for path, value in values.items()) + f"</{REPEAT}>")
    root["/meta/instanceID"] = instance_id
    parts.append(f"<meta><instanceID>{instance_id}</instanceID></meta></data>")
    return instance_id, "".join(parts), root, members


def seed(engine: Engine, n: int, *, project_name: str = "Export benchmark",
         form_id: str = SEED_FORM_ID, random_seed: int = 2026,
         settings: Settings | None = None, store: BlobStore | None = None,
         batch: int = BATCH) -> tuple[int, str]:
    """Create a project with the benchmark form (published) and ``n`` submissions from one
    app user; returns ``(project_id, xml_form_id)``. ``settings``/``store`` are what the
    form service compiles and stores the XLSForm with (defaults: validation off, a
    temporary directory)."""
    scratch = None
    if store is None:
        scratch = tempfile.TemporaryDirectory(prefix="dodoso-seed-")
        store = LocalBlobStore(Path(scratch.name))
    settings = settings or Settings(env="development", database_url="sqlite://",
                                    blob_store="unused", odk_validate="off")
    try:
        with Session(engine) as db:
            project = create_project(db, SYSTEM, name=project_name)
            form = create_form(db, FormsContext(settings=settings, store=store), SYSTEM, project,
                               Upload(form_xlsx(form_id), f"{form_id}.xlsx"), publish=True,
                               ignore_warnings=True)
            app_user = create_app_user(db, SYSTEM, project, display_name="Bench tablet").app_user
            form_def = db.scalar(select(FormDef).where(FormDef.form_id == form.id))
            assert form_def is not None
            db.commit()
            ids = (project.id, form.id, form_def.id, form_def.version, app_user.id)
    finally:
        if scratch is not None:
            scratch.cleanup()
    project_id, form_pk, form_def_id, version, app_user_id = ids
    rng = random.Random(random_seed)
    with engine.begin() as conn:
        next_sub = (conn.scalar(select(func.max(Submission.id))) or 0) + 1
        next_def = (conn.scalar(select(func.max(SubmissionDef.id))) or 0) + 1
        next_row = (conn.scalar(select(func.max(SubmissionRow.id))) or 0) + 1
    for start in range(0, n, batch):
        subs, defs, rows = [], [], []
        for i in range(start, min(start + batch, n)):
            instance_id, xml, root, members = _submission(i, rng, form_id, version)
            created = START + dt.timedelta(seconds=i * 7)
            sub_id, def_id = next_sub + i, next_def + i
            subs.append({"id": sub_id, "form_id": form_pk, "draft": False,
                         "instance_id": instance_id, "review_state": "received",
                         "submitter_app_user_id": app_user_id, "device_id": f"bench:{i % 10}",
                         "created_at": created})
            defs.append({"id": def_id, "submission_id": sub_id, "form_id": form_pk,
                         "draft": False, "form_def_id": form_def_id, "instance_id": instance_id,
                         "xml": xml, "xml_sha256": hashlib.sha256(xml.encode()).hexdigest(),
                         "encrypted": False, "current": True,
                         "submitter_app_user_id": app_user_id, "device_id": f"bench:{i % 10}",
                         "created_at": created})
            rows.append(_row(next_row + len(rows) + start * (REPEAT_ROWS + 1), def_id, form_pk,
                             "", instance_id, None, 1, root))
            for position, values in enumerate(members, start=1):
                rows.append(_row(next_row + len(rows) + start * (REPEAT_ROWS + 1), def_id,
                                 form_pk, f"/{REPEAT}", f"{instance_id}/{REPEAT}[{position}]",
                                 instance_id, position, values))
        with engine.begin() as conn:
            conn.execute(insert(Submission), subs)
            conn.execute(insert(SubmissionDef), defs)
            conn.execute(insert(SubmissionRow), rows)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for table in ("submissions", "submission_defs", "submission_rows"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
            conn.execute(text("ANALYZE submissions, submission_defs, submission_rows"))
    return project_id, form_id


def _row(row_id: int, def_id: int, form_pk: int, table: str, key: str, parent: str | None,
         position: int, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": row_id, "submission_def_id": def_id, "form_id": form_pk, "table_path": table,
            "row_key": key, "parent_key": parent, "position": position, "data": data,
            "extra": None}


def iter_xml(n: int, *, random_seed: int = 2026, form_id: str = SEED_FORM_ID,
             version: str = "1") -> Iterator[tuple[str, str]]:
    """``(instanceID, XML)`` of the first ``n`` seeded submissions (to check them)."""
    rng = random.Random(random_seed)
    for i in range(n):
        instance_id, xml, _root, _members = _submission(i, rng, form_id, version)
        yield instance_id, xml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--project-name", default="Export benchmark")
    args = parser.parse_args()
    engine = create_db_engine(Settings(env="development", database_url=args.database_url,
                                       blob_store="unused"))
    started = time.perf_counter()
    project_id, form_id = seed(engine, args.count, project_name=args.project_name)
    print(f"project {project_id}, form {form_id}: {args.count} submissions in "
          f"{time.perf_counter() - started:.1f} s")
    engine.dispose()


if __name__ == "__main__":
    main()


def machine(*packages: str) -> dict[str, str]:
    """What a benchmark ran on: CPU, Python, the named packages' versions, date and load."""
    import os
    import platform
    from datetime import datetime, timezone
    from importlib.metadata import version
    from pathlib import Path

    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"nproc": str(os.cpu_count()), "cpu": cpu, "python": platform.python_version(),
            **{p: version(p) for p in ("sqlalchemy", "psycopg", *packages)},
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "loadavg": Path("/proc/loadavg").read_text().split()[0]}
