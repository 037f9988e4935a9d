"""The fault harness: dodoso for real (gunicorn as the Procfile runs it, a PostgreSQL cluster
of its own, S3 on loopback), Collect-like clients keeping a ledger, faults injected under
load, and the invariants checked after each (bench/faults/verify.py).

Faults:
- ``kill_worker``: ``kill -9`` of one gunicorn worker (the master starts another);
- ``kill_master``: ``kill -9`` of the gunicorn master (the supervisor starts gunicorn again);
- ``deploy_restart``: SIGTERM to the master, as a deploy does (graceful stop, then started);
- ``postgres_restart``: ``pg_ctl stop -m immediate``, down a few seconds, started again;
- ``s3_restart``: the S3 endpoint stopped (port closed, connections reset), then started;
- ``s3_blackhole``: the S3 endpoint answering nothing for ``BLACKHOLE_SECONDS`` (requests to it
  hang until the client's timeouts);
- ``torn_uploads``: clients hanging up halfway through a body (FIN or RST); half of those
  submissions are then sent again in full, the other half never;
- ``duplicate_race``: the same submission sent by several clients at the same moment, and
  two different submissions under one instanceID racing (one must win, the other get 409).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.faults import clients as collect
from bench.faults.postgres import PrivateCluster, private_cluster_possible
from bench.faults.proxy import ProxiedDatabase
from bench.faults.s3 import KEY, REGION, Endpoint
from bench.faults.s3 import client as s3_client
from bench.faults.server import ROOT, Gunicorn, procfile_command
from bench.faults.verify import Check, Leftovers, diagnose, leftovers, verify
from bench.ingest import ADMIN_URL, dodoso_settings, free_port

BLACKHOLE_SECONDS = 100.0
BUCKET = "dodoso"
PREFIX = "blobs"
FORM_FILE = ROOT / "tests" / "data" / "forms" / "household_migration.md"
FAULT_KINDS = ("kill_worker", "kill_master", "postgres_restart", "s3_restart", "torn_uploads",
               "duplicate_race", "deploy_restart")
SLOW_FAULT_KINDS = ("s3_blackhole",)  # minutes long: only when asked for


@dataclass
class Environment:
    tmp: Path
    cluster: PrivateCluster | ProxiedDatabase
    s3: Endpoint
    gunicorn: Gunicorn
    env: dict[str, str]
    db_url: str
    submission_url: str
    ledger: collect.Ledger = field(default_factory=collect.Ledger)
    faults: Counter = field(default_factory=Counter)
    fault_log: list[dict[str, Any]] = field(default_factory=list)
    race_problems: list[str] = field(default_factory=list)
    read_back: set[str] = field(default_factory=set)
    """Attachments already read back from the bucket and found intact."""

    @property
    def bucket(self) -> Any:
        return s3_client(self.s3.url)

    def settings(self):
        return dodoso_settings(self.env)


def dodoso_env(db_url: str, s3_url: str, port: int, *, workers: int | None,
               threads: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DODOSO_")}
    env.update(
        DODOSO_ENV="production",
        DODOSO_SECRET_KEY=secrets.token_urlsafe(48),
        DODOSO_DATABASE_URL=db_url,
        DODOSO_BLOB_STORE=f"s3://{BUCKET}/{PREFIX}",
        DODOSO_S3_ENDPOINT_URL=s3_url,
        DODOSO_S3_REGION=REGION,
        DODOSO_S3_ACCESS_KEY_ID=KEY,
        DODOSO_S3_SECRET_ACCESS_KEY=KEY,
        DODOSO_S3_ADDRESSING_STYLE="path",
        DODOSO_PUBLIC_URL=f"http://127.0.0.1:{port}",
        DODOSO_ODK_VALIDATE="off",
        DODOSO_LOG_LEVEL="WARNING",
    )
    if workers:
        env["WEB_CONCURRENCY"] = str(workers)
    if threads:
        env["WEB_THREADS"] = str(threads)
    return env


def release(env: dict[str, str]) -> None:
    """The Procfile's ``release`` step, ``dodoso db upgrade``, run in this process (a new
    interpreter would cost seconds of imports)."""
    from server import migrate

    assert procfile_command(env, 0, "release")[-2:] == ["db", "upgrade"]
    migrate.upgrade(dodoso_settings(env))


def set_up_collect(env: dict[str, str]) -> str:
    """A project, an app user and the household survey published and assigned to it, through
    the services as ``dodoso demo`` does. Returns the app user's submission URL path."""
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
            project = create_project(db, SYSTEM, name="Fault harness")
            new = create_app_user(db, SYSTEM, project, display_name="Harness tablets")
            form = create_form(db, FormsContext(settings, open_blob_store(settings)), SYSTEM,
                               project, Upload(FORM_FILE.read_bytes(), FORM_FILE.name,
                                               "text/markdown"),
                               publish=True, ignore_warnings=True)
            assign_app_user(db, SYSTEM, form, new.app_user.id)
            db.commit()
            return f"/v1/key/{new.token}/projects/{project.id}/submission"
    finally:
        engine.dispose()


