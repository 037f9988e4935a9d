"""Benchmark: many Collect-like clients submitting at once, to gunicorn + PostgreSQL (issue 4).

    .venv/bin/python -m bench.ingest [--clients 8] [--seconds 20] [--photo] [--json out.json]

Two servers run side by side, both under gunicorn with the Procfile's options (gthread,
2 workers × 8 threads; bound to 127.0.0.1, each with its own control socket), each on its
own scratch PostgreSQL database:
dodoso itself (``DODOSO_ENV=production``, a project, an app user and a small published form
with a repeat and an image question assigned to it) and ``bench.ingest_baseline``, a bare
Flask endpoint that parses the XML and does one INSERT. The same load is run against each,
alternating (baseline, dodoso, then dodoso, baseline, …), so drift on a shared machine hits
both alike.

Each client is a thread with its own ``requests.Session`` (keep-alive) doing what Collect
does: HEAD …/submission (expect 204), then a multipart POST of ``xml_submission_file`` with
a new instanceID (expect 201); with ``--photo`` also a unique 1 MiB JPEG-like part that the
XML refers to. A few seconds of warm-up are not counted. Reported per server:
submissions/s, POST and HEAD+POST latency percentiles, errors, the summed RSS of the
gunicorn master and workers (``VmRSS``, sampled every 0.5 s) and CPU time per submission
(gunicorn processes, the server's PostgreSQL backends, and this client process).

Afterwards dodoso's database must hold exactly one submission per 201 it answered (and the
baseline's table one row per 201). Every process started here is stopped and both scratch
databases are dropped on the way out, whatever happened.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import os
import platform
import pstats
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests

from bench.ingest_baseline import INSERT, create_table
from bench.ingest_baseline import create_app as baseline_app

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
WORKERS, THREADS = 2, 8  # the Procfile's defaults (WEB_CONCURRENCY, WEB_THREADS)
PHOTO_BYTES = 1024 * 1024
PHOTO_NAME = "photo.jpg"
XML_SUBMISSION_FILE = "xml_submission_file"
FORM_ID = "ingest_bench"
TIMEOUT = (5, 60)
SAMPLE_SECONDS = 0.5
TICK = os.sysconf("SC_CLK_TCK")
P99_TARGET_MS = 100.0
RATIO_TARGET = 0.70
OPENROSA = {
    "X-OpenRosa-Version": "1.0",
    "User-Agent": "Dalvik/2.1.0 (Linux; U; Android 13) org.odk.collect.android/v2024.3.1",
    "Accept-Encoding": "gzip",
}

SURVEY = """
| survey   |                  |              |                      |
|          | type             | name         | label                |
|          | text             | name         | Name                 |
|          | integer          | age          | Age                  |
|          | select_one sex   | sex          | Sex                  |
|          | image            | photo        | Photo of the ID      |
|          | begin repeat     | members      | Household members    |
|          | text             | m_name       | Member name          |
|          | integer          | m_age        | Member age           |
|          | end repeat       |              |                      |
| choices  |                  |              |                      |
|          | list_name        | name         | label                |
|          | sex              | female       | Female               |
|          | sex              | male         | Male                 |
| settings |                  |              |                      |
|          | form_title       | form_id      | version              |
|          | Ingest benchmark | ingest_bench | 1                    |
"""

# ------------------------------------------------------------------------- what is sent


def instance_xml(instance_id: str, photo: str | None) -> bytes:
    members = "".join(f"<members><m_name>Member {k}</m_name><m_age>{20 + k}</m_age></members>"
                      for k in range(3))
    return (f'<?xml version="1.0"?><data xmlns:jr="http://openrosa.org/javarosa" '
            f'xmlns:orx="http://openrosa.org/xforms" id="{FORM_ID}" version="1">'
            f"<name>Amina Juma</name><age>34</age><sex>female</sex>"
            f"<photo>{photo or ''}</photo>{members}"
            f"<meta><instanceID>{instance_id}</instanceID></meta></data>").encode()


class Body:
    """A Collect-like multipart body: the XML part, then (``--photo``) one image part whose
    bytes are unique per submission (dodoso stores identical bytes once) but cost no more
    than a copy to make."""

    def __init__(self, photo: bool) -> None:
        self.boundary = uuid.uuid4().hex
        jfif = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
        self.photo_rest = (os.urandom(PHOTO_BYTES - len(jfif) - 16 - 2) + b"\xff\xd9"
                           if photo else b"")
        self.jfif = jfif
        self.content_type = f"multipart/form-data; boundary={self.boundary}"

    def _part(self, name: str, filename: str, content_type: str, data: bytes) -> bytes:
        return (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                f"filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
                ).encode() + data + b"\r\n"

    def make(self) -> tuple[str, bytes]:
        token = uuid.uuid4()
        instance_id = f"uuid:{token}"
        photo = bool(self.photo_rest)
        parts = [self._part(XML_SUBMISSION_FILE, "submission.xml", "text/xml",
                            instance_xml(instance_id, PHOTO_NAME if photo else None))]
        if photo:
            parts.append(self._part(PHOTO_NAME, PHOTO_NAME, "image/jpeg",
                                    self.jfif + token.bytes + self.photo_rest))
        return instance_id, b"".join(parts) + f"--{self.boundary}--\r\n".encode()


# ---------------------------------------------------------------------- processes, /proc

def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if int(_stat_fields(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    """utime + stime of each process that still exists, in seconds."""
    out = {}
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mib(kib: float) -> float:
    return kib / 1024


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


class Server:
    """One gunicorn, started as the Procfile starts dodoso, bound to loopback."""

    def __init__(self, name: str, app: str, env: dict[str, str], log_dir: Path, *,
                 port: int, workers: int, threads: int) -> None:
        self.name = name
        self.port = port
        self.workers = workers
        self.log_path = log_dir / f"{name}.log"
        command = [sys.executable, "-m", "gunicorn", "--worker-class", "gthread",
                   "--workers", str(workers), "--threads", str(threads), "--timeout", "120",
                   "--graceful-timeout", "30", "--keep-alive", "75",
                   "--bind", f"127.0.0.1:{self.port}",
                   # gunicorn ≥ 25.1 opens a control socket, by default at one path per user
                   # (~/.gunicorn/gunicorn.ctl), which a second master takes over: use our own.
                   "--control-socket", str(log_dir / f"{name}.ctl"), app]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.rss: list[tuple[float, int]] = []  # (perf_counter, summed VmRSS in KiB)

    def pids(self) -> list[int]:
        return [self.proc.pid, *_children(self.proc.pid)]

    def rss_kib(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                total += _rss_kib(pid)
            except OSError:
                continue
        return total

    def wait_ready(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                # Every worker must be up before the RSS at rest is read.
                if (requests.head(url, headers=OPENROSA, timeout=2).status_code == 204
                        and len(_children(self.proc.pid)) >= self.workers):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n"
                               f"{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to the master (a graceful stop), then SIGKILL to its process group."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=40)
        with suppress(ProcessLookupError):  # stragglers: its own group (start_new_session)
            os.killpg(self.proc.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


class RssSampler(threading.Thread):
    def __init__(self, servers: list[Server]) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.servers = servers
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            for server in self.servers:
                server.rss.append((time.perf_counter(), server.rss_kib()))
            self.stopped.wait(SAMPLE_SECONDS)


# -------------------------------------------------------------------- scratch databases

def database_url(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def scratch_database(admin_url: str, name: str) -> Iterator[str]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def backend_pids(admin_url: str, name: str) -> list[int]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))]


# ---------------------------------------------------------------------- dodoso set-up

def dodoso_env(url: str, blob_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DODOSO_")}
    env.update(
        DODOSO_ENV="production",
        DODOSO_SECRET_KEY=secrets.token_urlsafe(48),
        DODOSO_DATABASE_URL=url,
        DODOSO_BLOB_STORE=str(blob_dir),
        DODOSO_PUBLIC_URL=f"http://127.0.0.1:{port}",
        DODOSO_ODK_VALIDATE="off",
        DODOSO_LOG_LEVEL="WARNING",
    )
    return env


def dodoso_settings(env: dict[str, str]):
    from server.settings import Settings

    with mock.patch.dict(os.environ, env, clear=True):
        return Settings.from_env()


def set_up_dodoso(env: dict[str, str]) -> tuple[int, str]:
    """``dodoso db upgrade``, then a project, an app user and the form, published and
    assigned to it, through the services (as ``dodoso demo`` does). Returns (project, key)."""
    script = Path(sys.executable).with_name("dodoso")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]
    subprocess.run([*command, "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=120)

    from server.auth.actor import SYSTEM
    from server.db import create_db_engine, make_session_factory
    from server.services.app_users import create_app_user
    from server.services.forms import FormsContext, Upload, assign_app_user, create_form
    from server.services.projects import create_project
    from server.storage import open_blob_store

    settings = dodoso_settings(env)
    engine = create_db_engine(settings)
    try:
        with make_session_factory(engine)() as db:
            project = create_project(db, SYSTEM, name="Ingest benchmark")
            new = create_app_user(db, SYSTEM, project, display_name="Bench tablet")
            form = create_form(db, FormsContext(settings, open_blob_store(settings)), SYSTEM,
                               project, Upload(SURVEY.encode(), "ingest_bench.md",
                                               "text/markdown"),
                               publish=True, ignore_warnings=True)
            assign_app_user(db, SYSTEM, form, new.app_user.id)
            db.commit()
            return project.id, new.token
    finally:
        engine.dispose()


# -------------------------------------------------------------------------------- load

@dataclass
class Target:
    name: str
    server: Server
    database: str  # the scratch database's name
    submission_path: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}{self.submission_path}"


@dataclass
class ClientLog:
    post_ms: list[float] = field(default_factory=list)
    cycle_ms: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    created: int = 0  # every 201, warm-up included (for the database check)
    ended: float = 0.0  # when the last counted submission was answered


def _client(target: Target, body: Body, log: ClientLog, *, counted_from: float,
            stop_at: float, budget: Iterator[int], max_count: int) -> None:
    session = requests.Session()
    url = target.url
    post_headers = {**OPENROSA, "Content-Type": body.content_type}
    try:
        while (started := time.perf_counter()) < stop_at:
            counted = started >= counted_from
            if counted and next(budget) >= max_count:
                return
            _, data = body.make()
            try:
                head = session.head(url, headers=OPENROSA, timeout=TIMEOUT)
            except requests.RequestException as exc:
                log.errors[f"HEAD {type(exc).__name__}"] += counted
                time.sleep(0.05)
                continue
            if head.status_code != 204:
                log.errors[f"HEAD {head.status_code}"] += counted
                time.sleep(0.05)
                continue
            posted = time.perf_counter()
            try:
                reply = session.post(url, params={"deviceID": "collect:bench"}, data=data,
                                     headers=post_headers, timeout=TIMEOUT)
            except requests.RequestException as exc:
                log.errors[f"POST {type(exc).__name__}"] += counted
                time.sleep(0.05)
                continue
            done = time.perf_counter()
            if reply.status_code == 201:
                log.created += 1
            if not counted:
                continue
            if reply.status_code != 201:
                log.errors[f"POST {reply.status_code}"] += 1
                continue
            log.post_ms.append((done - posted) * 1000)
            log.cycle_ms.append((done - started) * 1000)
            log.ended = done
    finally:
        session.close()


def _quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks; ``values`` sorted."""
    if not values:
        return float("nan")
    pos = (len(values) - 1) * q
    low = int(pos)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (pos - low)


