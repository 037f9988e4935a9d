"""A PostgreSQL cluster of the harness's own, so it can be crashed and restarted: the
machine's shared server is never touched.

``initdb`` and ``pg_ctl`` from the newest installed PostgreSQL, on a free port, bound to
127.0.0.1, in a directory of its own. PostgreSQL refuses to run as root, so as root they run
as the ``postgres`` OS user (``runuser``). Durability settings are the defaults
(``fsync``, ``synchronous_commit`` on): what a commit promises is what is tested.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

SERVER_USER = "postgres"


def bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)
    if found:
        return found[-1].parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        return Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                   check=True).stdout.strip())
    raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) found")


def private_cluster_possible() -> bool:
    """Server binaries, and when root, the ``postgres`` OS user and ``runuser``."""
    try:
        bin_dir()
    except RuntimeError:
        return False
    if os.geteuid() != 0:
        return True
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        return False
    return shutil.which("runuser") is not None


class PrivateCluster:
    kind = "private cluster (initdb + pg_ctl; restarted with pg_ctl stop -m immediate)"

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.bin = bin_dir()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", SERVER_USER, "--"]
        self.restarts = 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        done = subprocess.run([*self._as_user, str(self.bin / tool), *args], cwd=self.root,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({done.returncode}):\n"
                               f"{done.stdout}{done.stderr}{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_user:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
            for parent in self.root.parents:  # the server user must reach its directory
                if parent == Path("/tmp") or parent == Path("/"):
                    break
                parent.chmod(parent.stat().st_mode | 0o711)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync", "--no-instructions")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\n# bench.faults\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.root}'\nmax_connections = 200\n"
                       "fsync = on\nsynchronous_commit = on\nfull_page_writes = on\n")

    def database(self, name: str = "dodoso") -> str:
        """Create database ``name``; its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def crash_restart(self, down_seconds: float) -> None:
        """``pg_ctl stop -m immediate`` (no checkpoint: recovery replays the WAL at start, as
        after a power cut of the database server), down for a while, then start."""
        self.stop("immediate")
        time.sleep(down_seconds)
        self.start()
        self.restarts += 1

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        if self.running():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
