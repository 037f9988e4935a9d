"""The fallback for a PostgreSQL restart where no cluster of our own can be run (no server
binaries, say, with PostgreSQL in a container): a TCP proxy between dodoso and a scratch
database on the given server, which the harness can cut. Cutting resets every connection and
refuses new ones for a while — what clients see of a crashed and restarted server — but the
server itself keeps running, so crash recovery is not exercised; the private cluster
(bench/faults/postgres.py) is preferred whenever it can run.
"""

from __future__ import annotations

import secrets
import socket
import struct
import threading
import time
from contextlib import suppress
from urllib.parse import urlsplit, urlunsplit

import psycopg

_LINGER_RESET = struct.pack("ii", 1, 0)


class TcpProxy:
    def __init__(self, target: tuple[str, int], port: int) -> None:
        self.target = target
        self.port = port
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True,
                                        name="pg-proxy")
        self._thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._connections.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        """Refuse new connections and reset the open ones."""
        if self._listener is not None:
            with suppress(OSError):  # wakes the thread blocked in accept()
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            # shutdown() first: close() alone neither wakes the threads blocked in recv() on
            # these sockets nor releases them, and the far ends would never hear of it.
            with suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with suppress(OSError):
                conn.close()


class ProxiedDatabase:
    """Same face as ``PrivateCluster`` for the harness: a scratch database on ``admin_url``'s
    server, reached through a proxy that ``crash_restart`` cuts."""

    kind = "TCP proxy to a scratch database (PostgreSQL itself is not restarted)"

    def __init__(self, admin_url: str, port: int) -> None:
        self.admin_url = admin_url
        parts = urlsplit(admin_url)
        self.proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432), port)
        self.port = port
        self.name = f"dodoso_faults_{secrets.token_hex(4)}"
        self.restarts = 0

    def url(self, database: str | None = None) -> str:
        parts = urlsplit(self.admin_url)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(
            netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host,
            path=f"/{database or self.name}"))

    def create(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')

    def database(self, name: str = "") -> str:
        """The scratch database (made by ``create``), through the proxy."""
        return self.url()

    def start(self) -> None:
        self.proxy.start()

    def crash_restart(self, down_seconds: float) -> None:
        self.proxy.stop()
        time.sleep(down_seconds)
        self.proxy.start()
        self.restarts += 1

    def destroy(self) -> None:
        self.proxy.stop()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