def latency(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": _quantile(ordered, 0.50), "p95": _quantile(ordered, 0.95),
            "p99": _quantile(ordered, 0.99), "max": ordered[-1] if ordered else float("nan")}


def run_phase(target: Target, body: Body, *, clients: int, warmup: float, seconds: float,
              max_count: int, admin_url: str) -> dict[str, Any]:
    logs = [ClientLog() for _ in range(clients)]
    budget = itertools.count()
    begin = time.perf_counter()
    counted_from, stop_at = begin + warmup, begin + warmup + seconds
    threads = [threading.Thread(target=_client, args=(target, body, log), daemon=True,
                                kwargs=dict(counted_from=counted_from, stop_at=stop_at,
                                            budget=budget, max_count=max_count))
               for log in logs]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, counted_from - time.perf_counter()))
    server_pids = target.server.pids()
    pg_pids = backend_pids(admin_url, target.database)
    cpu_server, cpu_pg = _cpu_seconds(server_pids), _cpu_seconds(pg_pids)
    cpu_client = time.process_time()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    end = time.perf_counter()
    server_after = _cpu_seconds(list({*server_pids, *target.server.pids()}))
    pg_after = _cpu_seconds(list({*pg_pids, *backend_pids(admin_url, target.database)}))
    cpu_client = time.process_time() - cpu_client

    post_ms = [v for log in logs for v in log.post_ms]
    cycle_ms = [v for log in logs for v in log.cycle_ms]
    ok = len(post_ms)
    duration = max([log.ended for log in logs if log.post_ms] or [end]) - counted_from
    rss = [kib for t, kib in target.server.rss if begin <= t <= end]
    errors = sum((log.errors for log in logs), Counter())

    def per_submission(before: dict[int, float], after: dict[int, float]) -> float:
        spent = sum(v - before.get(pid, 0.0) for pid, v in after.items())
        return spent * 1000 / ok if ok else float("nan")

    return {
        "target": target.name, "ok": ok, "seconds": duration,
        "per_second": ok / duration if duration > 0 else 0.0,
        "created_total": sum(log.created for log in logs),
        "errors": dict(errors), "error_count": sum(errors.values()),
        "post_ms": latency(post_ms), "cycle_ms": latency(cycle_ms),
        "rss_mib": {"start": _mib(rss[0]), "peak": _mib(max(rss)), "end": _mib(rss[-1])}
        if rss else {},
        "cpu_ms_per_submission": {
            "server": per_submission(cpu_server, server_after),
            "postgres": per_submission(cpu_pg, pg_after),
            "client": cpu_client * 1000 / ok if ok else float("nan")},
        "samples": {"post_ms": post_ms, "cycle_ms": cycle_ms},
        "loadavg": loadavg(),
    }


