"""The soak: a steady rate of submissions (open loop: they arrive on schedule whether or not
the server keeps up) of the household survey with a photo and its audit log, for minutes, no
faults. Reported: the error rate, latency percentiles, and the server's memory over time
(gunicorn master and workers, summed ``VmRSS``, sampled every few seconds) with its trend, so
that growth shows; afterwards the same checks as after a fault.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bench.faults import clients as collect
from bench.faults.harness import Environment, checked
from bench.ingest import latency, loadavg

SAMPLE_SECONDS = 5.0


@dataclass
class Samples:
    at: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    db_connections: list[int] = field(default_factory=list)


def _sample(env: Environment, samples: Samples, started: float, stop: threading.Event) -> None:
    while not stop.wait(SAMPLE_SECONDS):
        try:
            with psycopg.connect(env.db_url) as conn:
                connections = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()").fetchone()[0]
        except psycopg.Error:
            connections = -1
        samples.at.append(time.monotonic() - started)
        samples.rss_mib.append(env.gunicorn.rss_kib() / 1024)
        samples.db_connections.append(connections)


def slope_per_minute(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` against ``xs`` (seconds), per minute."""
    if len(xs) < 2:
        return float("nan")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def soak(env: Environment, *, minutes: float, rate: float, clients: int,
         factory: collect.Factory) -> dict[str, Any]:
    ledger = env.ledger
    began = time.time()
    started = time.monotonic()
    samples = Samples()
    stop = threading.Event()
    sampler = threading.Thread(target=_sample, args=(env, samples, started, stop), daemon=True)
    sampler.start()
    load = collect.Clients(env.submission_url, factory, ledger, count=clients, rate=rate)
    load.start()
    time.sleep(minutes * 60)
    drained = load.finish(120)
    seconds = time.monotonic() - started
    stop.set()
    sampler.join()
    check, gc, left, _ = checked(env)

    answers = [a for a in ledger.answers if a.at >= began]
    posts = [a for a in answers if a.method == "POST"]
    failed = [a for a in answers if a.status is None or a.status >= 400
              or (a.method == "HEAD" and a.status != 204)]
    completed = [ms for i, ms in ledger.completed_ms.items()]
    half = len(samples.at) // 2
    return {
        "minutes": round(seconds / 60, 1),
        "rate_per_s": rate,
        "clients": clients,
        "submissions": len(ledger.sent),
        "acknowledged": check.acknowledged,
        "found": check.found,
        "per_second": round(check.acknowledged / seconds, 2),
        "requests": len(answers),
        "failed_requests": len(failed),
        "error_rate": len(failed) / len(answers) if answers else float("nan"),
        "answers": dict(ledger.statuses(since=began).most_common()),
        "submission_ms": latency(completed),
        "post_ms": latency([a.ms for a in posts if a.status in collect.SUCCESS]),
        "mean_submission_bytes": round(statistics.fmean(
            s.size for s in ledger.sent.values())) if ledger.sent else 0,
        "rss_mib": {"first": samples.rss_mib[0] if samples.rss_mib else None,
                    "last": samples.rss_mib[-1] if samples.rss_mib else None,
                    "max": max(samples.rss_mib, default=None),
                    "slope_second_half_mib_per_min": slope_per_minute(
                        samples.at[half:], samples.rss_mib[half:])},
        "rss_timeline": [(round(t), round(r, 1), c) for t, r, c in zip(
            samples.at, samples.rss_mib, samples.db_connections, strict=True)],
        "db_connections_max": max(samples.db_connections, default=None),
        "drained": drained,
        "problems": check.problems,
        "clean_up": gc,
        "leftovers": vars(left),
        "loadavg_after": loadavg(),
        "ok": drained and check.ok and left.none and not failed,
    }
