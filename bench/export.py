"""Benchmark: exporting 10k and 100k submissions from PostgreSQL (issue 5).

    .venv/bin/python -m bench.export                       # 10k and 100k, csv.zip and xlsx
    .venv/bin/python -m bench.export --sizes 10000 --formats csv.zip --repeat 1 --json out.json

A scratch PostgreSQL database (``dodoso_bench_exp_<hex>``, dropped at the end whatever
happened, unless ``--keep``) is migrated, then ``bench.seed`` publishes its form and inserts
each size's submissions (40 questions and a repeat of 3 rows each) into a project of its own.

Each measurement runs in a fresh child process (``python -m bench.export child …``), so its
memory is its own: the child reports its wall time for the export alone (imports done) and
its peak RSS (``VmHWM``, read by the child itself at the end); the parent also samples the
child's ``VmRSS`` every 50 ms as a cross-check. The dodoso child does what ``dodoso export``
does (``services.exports.plan_export`` then ``write_file`` on a read-only connection). The
baseline child, measured in the same run and interleaved with it, is the bare minimum for
the same CSV zip: psycopg with a server-side cursor over the same rows (decoded JSONB), the
values written with the ``csv`` module into a deflated ``zipfile``, one table after the
other; no column model, no safety, no SQLAlchemy. Results are medians (min–max) over
``--repeat`` runs, with the ratio dodoso ÷ baseline for the CSV zip.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

from bench.seed import machine as seed_machine

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SAMPLE_SECONDS = 0.05
TARGET_SECONDS = 30.0
TARGET_RSS_MIB = 200.0
DEFLATE_LEVEL = 1
"""The baseline deflates at dodoso's level (``server.exports.writers.DEFLATE_LEVEL``, checked
in ``run``) without importing dodoso."""


# -- the child --------------------------------------------------------------------------------

def _status_kib(field: str, pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(args: argparse.Namespace) -> None:
    """Run one export and print ``{"seconds", "peak_kib", "start_kib", "bytes"}``."""
    if args.kind == "baseline":
        import psycopg  # noqa: F401  (imports before the clock starts, as for dodoso)
    else:
        from server.db import create_db_engine
        from server.services import exports as svc
        from server.settings import Settings
        from server.storage import LocalBlobStore
    start_kib = _status_kib("VmRSS")
    started = time.perf_counter()
    out_path = Path(args.output)
    if args.kind == "baseline":
        written = baseline_export(args.database_url, args.project, args.form, out_path)
    else:
        from sqlalchemy.orm import Session

        from server import queries
        from server.exports.columns import Layout

        settings = Settings(env="development", database_url=args.database_url,
                            blob_store=tempfile.mkdtemp(prefix="bench-exp-"))
        engine = create_db_engine(settings)
        with Session(engine) as db:
            form = queries.forms.get(db, args.project, args.form)
            plan = svc.plan_export(db, form, svc.ExportRequest(args.format, Layout(),
                                                               attachments=True))
        with out_path.open("wb") as out:
            written = svc.write_file(engine, LocalBlobStore(Path(settings.blob_store)), plan,
                                     out)
        engine.dispose()
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_kib": _status_kib("VmHWM"),
                      "start_kib": start_kib, "bytes": written}))


def baseline_export(url: str, project_id: int, xml_form_id: str, out_path: Path) -> int:
    """The same two tables into a deflated zip (at dodoso's level) with nothing but psycopg,
    csv and zipfile."""
    import psycopg

    with psycopg.connect(url) as conn:
        form_pk, schema = conn.execute(
            "SELECT f.id, d.schema FROM forms f JOIN form_defs d ON d.form_id = f.id "
            "WHERE f.project_id = %s AND f.xml_form_id = %s AND d.published_at IS NOT NULL "
            "ORDER BY d.published_at DESC LIMIT 1", (project_id, xml_form_id)).fetchone()
        tables: dict[str, list[str]] = {}
        for field in schema["fields"]:
            if field["type"] not in ("structure", "repeat"):
                tables.setdefault(field["repeat"] or "", []).append(field["path"])
        with zipfile.ZipFile(out_path, "w", zipfile.ZIP_DEFLATED,
                             compresslevel=DEFLATE_LEVEL) as archive:
            for table, paths in tables.items():
                name = f"{xml_form_id}{'-' + table.rsplit('/', 1)[1] if table else ''}.csv"
                with archive.open(name, "w", force_zip64=True) as raw, \
                        io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
                    writer = csv.writer(text)
                    writer.writerow([*paths, "KEY"])
                    with conn.cursor(name=f"rows_{len(name)}") as cursor:
                        cursor.itersize = 1000
                        cursor.execute(
                            "SELECT r.data, r.row_key FROM submissions s "
                            "JOIN submission_defs d ON d.submission_id = s.id AND d.current "
                            "JOIN submission_rows r ON r.submission_def_id = d.id "
                            "AND r.table_path = %s "
                            "WHERE s.form_id = %s AND NOT s.draft AND s.deleted_at IS NULL "
                            "ORDER BY s.created_at DESC, s.id DESC, r.id", (table, form_pk))
                        for data, key in cursor:
                            writer.writerow([*(data.get(p) for p in paths), key])
    return out_path.stat().st_size


# -- the parent -------------------------------------------------------------------------------

def measure(kind: str, url: str, project_id: int, form_id: str, fmt: str,
            out_dir: Path) -> dict[str, Any]:
    output = out_dir / f"{kind}-{fmt}-{secrets.token_hex(4)}"
    command = [sys.executable, "-m", "bench.export", "child", "--kind", kind,
               "--database-url", url, "--project", str(project_id), "--form", form_id,
               "--format", fmt, "--output", str(output)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    sampled = [0]

    def sample() -> None:
        while process.poll() is None:
            try:
                sampled[0] = max(sampled[0], _status_kib("VmRSS", process.pid))
            except (FileNotFoundError, ProcessLookupError):
                return
            time.sleep(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{kind} {fmt} child failed:\n{stderr[-4000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["sampled_kib"] = sampled[0]
    output.unlink(missing_ok=True)
    return result


def _median(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:,.1f}"
    return f"{statistics.median(values):,.1f} ({min(values):,.1f}–{max(values):,.1f})"


def run(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg
    from sqlalchemy.engine import make_url

    from bench.seed import seed
    from server import migrate
    from server.db import create_db_engine
    from server.exports import writers
    from server.settings import Settings

    assert writers.DEFLATE_LEVEL == DEFLATE_LEVEL

    name = f"dodoso_bench_exp_{secrets.token_hex(4)}"
    url = make_url(args.admin_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    report: dict[str, Any] = {"database": name, "sizes": {}, "machine": machine()}
    try:
        settings = Settings(env="development", database_url=url,
                            blob_store=tempfile.mkdtemp(prefix="bench-exp-"),
                            odk_validate="off")
        migrate.upgrade(settings)
        engine = create_db_engine(settings)
        forms = {}
        for size in args.sizes:
            started = time.perf_counter()
            forms[size] = seed(engine, size, project_name=f"Export bench {size}",
                               settings=settings)
            report["sizes"][size] = {"seed_seconds": time.perf_counter() - started}
            print(f"seeded {size:,} submissions in "
                  f"{report['sizes'][size]['seed_seconds']:.1f} s", flush=True)
        engine.dispose()
        with tempfile.TemporaryDirectory(prefix="bench-exp-out-") as out:
            for size in args.sizes:
                project_id, form_id = forms[size]
                runs: dict[str, list[dict[str, Any]]] = {}
                for i in range(args.repeat):
                    kinds = [("baseline", "csv.zip")] + [("dodoso", f) for f in args.formats]
                    if i % 2:
                        kinds.reverse()
                    for kind, fmt in kinds:
                        result = measure(kind, url, project_id, form_id, fmt, Path(out))
                        runs.setdefault(f"{kind} {fmt}", []).append(result)
                        print(f"{size:>7,} {kind:>8} {fmt:<8} {result['seconds']:7.2f} s "
                              f"peak {result['peak_kib'] / 1024:6.1f} MiB "
                              f"(sampled {result['sampled_kib'] / 1024:6.1f}) "
                              f"{result['bytes'] / 1e6:8.1f} MB", flush=True)
                report["sizes"][size]["runs"] = runs
    finally:
        if not args.keep:
            with psycopg.connect(args.admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return report


def machine() -> dict[str, str]:
    return seed_machine("openpyxl", "zipstream-ng")


def summarize(report: dict[str, Any]) -> str:
    lines = ["| Submissions | Export | time (s) | ratio to baseline | peak RSS (MiB) | "
             "RSS after imports (MiB) | output (MB) |", "| ---: | --- | ---: | ---: | ---: | "
             "---: | ---: |"]
    for size, data in report["sizes"].items():
        base = statistics.median(r["seconds"] for r in data["runs"]["baseline csv.zip"])
        for label, runs in data["runs"].items():
            seconds = [r["seconds"] for r in runs]
            ratio = (f"{statistics.median(seconds) / base:.2f}×" if label.endswith("csv.zip")
                     else "–")
            lines.append(
                f"| {int(size):,} | {label} | {_median(seconds)} | {ratio} | "
                f"{_median([r['peak_kib'] / 1024 for r in runs])} | "
                f"{_median([r['start_kib'] / 1024 for r in runs])} | "
                f"{statistics.median(r['bytes'] for r in runs) / 1e6:,.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    c = sub.add_parser("child")
    c.add_argument("--kind", choices=["dodoso", "baseline"], required=True)
    c.add_argument("--database-url", required=True)
    c.add_argument("--project", type=int, required=True)
    c.add_argument("--form", required=True)
    c.add_argument("--format", default="csv.zip")
    c.add_argument("--output", required=True)
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--formats", nargs="+", default=["csv.zip", "xlsx"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.command == "child":
        child(args)
        return
    report = run(args)
    print(summarize(report))
    print(f"targets: CSV zip of the largest size under {TARGET_SECONDS:.0f} s, peak RSS under "
          f"{TARGET_RSS_MIB:.0f} MiB and flat across sizes")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