# ---------------------------------------------------------------------------- checking

def verify(targets: dict[str, Target], created: dict[str, int], admin_url: str,
           photo: bool) -> dict[str, Any]:
    """Exactly one stored submission per 201: nothing lost, nothing doubled."""
    out: dict[str, Any] = {}
    with psycopg.connect(database_url(admin_url, targets["dodoso"].database)) as conn:
        def one(sql: str) -> int:
            return conn.execute(sql).fetchone()[0]

        out["dodoso"] = {
            "answered_201": created["dodoso"],
            "submissions": one("SELECT count(*) FROM submissions"),
            "distinct_instance_ids": one("SELECT count(DISTINCT instance_id) FROM submissions"),
            "submission_defs": one("SELECT count(*) FROM submission_defs"),
            "rows": one("SELECT count(*) FROM submission_rows"),
            "attachments_stored": one(
                "SELECT count(*) FROM submission_attachments WHERE blob_id IS NOT NULL"),
            "blobs": one("SELECT count(*) FROM blobs"),
        }
    with psycopg.connect(database_url(admin_url, targets["baseline"].database)) as conn:
        out["baseline"] = {
            "answered_201": created["baseline"],
            "rows": conn.execute("SELECT count(*) FROM baseline_submissions").fetchone()[0]}
    d = out["dodoso"]
    rows_per_submission = 4  # the root and three repeat instances
    d["ok"] = (d["submissions"] == d["distinct_instance_ids"] == d["submission_defs"]
               == d["answered_201"] and d["rows"] == rows_per_submission * d["submissions"]
               and (not photo or d["attachments_stored"] == d["submissions"]))
    out["baseline"]["ok"] = out["baseline"]["rows"] == out["baseline"]["answered_201"]
    return out


