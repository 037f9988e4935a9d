"""The fault harness's long runs (the short one is ``pytest tests/faults`` on PostgreSQL).

    python -m bench.faults run  --minutes 10 [--clients 8] [--faults kill_worker,…] [--json f]
    python -m bench.faults soak --minutes 10 [--rate 4] [--clients 16] [--json f]

``run``: rounds of Collect-like load with faults of every kind in turn, each round checked
(bench/faults/harness.py); ``soak``: a steady rate, no faults, memory sampled
(bench/faults/soak.py). Both print a summary (and with ``--json`` write every number) and
exit non-zero if an invariant failed.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench.faults import clients as collect
from bench.faults import harness
from bench.ingest import machine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults",
                                     description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="faults under load, checked after each round")
    run.add_argument("--minutes", type=float, default=10.0)
    run.add_argument("--clients", type=int, default=8)
    run.add_argument("--round-seconds", type=float, default=30.0)
    run.add_argument("--faults-per-round", type=int, default=2)
    run.add_argument("--abandon", type=float, default=0.1,
                     help="share of failed uploads never sent again")
    run.add_argument("--faults", default=",".join(harness.FAULT_KINDS),
                     help="comma-separated kinds, injected in turn (also: "
                          f"{', '.join(harness.SLOW_FAULT_KINDS)})")
    soak = commands.add_parser("soak", help="a steady rate, no faults, memory over time")
    soak.add_argument("--minutes", type=float, default=10.0)
    soak.add_argument("--rate", type=float, default=4.0, help="submissions per second")
    soak.add_argument("--clients", type=int, default=16)
    for sub in (run, soak):
        sub.add_argument("--photo-kib", type=int, nargs=2, default=(100, 600),
                         metavar=("MIN", "MAX"))
        sub.add_argument("--workers", type=int, help="WEB_CONCURRENCY (Procfile default)")
        sub.add_argument("--threads", type=int, help="WEB_THREADS (Procfile default)")
        sub.add_argument("--postgres", choices=("auto", "private", "proxy"), default="auto")
        sub.add_argument("--admin-url", default=harness.ADMIN_URL,
                         help="for --postgres proxy: a server to make a scratch database on")
        sub.add_argument("--seed", type=int, default=7)
        sub.add_argument("--json", type=Path)
        sub.add_argument("--keep", action="store_true", help="keep the temp dir and its logs")
    args = parser.parse_args(argv)
    # SIGTERM (a CI timeout, say) unwinds like Ctrl-C: every process started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    kib = args.photo_kib
    factory = collect.Factory(seed=args.seed, photo_bytes=(kib[0] * 1024, kib[1] * 1024))
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                              "machine": machine(harness.ADMIN_URL)}
    with harness.environment(workers=args.workers, threads=args.threads,
                             postgres=args.postgres, admin_url=args.admin_url,
                             keep=args.keep) as env:
        from server.logs import configure_logging

        configure_logging(env.settings())  # its warnings to stderr; the report alone on stdout
        print(f"dodoso on {env.gunicorn.base_url} ({' '.join(env.gunicorn.command[3:-1])}); "
              f"PostgreSQL: {env.cluster.kind}; logs in {env.tmp}", file=sys.stderr)
        if args.command == "run":
            kinds = [k.strip() for k in args.faults.split(",") if k.strip()]
            unknown = set(kinds) - set(harness.FAULT_KINDS) - set(harness.SLOW_FAULT_KINDS)
            if unknown:
                parser.error(f"unknown faults: {', '.join(sorted(unknown))}")

            def progress(n: int, outcome: harness.Outcome) -> None:
                print(f"round {n}: {'ok' if outcome.ok else 'FAILED'} · "
                      f"{outcome.summary()}", file=sys.stderr, flush=True)

            result = harness.long_run(env, minutes=args.minutes, clients=args.clients,
                                      kinds=kinds, round_seconds=args.round_seconds,
                                      faults_per_round=args.faults_per_round, seed=args.seed,
                                      abandon=args.abandon, factory=factory,
                                      progress=progress)
            report.update(result.report())
            print(long_run_markdown(report))
        else:
            from bench.faults.soak import soak as run_soak

            report.update(run_soak(env, minutes=args.minutes, rate=args.rate,
                                   clients=args.clients, factory=factory))
            print(soak_markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0 if report["ok"] else 1


def long_run_markdown(r: dict[str, Any]) -> str:
    faults = ", ".join(f"{k} × {v}" for k, v in r["faults"].items())
    lines = [
        f"| Long run, {r['date']} | |", "| --- | ---: |",
        f"| Duration | {r['minutes']} min in {r['rounds']} rounds |",
        f"| Faults injected | {sum(r['faults'].values())}: {faults} |",
        f"| Submissions sent (distinct instanceIDs) | {r['submissions_sent']:,} |",
        f"| … acknowledged (every POST answered 201) | {r['acknowledged']:,} |",
        f"| … found, byte-identical, every file read back | {r['found']:,} |",
        f"| … torn off halfway and never resent (must not be stored) | "
        f"{r['torn_never_resent']} |",
        f"| … abandoned after a failed upload (stored whole or not at all) | "
        f"{r['abandoned_after_a_failure']} |",
        f"| Submissions stored | {r['stored']:,} |",
        f"| Attachments read back and hash-checked | {r['attachments_read_back']:,} |",
        f"| POST requests | {r['posts']:,} |",
        f"| Same-instanceID races (identical ×6, conflicting ×2) | {r['races']} |",
        f"| gunicorn (re)starts · PostgreSQL restarts | {r['gunicorn_starts']} · "
        f"{r['postgres_restarts']} |",
        f"| Removed by the clean-up (grace 0, after each round) | {r['clean_up'] or 'nothing'} |",
        f"| Left over after the last clean-up | {r['leftovers_after_last_clean_up']} |",
        f"| Longest wait for a new 201 after a round | {r['max_recovery_s']} s |",
        f"| Answers | {r['answers']} |",
        f"| Problems | {r['problems'] or 'none'} |",
        f"| Unexpected answers (500, 4xx outside races) | {r['unexpected_answers'] or 'none'} |",
    ]
    return "\n".join(lines)


def soak_markdown(r: dict[str, Any]) -> str:
    rss = r["rss_mib"]
    lines = [
        f"| Soak, {r['date']} | |", "| --- | ---: |",
        f"| Duration · target rate · clients | {r['minutes']} min · {r['rate_per_s']}/s · "
        f"{r['clients']} |",
        f"| Submissions sent · acknowledged · found | {r['submissions']:,} · "
        f"{r['acknowledged']:,} · {r['found']:,} |",
        f"| Mean submission size (XML + photo + audit log) | "
        f"{r['mean_submission_bytes'] / 1024:,.0f} KiB |",
        f"| Achieved rate | {r['per_second']}/s |",
        f"| Requests · failed · error rate | {r['requests']:,} · {r['failed_requests']} · "
        f"{r['error_rate']:.4%} |",
        f"| Submission (HEAD + POSTs) p50 / p95 / p99 / max | "
        f"{_ms(r['submission_ms'])} |",
        f"| POST p50 / p95 / p99 / max | {_ms(r['post_ms'])} |",
        f"| Server RSS first · max · last sample | {rss['first']:.0f} · {rss['max']:.0f} · "
        f"{rss['last']:.0f} MiB |",
        f"| RSS trend over the second half | {rss['slope_second_half_mib_per_min']:+.2f} "
        f"MiB/min |",
        f"| Database connections (max) | {r['db_connections_max']} |",
        f"| Problems · left over after the clean-up | {r['problems'] or 'none'} · "
        f"{r['leftovers']} |",
    ]
    timeline = r["rss_timeline"]
    step = max(1, len(timeline) // 12)
    lines += ["", "RSS over time (s → MiB, database connections): " + ", ".join(
        f"{t}→{m} ({c})" for t, m, c in timeline[::step])]
    return "\n".join(lines)


def _ms(q: dict[str, float]) -> str:
    return " / ".join(f"{q[k]:,.0f}" for k in ("p50", "p95", "p99", "max")) + " ms"


if __name__ == "__main__":
    sys.exit(main())
