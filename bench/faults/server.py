"""dodoso under gunicorn exactly as the Procfile's ``web`` process runs it (bound to loopback),
with a supervisor that starts it again when it dies, as systemd or a PaaS would.

``kill -9`` of a worker: gunicorn's master starts a new one. ``kill -9`` of the master: the
supervisor sees it gone, kills what is left of its process group (systemd's default
``KillMode=control-group`` does the same) and starts gunicorn again. SIGTERM of the master
(a deploy): it stops gracefully, and the supervisor starts it again.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path

import requests

from bench.ingest import OPENROSA, _children, _rss_kib

ROOT = Path(__file__).resolve().parents[2]
_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def procfile_command(env: dict[str, str], port: int, process: str = "web") -> list[str]:
    """The Procfile's command for ``process``, its ``${VAR:-default}``s filled from ``env``,
    ``gunicorn`` run by this interpreter and bound to 127.0.0.1 instead of every address."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            break
    else:
        raise RuntimeError(f"no {process!r} process in the Procfile")
    values = {**env, "PORT": str(port)}
    expanded = _VAR.sub(lambda m: values.get(m.group(1)) or (m.group(2) or ""), command)
    words = shlex.split(expanded)
    if words[0] == "gunicorn":
        words[:1] = [sys.executable, "-m", "gunicorn"]
    return [w.replace("0.0.0.0:", "127.0.0.1:") for w in words]


class Gunicorn:
    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        self.env = env
        self.port = port
        self.log_path = log_path
        self.command = procfile_command(env, port)
        self.workers = int(self.command[self.command.index("--workers") + 1])
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.worker_kills = 0
        self.master_kills = 0
        self.master_terms = 0
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self._lock, self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            self.starts += 1

    def supervise(self) -> None:
        """Restart gunicorn whenever its master dies, until ``stop``."""
        def watch() -> None:
            while not self._stopping.wait(0.1):
                with self._lock:
                    proc = self.proc
                    if proc is not None and proc.poll() is not None:
                        with suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGKILL)
                        self.start()
        self._supervisor = threading.Thread(target=watch, name="supervisor", daemon=True)
        self._supervisor.start()

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        return _children(self.proc.pid)

    def pids(self) -> list[int]:
        assert self.proc is not None
        return [self.proc.pid, *self.worker_pids()]

    def rss_kib(self) -> int:
        total = 0
        for pid in self.pids():
            with suppress(OSError):
                total += _rss_kib(pid)
        return total

    def kill_worker(self) -> int | None:
        with self._lock:
            workers = self.worker_pids()
            if not workers:
                return None
            victim = random.choice(workers)
            with suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
                self.worker_kills += 1
            return victim

    def kill_master(self) -> int:
        with self._lock:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.master_kills += 1
            return self.proc.pid

    def terminate_master(self) -> int:
        """SIGTERM, as a deploy does: in-flight requests finish (``--graceful-timeout``), the
        master exits, and the supervisor starts it again."""
        with self._lock:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            self.master_terms += 1
            return self.proc.pid

    def wait_ready(self, submission_url: str, timeout: float = 90.0) -> float:
        """Until HEAD …/submission answers 204 with every worker up; returns the seconds."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if (requests.head(submission_url, headers=OPENROSA, timeout=2).status_code == 204
                        and len(self.worker_pids()) >= self.workers):
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"dodoso not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL to whatever is left of the process group."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=10)
        with self._lock:
            proc = self.proc
            if proc is None:
                return
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=40)
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