# --------------------------------------------------------------------------- profiling

def _bucket(filename: str, name: str) -> str:
    text = f"{filename} {name}"
    for package in ("psycopg", "sqlalchemy", "werkzeug", "flask", "lxml", "structlog"):
        if package in text:
            return package
    for package in ("/sync/", "/server/", "/forms/", "/bench/"):
        if package in filename:
            return package.strip("/")
    return "other (stdlib, builtins)"


class _SqlClock:
    """Counts and times what an engine sends: statements, commits and pool pre-pings."""

    def __init__(self, engine) -> None:
        from sqlalchemy import event

        from server.db import DriverStatement

        self.reset()
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        dialect = engine.dialect
        dialect.do_commit = self._timed("commit", dialect.do_commit)
        dialect.do_ping = self._timed("ping", dialect.do_ping)
        # The hot path's statements run on psycopg's own connection (no engine events).
        real = DriverStatement.execute
        timed = self._timed("statement", real)

        def execute(statement, db, params):
            return timed(statement, db, params)
        self.restore = lambda: setattr(DriverStatement, "execute", real)
        DriverStatement.execute = execute  # type: ignore[method-assign]

    def reset(self) -> None:
        self.count: Counter = Counter()
        self.seconds: Counter = Counter()

    def _before(self, conn, *_args) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn, *_args) -> None:
        self.count["statement"] += 1
        self.seconds["statement"] += time.perf_counter() - conn.info.pop("bench_started")

    def _timed(self, kind: str, call):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.count[kind] += 1
                self.seconds[kind] += time.perf_counter() - started
        return timed


def _timed_requests(send, count: int, prepare=lambda: None) -> dict[str, float]:
    """Median wall time and mean CPU time of ``send(prepare())``, ``prepare`` not timed."""
    walls, cpu = [], 0.0
    for _ in range(count):
        argument = prepare()
        started, cpu_started = time.perf_counter(), time.process_time()
        send(argument)
        cpu += time.process_time() - cpu_started
        walls.append((time.perf_counter() - started) * 1000)
    return {"wall_ms_median": statistics.median(walls), "cpu_ms_mean": cpu * 1000 / count}