@contextmanager
def environment(*, workers: int | None = None, threads: int | None = None,
                postgres: str = "auto", admin_url: str = ADMIN_URL,
                keep: bool = False) -> Iterator[Environment]:
    """Everything started, and everything stopped and removed afterwards (``keep``, or a
    ``problems.json`` written there: the temp directory with the logs stays).
    ``postgres``: ``private`` (a cluster of our own), ``proxy`` (a scratch database on
    ``admin_url``'s server behind a proxy we can cut), or ``auto``: private when the server
    binaries are there."""
    tmp = Path(tempfile.mkdtemp(prefix="dodoso-faults-"))
    tmp.chmod(0o755)
    if postgres == "auto":
        postgres = "private" if private_cluster_possible() else "proxy"
    with ExitStack() as stack:
        stack.callback(lambda: None if keep or (tmp / "problems.json").exists()
                       else shutil.rmtree(tmp, ignore_errors=True))
        cluster: PrivateCluster | ProxiedDatabase = (
            PrivateCluster(tmp / "pg", free_port()) if postgres == "private"
            else ProxiedDatabase(admin_url, free_port()))
        stack.callback(cluster.destroy)
        cluster.create()
        cluster.start()
        db_url = cluster.database()
        s3 = Endpoint(free_port(), tmp / "s3.log")
        stack.callback(s3.close)
        s3_client(s3.url).create_bucket(Bucket=BUCKET)
        port = free_port()
        env = dodoso_env(db_url, s3.url, port, workers=workers, threads=threads)
        release(env)
        path = set_up_collect(env)
        gunicorn = Gunicorn(env, port, tmp / "gunicorn.log")
        stack.callback(gunicorn.stop)
        gunicorn.start()
        gunicorn.supervise()
        url = f"http://127.0.0.1:{port}{path}"
        gunicorn.wait_ready(url)
        yield Environment(tmp, cluster, s3, gunicorn, env, db_url, url)


# -- faults -------------------------------------------------------------------------------------

def inject(env: Environment, kind: str, factory: collect.Factory, *,
           rng: random.Random) -> dict[str, Any]:
    """One fault of ``kind``; returns what was done."""
    started = time.monotonic()
    detail: dict[str, Any] = {}
    if kind == "kill_worker":
        detail["pid"] = env.gunicorn.kill_worker()
    elif kind == "kill_master":
        detail["pid"] = env.gunicorn.kill_master()
    elif kind == "deploy_restart":
        detail["pid"] = env.gunicorn.terminate_master()
    elif kind == "postgres_restart":
        detail["down_s"] = down = round(rng.uniform(1.0, 4.0), 1)
        env.cluster.crash_restart(down)
    elif kind == "s3_restart":
        detail["down_s"] = down = round(rng.uniform(1.0, 4.0), 1)
        env.s3.stop()
        time.sleep(down)
        env.s3.start()
    elif kind == "s3_blackhole":
        detail["down_s"] = BLACKHOLE_SECONDS
        env.s3.freeze()
        time.sleep(BLACKHOLE_SECONDS)
        env.s3.thaw()
    elif kind == "torn_uploads":
        detail.update(torn_uploads(env, factory, rng=rng))
    elif kind == "duplicate_race":
        detail.update(duplicate_race(env, factory))
    else:
        raise ValueError(f"unknown fault {kind!r}")
    env.faults[kind] += 1
    detail.update(kind=kind, seconds=round(time.monotonic() - started, 2))
    env.fault_log.append(detail)
    return detail


def torn_uploads(env: Environment, factory: collect.Factory, *, rng: random.Random,
                 count: int = 6) -> dict[str, Any]:
    """``count`` bodies cut off at 20–80 %; half of them sent again in full afterwards."""
    resent = 0
    subs = [factory.make() for _ in range(count)]
    for i, sub in enumerate(subs):
        with suppress(OSError):  # the server was down: still a body that never arrived whole
            collect.send_torn(env.submission_url, sub, fraction=rng.uniform(0.2, 0.8),
                              reset=i % 2 == 1)
    for i, sub in enumerate(subs):
        if i % 2 == 0:
            with requests.Session() as session:
                status = collect.send(session, env.submission_url, sub, env.ledger,
                                      deadline=time.monotonic() + 90)
            resent += status in collect.SUCCESS
        else:
            env.ledger.torn.add(sub.instance_id)
    return {"torn": count, "resent_and_acknowledged": resent}


