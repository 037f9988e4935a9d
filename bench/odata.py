"""Benchmark: paging the OData repeat table of 100k submissions with ``$skiptoken`` (issue 5).

    .venv/bin/python -m bench.odata                      # 100k submissions, pages of 1000
    .venv/bin/python -m bench.odata --count 10000 --page 500 --rounds 1 --json out.json

A scratch PostgreSQL database (``dodoso_bench_odata_<hex>``, dropped at the end whatever
happened, unless ``--keep``) is migrated, then ``bench.seed`` publishes its form and inserts
``--count`` submissions with a repeat of 3 rows each (``Submissions.members``: 300k rows for
100k submissions).

**The feed walk**: ``GET …/export_bench.svc/Submissions.members?$top=<page>``, then each
``@odata.nextLink`` until there is none, through the whole app in this process (Flask's test
client: routing, bearer-token authentication, access checks, the keyset query, shaping each
row into an OData entity, JSON), timing each page from request to the last byte of the
body. Every row must come exactly once.

**The baseline**, measured in the same run and alternated with the walk: the same keyset
SELECT (``server.queries.odata.rows_page``, same filter, order, page size and keys) run
directly on a session, page after page, fetching the rows and nothing else.

**Contrast**: the last page read with OFFSET (``$skip``) instead of a keyset, which is what
keyset paging avoids.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.seed import machine as seed_machine

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PASSWORD = "bench password, not a secret"
EDGE_PAGES = 10
"""Pages averaged for "first" and "last"."""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"pages": len(ms), "total_s": sum(seconds), "p50_ms": statistics.median(ms),
            "p99_ms": _percentile(ms, 0.99), "max_ms": max(ms),
            "first_ms": statistics.mean(ms[:EDGE_PAGES]),
            "last_ms": statistics.mean(ms[-EDGE_PAGES:])}


def walk_feed(client: Any, url: str, headers: dict[str, str], public: str) -> dict[str, Any]:
    seconds: list[float] = []
    ids: list[str] = []
    while url:
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        data = response.get_data()
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200, data[:500]
        body = json.loads(data)
        ids += [row["__id"] for row in body["value"]]
        link = body.get("@odata.nextLink")
        url = link[len(public):] if link else None
    return {"seconds": seconds, "rows": len(ids), "unique": len(set(ids))}


def walk_baseline(sessions: Any, form_id: int, page: int) -> dict[str, Any]:
    from server.queries import odata as sql

    scope = sql.Scope(form_id)
    keys = sql.sort_keys((), rows=True)
    seconds: list[float] = []
    rows = 0
    after = None
    with sessions() as db:
        while True:
            started = time.perf_counter()
            found = sql.rows_page(db, scope, "/members", keys, after, limit=page + 1)
            seconds.append(time.perf_counter() - started)
            shown = found[:page]
            rows += len(shown)
            if len(found) <= page:
                break
            after = [getattr(shown[-1], f"k{i}") for i in range(len(keys))]
    return {"seconds": seconds, "rows": rows}


def offset_page(sessions: Any, form_id: int, page: int, offset: int) -> float:
    from server.queries import odata as sql

    with sessions() as db:
        started = time.perf_counter()
        found = sql.rows_page(db, sql.Scope(form_id), "/members", sql.sort_keys((), rows=True),
                              limit=page, offset=offset)
        assert found
        return time.perf_counter() - started


def run(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg
    from sqlalchemy import select
    from sqlalchemy.engine import make_url

    from bench.seed import REPEAT_ROWS, seed
    from server import migrate
    from server.app import create_app
    from server.auth.actor import SYSTEM
    from server.auth.passwords import Passwords
    from server.models import Form
    from server.services import accounts
    from server.settings import Settings

    name = f"dodoso_bench_odata_{secrets.token_hex(4)}"
    url = make_url(args.admin_url).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    report: dict[str, Any] = {"database": name, "count": args.count, "page": args.page,
                              "machine": machine(), "rounds": []}
    public = "http://127.0.0.1:8080"
    try:
        settings = Settings(env="development", database_url=url, public_url=public,
                            blob_store=tempfile.mkdtemp(prefix="bench-odata-"),
                            odk_validate="off", log_level="WARNING", log_format="console",
                            argon2_time_cost=1, argon2_memory_kib=64,
                            secret_key="bench-secret-key-bench-secret-key-bench")
        migrate.upgrade(settings)
        app = create_app(settings)
        services = app.extensions["dodoso"]
        started = time.perf_counter()
        project_id, xml_form_id = seed(services.engine, args.count, project_name="OData bench",
                                       settings=settings)
        report["seed_s"] = time.perf_counter() - started
        print(f"seeded {args.count:,} submissions in {report['seed_s']:.1f} s", flush=True)
        with services.sessions() as db:
            accounts.create_user(db, Passwords(settings), SYSTEM, email="bench@example.org",
                                 password=PASSWORD, is_admin=True)
            form_pk = db.scalar(select(Form.id).where(Form.project_id == project_id,
                                                      Form.xml_form_id == xml_form_id))
            db.commit()
        client = app.test_client()
        login = client.post("/v1/sessions", json={"email": "bench@example.org",
                                                  "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.get_json()['token']}"}
        feed_url = (f"/v1/projects/{project_id}/forms/{xml_form_id}.svc/Submissions.members"
                    f"?$top={args.page}")
        expected = args.count * REPEAT_ROWS
        for i in range(args.rounds):
            order = ["baseline", "feed"] if i % 2 == 0 else ["feed", "baseline"]
            round_: dict[str, Any] = {}
            for kind in order:
                if kind == "feed":
                    result = walk_feed(client, feed_url, headers, public)
                    assert result["rows"] == result["unique"] == expected, result
                else:
                    result = walk_baseline(services.sessions, form_pk, args.page)
                    assert result["rows"] == expected, result
                round_[kind] = _stats(result["seconds"])
                s = round_[kind]
                print(f"round {i + 1} {kind:>8}: {s['pages']} pages, {s['total_s']:.2f} s, "
                      f"p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, first "
                      f"{s['first_ms']:.1f} ms, last {s['last_ms']:.1f} ms", flush=True)
            report["rounds"].append(round_)
        offsets = [offset_page(services.sessions, form_pk, args.page, expected - args.page)
                   for _ in range(3)]
        firsts = [offset_page(services.sessions, form_pk, args.page, 0) for _ in range(3)]
        report["offset"] = {"last_page_ms": statistics.median(offsets) * 1000,
                            "first_page_ms": statistics.median(firsts) * 1000}
        print(f"OFFSET: first page {report['offset']['first_page_ms']:.1f} ms, last page "
              f"{report['offset']['last_page_ms']:.1f} ms", flush=True)
        services.engine.dispose()
    finally:
        if not args.keep:
            with psycopg.connect(args.admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return report


def machine() -> dict[str, str]:
    return seed_machine()


def summarize(report: dict[str, Any]) -> str:
    lines = ["| Walk | pages | total (s) | p50 (ms) | p99 (ms) | first 10 (ms) | "
             "last 10 (ms) | total ÷ baseline |", "| --- | ---: | ---: | ---: | ---: | ---: "
             "| ---: | ---: |"]
    for i, round_ in enumerate(report["rounds"], start=1):
        base = round_["baseline"]["total_s"]
        for kind in ("feed", "baseline"):
            s = round_[kind]
            lines.append(f"| round {i}, {kind} | {s['pages']} | {s['total_s']:.1f} | "
                         f"{s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {s['first_ms']:.1f} | "
                         f"{s['last_ms']:.1f} | {s['total_s'] / base:.2f}× |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="Keep the scratch database.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = run(args)
    print(summarize(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