def profile_in_process(targets: dict[str, Target], env: dict[str, str], baseline_url: str,
                       body: Body, count: int) -> dict[str, Any]:
    """Both apps in this process (no HTTP, no gunicorn, one thread): time and CPU per HEAD
    and per POST; for dodoso also the SQL statements, commit and pool pre-ping per POST and,
    in a second pass under cProfile, where its own time goes (by package); for the baseline
    also a bare INSERT + COMMIT of the same row through psycopg, the floor under both."""
    from server import web
    from server.app import create_app

    apps = {"baseline": baseline_app(baseline_url), "dodoso": create_app(dodoso_settings(env))}
    engine = web.services(apps["dodoso"]).engine
    clock = _SqlClock(engine)
    headers = {**OPENROSA, "Content-Type": body.content_type}
    out: dict[str, Any] = {}
    try:
        for name, app in apps.items():
            client = app.test_client()
            path = targets[name].submission_path

            def post(data: bytes, client=client, path=path) -> None:
                status = client.post(path, data=data, headers=headers).status_code
                assert status == 201, status

            def head(_: None, client=client, path=path) -> None:
                assert client.head(path, headers=OPENROSA).status_code == 204

            def make() -> bytes:
                return body.make()[1]

            for _ in range(20):  # caches, prepared statements, the connection pool
                head(None)
                post(make())
            entry: dict[str, Any] = {"head": _timed_requests(head, count)}
            clock.reset()
            entry["post"] = _timed_requests(post, count, make)
            if name == "dodoso":
                entry["post"].update({
                    f"{kind}s_per_post": clock.count[kind] / count
                    for kind in ("statement", "commit", "ping")})
                entry["post"].update({
                    f"{kind}_ms_per_post": clock.seconds[kind] * 1000 / count
                    for kind in ("statement", "commit", "ping")})
                entry.update(_cprofile(post, make, count))
            else:
                entry["insert_commit"] = _insert_floor(baseline_url, INSERT, count)
            out[name] = entry
    finally:
        clock.restore()
        engine.dispose()
    return out


def _insert_floor(url: str, insert: str, count: int) -> dict[str, float]:
    with psycopg.connect(url) as conn:
        def send(instance_id: str) -> None:
            conn.execute(insert, (instance_id, instance_xml(instance_id, None).decode()))
            conn.commit()
        return _timed_requests(send, count, lambda: f"uuid:{uuid.uuid4()}")


def _cprofile(send, prepare, count: int) -> dict[str, Any]:
    """Own CPU time (not wall time: waiting for PostgreSQL is not counted) by package."""
    profiler = cProfile.Profile(time.process_time)
    for _ in range(count):
        argument = prepare()
        profiler.enable()
        send(argument)
        profiler.disable()
    stats = pstats.Stats(profiler)
    buckets: Counter = Counter()
    top = []
    for (filename, line, func), row in stats.stats.items():  # type: ignore[attr-defined]
        buckets[_bucket(filename, func)] += row[2]
        top.append((row[2], row[1], f"{Path(filename).name}:{line}({func})"))
    total = sum(buckets.values())
    return {"profile_share": {k: round(v / total, 3) for k, v in buckets.most_common()},
            "profile_top": [{"own_cpu_ms_per_post": own * 1000 / count,
                             "calls_per_post": calls / count, "function": where}
                            for own, calls, where in sorted(top, reverse=True)[:15]]}


# ------------------------------------------------------------------------------- run

def machine(admin_url: str) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
              if line.startswith("model name")]
    total_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text()
                     .splitlines() if line.startswith("MemTotal:"))
    with psycopg.connect(admin_url) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
        sync_commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
    return {
        "nproc": len(os.sched_getaffinity(0)), "cpu": models[0] if models else "",
        "ram_gib": round(_mib(_mib(total_kib)), 1), "python": platform.python_version(),
        "os": platform.platform(), "postgresql": pg, "synchronous_commit": sync_commit,
        **{name: version(name) for name in ("gunicorn", "flask", "werkzeug", "sqlalchemy",
                                            "psycopg", "lxml", "requests")},
    }