def duplicate_race(env: Environment, factory: collect.Factory, *, copies: int = 6
                   ) -> dict[str, Any]:
    """``copies`` identical uploads at once (all must succeed, one submission stored); then
    two different XMLs under one instanceID (one 201, one 409)."""
    deadline = time.monotonic() + 90
    same = factory.make()
    identical = collect.race(env.submission_url, [same] * copies, env.ledger, deadline=deadline)
    first = factory.make()
    second = factory.variant(first)
    env.ledger.variants[first.instance_id] = [first, second]
    conflicting = collect.race(env.submission_url, [first, second], env.ledger,
                               deadline=deadline)
    winners = [sub for sub, status in zip([first, second], conflicting, strict=True)
               if status in collect.SUCCESS]
    if len(winners) == 1:
        env.ledger.sent[first.instance_id] = winners[0]
    if any(status not in collect.SUCCESS for status in identical):
        env.race_problems.append(f"{same.instance_id}: identical racers answered {identical}")
    if sorted(conflicting) != [201, 409]:
        env.race_problems.append(f"{first.instance_id}: conflicting racers answered "
                                 f"{conflicting}, expected one 201 and one 409")
    return {"identical": dict(Counter(identical)), "conflicting": sorted(conflicting)}


# -- a run --------------------------------------------------------------------------------------

@dataclass
class Outcome:
    seconds: float
    faults: Counter
    statuses: Counter
    drained: bool
    recovery_s: float
    """From the end of the load to a new submission answered 201."""
    check: Check
    gc: dict[str, Any]
    leftovers: Leftovers
    race_problems: list[str]

    @property
    def ok(self) -> bool:
        return (self.drained and self.check.ok and self.leftovers.none
                and not self.race_problems and not self.unexpected_statuses)

    @property
    def unexpected_statuses(self) -> dict[str, int]:
        """Answers a correct server never gives here: a 500, or a 4xx outside the races."""
        return {k: v for k, v in self.statuses.items()
                if k.split()[1] == "500" or (k.split()[1].startswith("4")
                                             and k != "POST 409")}

    def summary(self) -> str:
        c = self.check
        return (f"{self.seconds:.0f} s, faults {dict(self.faults)}; acknowledged "
                f"{c.acknowledged}, found {c.found}, stored {c.stored}, attachments read back "
                f"{c.attachments_verified}; answers {dict(self.statuses)}; clean-up "
                f"{self.gc}; leftovers {self.leftovers}; recovery {self.recovery_s:.1f} s; "
                f"problems {c.problems + self.race_problems}; unexpected "
                f"{self.unexpected_statuses}; drained {self.drained}")


def run(env: Environment, *, seconds: float, clients: int, faults: list[tuple[float, str]],
        factory: collect.Factory | None = None, seed: int = 7, drain_seconds: float = 90.0,
        abandon: float = 0.0) -> Outcome:
    """Closed-loop load for ``seconds`` while ``faults`` (offset in seconds, kind) are
    injected; then every submission under way is let finish, and everything is checked.
    ``abandon``: the share of failed uploads never sent again (their bytes may be left for
    the clean-up)."""
    rng = random.Random(seed)
    factory = factory or collect.Factory(seed=seed)
    faults_before = Counter(env.faults)
    began = time.time()
    load = collect.Clients(env.submission_url, factory, env.ledger, count=clients,
                           abandon=abandon)
    load.start()
    start = time.monotonic()
    injector_error: list[BaseException] = []

    def injector() -> None:
        try:
            for at, kind in sorted(faults):
                time.sleep(max(0.0, start + at - time.monotonic()))
                inject(env, kind, factory, rng=rng)
        except BaseException as exc:  # reported, never swallowed
            injector_error.append(exc)

    thread = threading.Thread(target=injector, name="injector", daemon=True)
    thread.start()
    time.sleep(max(0.0, start + seconds - time.monotonic()))
    thread.join()
    if injector_error:
        load.finish(1)
        raise injector_error[0]
    drained = load.finish(drain_seconds)
    elapsed = time.monotonic() - start
    recovery = probe(env, factory)
    return Outcome(elapsed, env.faults - faults_before, env.ledger.statuses(since=began),
                   drained, recovery, *checked(env))


def probe(env: Environment, factory: collect.Factory) -> float:
    """Seconds until a new submission is answered 201: the server serves without repair."""
    started = time.monotonic()
    with requests.Session() as session:
        collect.send(session, env.submission_url, factory.make(), env.ledger,
                     deadline=started + 120)
    return time.monotonic() - started