def pooled(phases: list[dict[str, Any]]) -> dict[str, Any]:
    ok = sum(p["ok"] for p in phases)
    seconds = sum(p["seconds"] for p in phases)
    post = [v for p in phases for v in p["samples"]["post_ms"]]
    cycle = [v for p in phases for v in p["samples"]["cycle_ms"]]
    errors = sum((Counter(p["errors"]) for p in phases), Counter())

    def mean_of(key: str, sub: str) -> float:
        return statistics.fmean(p[key][sub] for p in phases)

    return {
        "ok": ok, "seconds": seconds, "per_second": ok / seconds if seconds else 0.0,
        "post_ms": latency(post), "cycle_ms": latency(cycle), "errors": dict(errors),
        "error_count": sum(errors.values()),
        "rss_mib": {"start": phases[0]["rss_mib"]["start"],
                    "peak": max(p["rss_mib"]["peak"] for p in phases),
                    "end": phases[-1]["rss_mib"]["end"]},
        "cpu_ms_per_submission": {k: mean_of("cpu_ms_per_submission", k)
                                  for k in ("server", "postgres", "client")},
    }


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(args.admin_url), "loadavg_before": loadavg(),
        "settings": {"clients": args.clients, "seconds": args.seconds,
                     "warmup": args.warmup, "repeat": args.repeat, "photo": args.photo,
                     "workers": args.workers, "threads": args.threads,
                     "max_submissions": args.max_submissions},
    }
    suffix = secrets.token_hex(4)
    body = Body(args.photo)
    servers: list[Server] = []
    sampler = RssSampler(servers)
    with tempfile.TemporaryDirectory(prefix="dodoso-bench-ingest-") as tmp, \
            scratch_database(args.admin_url, f"dodoso_bench_{suffix}") as dodoso_url, \
            scratch_database(args.admin_url, f"dodoso_bench_base_{suffix}") as base_url:
        try:
            port = free_port()
            env = dodoso_env(dodoso_url, Path(tmp) / "blobs", port)
            project_id, key = set_up_dodoso(env)
            path = f"/v1/key/{key}/projects/{project_id}/submission"
            dodoso = Server("dodoso", "server.app:create_app()", env, Path(tmp), port=port,
                            workers=args.workers, threads=args.threads)
            servers.append(dodoso)
            base_env = {k: v for k, v in os.environ.items() if not k.startswith("DODOSO_")}
            create_table(base_url)
            baseline = Server("baseline", f"bench.ingest_baseline:create_app({base_url!r})",
                              base_env, Path(tmp), port=free_port(), workers=args.workers,
                              threads=args.threads)
            servers.append(baseline)
            targets = {"baseline": Target("baseline", baseline, urlsplit(base_url).path[1:],
                                          path),
                       "dodoso": Target("dodoso", dodoso, urlsplit(dodoso_url).path[1:], path)}
            for target in targets.values():
                target.server.wait_ready(target.url)
            time.sleep(1.0)
            for target in targets.values():
                target.server.check_alive()
            report["rss_at_rest_mib"] = {t.name: _mib(t.server.rss_kib())
                                         for t in targets.values()}
            sampler.start()
            phases = []
            for rep in range(args.repeat):
                order = ("baseline", "dodoso") if rep % 2 == 0 else ("dodoso", "baseline")
                for name in order:
                    phase = run_phase(targets[name], body, clients=args.clients,
                                      warmup=args.warmup, seconds=args.seconds,
                                      max_count=args.max_submissions,
                                      admin_url=args.admin_url)
                    phase["repeat"] = rep
                    targets[name].server.check_alive()
                    phases.append(phase)
                    print(_phase_line(phase), file=sys.stderr, flush=True)
                    if phase["error_count"]:
                        print(f"    {phase['errors']}; {name}'s log ends:\n"
                              f"{targets[name].server.log_tail(15)}", file=sys.stderr)
            sampler.stopped.set()
            sampler.join()
            report["phases"] = phases
            report["summary"] = {name: pooled([p for p in phases if p["target"] == name])
                                 for name in targets}
            created = {name: sum(p["created_total"] for p in phases if p["target"] == name)
                       for name in targets}
            report["rss_after_mib"] = {t.name: _mib(t.server.rss_kib())
                                       for t in targets.values()}
            report["verification"] = verify(targets, created, args.admin_url, args.photo)
            if args.profile:
                report["profile"] = profile_in_process(targets, env, base_url, body,
                                                       args.profile)
        finally:
            sampler.stopped.set()
            for server in servers:
                server.stop()
            for server in servers:
                if server.proc.poll() is None:
                    print(f"warning: {server.name} (pid {server.proc.pid}) did not stop",
                          file=sys.stderr)
    report["loadavg_after"] = loadavg()
    summary = report["summary"]
    ratio = _ratio(summary["dodoso"]["per_second"], summary["baseline"]["per_second"])
    report["ratio"] = ratio
    report["repeat_ratios"] = [
        _ratio(*(next(p for p in phases if p["repeat"] == r and p["target"] == name)
                 ["per_second"] for name in ("dodoso", "baseline")))
        for r in range(args.repeat)]
    p99 = summary["dodoso"]["post_ms"]["p99"]
    report["targets"] = {
        "throughput_ratio": {"target": RATIO_TARGET, "measured": ratio,
                             "met": ratio >= RATIO_TARGET},
        "post_p99_ms": {"target": P99_TARGET_MS, "measured": p99, "met": p99 < P99_TARGET_MS,
                        "applies": args.clients == 8},
    }
    return report


# ------------------------------------------------------------------------------ report

def _n(value: float) -> str:
    if value != value:  # nan
        return "–"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _phase_line(p: dict[str, Any]) -> str:
    return (f"  {p['target']:<8} {p['per_second']:7.1f}/s  POST p50 {_n(p['post_ms']['p50'])} "
            f"p99 {_n(p['post_ms']['p99'])} ms  errors {p['error_count']}  "
            f"load {p['loadavg'].split()[0]}")


_ROWS = (  # label, getter
    ("Submissions/s (HEAD + POST, 201)", lambda s: s["per_second"]),
    ("POST latency p50 (ms)", lambda s: s["post_ms"]["p50"]),
    ("POST latency p95 (ms)", lambda s: s["post_ms"]["p95"]),
    ("POST latency p99 (ms)", lambda s: s["post_ms"]["p99"]),
    ("HEAD + POST latency p50 (ms)", lambda s: s["cycle_ms"]["p50"]),
    ("HEAD + POST latency p99 (ms)", lambda s: s["cycle_ms"]["p99"]),
    ("Server RSS, gunicorn master + workers: start of load (MiB)",
     lambda s: s["rss_mib"]["start"]),
    ("Server RSS: peak (MiB)", lambda s: s["rss_mib"]["peak"]),
    ("Server RSS: end (MiB)", lambda s: s["rss_mib"]["end"]),
    ("CPU per submission: gunicorn processes (ms)",
     lambda s: s["cpu_ms_per_submission"]["server"]),
    ("CPU per submission: its PostgreSQL backends (ms)",
     lambda s: s["cpu_ms_per_submission"]["postgres"]),
    ("CPU per submission: the client process (ms)",
     lambda s: s["cpu_ms_per_submission"]["client"]),
)


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    base, dod = report["summary"]["baseline"], report["summary"]["dodoso"]
    lines = [f"{s['clients']} clients, {'1 MiB photo' if s['photo'] else 'small XML'}, "
             f"{s['repeat']} × {s['seconds']:.0f} s per server after {s['warmup']:.0f} s "
             f"warm-up; pooled over the repeats.", "",
             "| Measurement | baseline | dodoso | dodoso / baseline |",
             "| --- | ---: | ---: | ---: |"]
    for label, get in _ROWS:
        b, d = get(base), get(dod)
        lines.append(f"| {label} | {_n(b)} | {_n(d)} | {d / b:.2f}× |" if b else
                     f"| {label} | {_n(b)} | {_n(d)} | – |")
    lines.append(f"| Submissions counted | {base['ok']:,} | {dod['ok']:,} | – |")
    lines.append(f"| Errors | {base['error_count']} {base['errors'] or ''} | "
                 f"{dod['error_count']} {dod['errors'] or ''} | – |")
    rest = report["rss_at_rest_mib"]
    lines.append(f"| Server RSS at rest, before any load (MiB) | {_n(rest['baseline'])} "
                 f"| {_n(rest['dodoso'])} | {rest['dodoso'] / rest['baseline']:.2f}× |")
    lines += ["", "| Run | server | submissions/s | POST p50 / p95 / p99 (ms) | errors | "
              "load average |", "| --- | --- | ---: | ---: | ---: | --- |"]
    for p in report["phases"]:
        lines.append(f"| {p['repeat'] + 1} | {p['target']} | {_n(p['per_second'])} | "
                     f"{_n(p['post_ms']['p50'])} / {_n(p['post_ms']['p95'])} / "
                     f"{_n(p['post_ms']['p99'])} | {p['error_count']} | "
                     f"{' '.join(p['loadavg'].split()[:3])} |")
    t = report["targets"]
    ratios = ", ".join(f"{r:.2f}" for r in report["repeat_ratios"])
    lines += ["", f"Throughput ratio dodoso / baseline: **{report['ratio']:.2f}** "
                  f"(per repeat: {ratios}); target ≥ {RATIO_TARGET:.2f}: "
                  f"{'met' if t['throughput_ratio']['met'] else 'NOT met'}.",
              f"dodoso POST p99: **{_n(t['post_p99_ms']['measured'])} ms**; target "
              f"< {P99_TARGET_MS:.0f} ms at 8 clients: "
              + (("met" if t["post_p99_ms"]["met"] else "NOT met") if t["post_p99_ms"]["applies"]
                 else "not applicable at this client count") + "."]
    v = report["verification"]
    d = v["dodoso"]
    lines += ["", f"Database check: dodoso answered {d['answered_201']:,} × 201 and stores "
                  f"{d['submissions']:,} submissions ({d['distinct_instance_ids']:,} distinct "
                  f"instanceIDs, {d['submission_defs']:,} versions, {d['rows']:,} flattened "
                  f"rows, {d['attachments_stored']:,} attachments with their bytes, "
                  f"{d['blobs']:,} blobs): {'OK' if d['ok'] else 'MISMATCH'}. Baseline "
                  f"{v['baseline']['answered_201']:,} × 201, {v['baseline']['rows']:,} rows: "
                  f"{'OK' if v['baseline']['ok'] else 'MISMATCH'}."]
    if "profile" in report:
        pb, pd = report["profile"]["baseline"], report["profile"]["dodoso"]
        post = pd["post"]
        lines += ["", "In process (Flask test client, one thread, no HTTP, no gunicorn), "
                      "median wall time and mean CPU time of this process:", "",
                  "| In process | baseline | dodoso | dodoso / baseline |",
                  "| --- | ---: | ---: | ---: |"]
        for label, kind, key in (("HEAD, wall (ms)", "head", "wall_ms_median"),
                                 ("HEAD, CPU (ms)", "head", "cpu_ms_mean"),
                                 ("POST, wall (ms)", "post", "wall_ms_median"),
                                 ("POST, CPU (ms)", "post", "cpu_ms_mean")):
            b, d = pb[kind][key], pd[kind][key]
            lines.append(f"| {label} | {_n(b)} | {_n(d)} | {d / b:.2f}× |")
        lines += ["", f"A bare INSERT + COMMIT of the same row through psycopg: "
                      f"{_n(pb['insert_commit']['wall_ms_median'])} ms (median). Per dodoso "
                      f"POST (means): {post['statements_per_post']:.1f} SQL statements "
                      f"({_n(post['statement_ms_per_post'])} ms in them), "
                      f"{post['pings_per_post']:.1f} pool pre-ping "
                      f"({_n(post['ping_ms_per_post'])} ms), {post['commits_per_post']:.1f} "
                      f"commit ({_n(post['commit_ms_per_post'])} ms).", "",
                  "dodoso's POST under cProfile, own CPU time by package: " + ", ".join(
                      f"{k} {v:.0%}" for k, v in pd["profile_share"].items()) + "."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest",
                                     description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="measured seconds per server and repeat")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--photo", action="store_true", help="add a 1 MiB photo to each")
    parser.add_argument("--max-submissions", type=int, default=100_000,
                        help="per server and repeat")
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--profile", type=int, default=200, metavar="N",
                        help="then time N HEADs and POSTs in process, on both apps (0: skip)")
    parser.add_argument("--admin-url", default=ADMIN_URL,
                        help="a PostgreSQL URL allowed to CREATE and DROP DATABASE")
    parser.add_argument("--json", type=Path, help="also write every sample to this file")
    args = parser.parse_args(argv)
    report = run(args)
    m = report["machine"]
    print(f"{report['date']} · {m['nproc']} CPUs, {m['cpu']} · {m['ram_gib']} GiB · "
          f"Python {m['python']} · PostgreSQL {m['postgresql']} "
          f"(synchronous_commit={m['synchronous_commit']}) · gunicorn {m['gunicorn']} · "
          f"{m['os']}")
    print(f"load average before: {report['loadavg_before']}; after: "
          f"{report['loadavg_after']}\n")
    print(markdown(report))
    if "profile" in report:
        print("\ndodoso's POST in process, under cProfile, top functions by own CPU time:")
        for row in report["profile"]["dodoso"]["profile_top"]:
            print(f"  {row['own_cpu_ms_per_post']:7.3f} ms  {row['calls_per_post']:7.1f} calls  "
                  f"{row['function']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    ok = report["verification"]["dodoso"]["ok"] and report["verification"]["baseline"]["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