def checked(env: Environment) -> tuple[Check, dict[str, Any], Leftovers, list[str]]:
    """The ledger against the database and the bucket; the clean-up with no grace; what is
    left over after it; the races' outcomes."""
    check = verify(env.db_url, env.bucket, BUCKET, PREFIX, env.ledger, read_back=env.read_back)
    if check.suspects:
        try:
            found = diagnose(env.db_url, env.ledger, check.suspects)
        except Exception as exc:  # the diagnosis must not hide the problem it is about
            found = {"error": repr(exc)}
        (env.tmp / "problems.json").write_text(json.dumps(found, indent=2, default=str))
    report = clean_up(env)
    from server import queries

    left = leftovers(env.db_url, env.bucket, BUCKET, PREFIX, queries.blobs.blob_references())
    return check, report, left, list(env.race_problems)


def clean_up(env: Environment) -> dict[str, Any]:
    """``dodoso blobs gc`` with no grace period (nothing is in flight now)."""
    from server.db import create_db_engine, make_session_factory
    from server.services.gc import collect_garbage
    from server.storage import open_blob_store

    settings = env.settings()
    engine = create_db_engine(settings)
    try:
        with make_session_factory(engine)() as db:
            report = collect_garbage(db, open_blob_store(settings), grace=dt.timedelta(0))
            db.commit()
    finally:
        engine.dispose()
    return {k: v for k, v in report.to_json().items() if v and k not in ("dryRun",)}


# -- the long run -------------------------------------------------------------------------------

@dataclass
class LongRun:
    rounds: list[Outcome]
    seconds: float
    env: Environment

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rounds)

    def report(self) -> dict[str, Any]:
        ledger = self.env.ledger
        final = self.rounds[-1]
        statuses = sum((r.statuses for r in self.rounds), Counter())
        gc_total: Counter = Counter()
        for r in self.rounds:
            gc_total.update({k: v for k, v in r.gc.items() if isinstance(v, int)})
        return {
            "minutes": round(self.seconds / 60, 1),
            "rounds": len(self.rounds),
            "ok": self.ok,
            "faults": dict(sum((r.faults for r in self.rounds), Counter())),
            "submissions_sent": len(ledger.sent) + len(ledger.torn),
            "acknowledged": final.check.acknowledged,
            "found": final.check.found,
            "stored": final.check.stored,
            "attachments_read_back": final.check.attachments_verified,
            "torn_never_resent": len(ledger.torn),
            "abandoned_after_a_failure": len(ledger.abandoned),
            "races": len(ledger.variants),
            "posts": sum(n for k, n in statuses.items() if k.startswith("POST")),
            "answers": dict(statuses.most_common()),
            "gunicorn_starts": self.env.gunicorn.starts,
            "postgres_restarts": self.env.cluster.restarts,
            "postgres": self.env.cluster.kind,
            "clean_up": dict(gc_total),
            "leftovers_after_last_clean_up": vars(final.leftovers),
            "max_recovery_s": round(max(r.recovery_s for r in self.rounds), 1),
            "problems": [p for r in self.rounds for p in r.check.problems + r.race_problems],
            "fault_log": self.env.fault_log,
            "unexpected_answers": dict(sum((Counter(r.unexpected_statuses)
                                            for r in self.rounds), Counter())),
        }


def long_run(env: Environment, *, minutes: float, clients: int, kinds: list[str],
             round_seconds: float = 30.0, faults_per_round: int = 2, seed: int = 7,
             abandon: float = 0.1, factory: collect.Factory | None = None,
             progress: Callable[[int, Outcome], None] | None = None) -> LongRun:
    """Rounds of load, each with faults of the next kinds in turn, each checked (bytes read
    back once per attachment), until ``minutes`` have passed."""
    rng = random.Random(seed)
    factory = factory or collect.Factory(seed=seed)
    rounds: list[Outcome] = []
    started = time.monotonic()
    turn = 0
    while time.monotonic() - started < minutes * 60:
        plan = []
        for k in range(faults_per_round):
            at = (k + rng.uniform(0.2, 0.8)) * round_seconds / faults_per_round
            plan.append((at, kinds[turn % len(kinds)]))
            turn += 1
        outcome = run(env, seconds=round_seconds, clients=clients, faults=plan, factory=factory,
                      seed=rng.randrange(1 << 30), abandon=abandon)
        rounds.append(outcome)
        if progress:
            progress(len(rounds), outcome)
    return LongRun(rounds, time.monotonic() - started, env)
