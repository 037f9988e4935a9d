"""The S3 endpoint of the fault harness: moto in a process of its own, which can be stopped
and started again on the same port without losing its buckets (like an S3-compatible
service restarted on its disk).

    python -m bench.faults.s3 --port N     # then, on stdin: stop | start | freeze | thaw | quit

"Stopped" is what a client of a dead endpoint sees: the port refuses connections and the
connections that were open are reset (moto's own ``ThreadedMotoServer.stop`` leaves the socket
listening and open keep-alive connections served). "Frozen" is a black hole: connections are
accepted, but no request is answered until it thaws (a hung server, a broken network path).
moto keeps its state in module globals, so a restart in the same process finds every object
again.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import threading
from pathlib import Path

REGION = "us-east-1"
KEY = "harness"
ROOT = Path(__file__).resolve().parents[2]


class Endpoint:
    """The controlling side: the endpoint process, driven through its stdin."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.faults.s3", "--port", str(port)], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
            start_new_session=True)
        self._expect("ready")
        self.running = True

    def _command(self, command: str, answer: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        self._expect(answer)

    def _expect(self, answer: str) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != answer:
            raise RuntimeError(f"S3 endpoint said {line!r}, expected {answer!r}")

    def stop(self) -> None:
        self._command("stop", "stopped")
        self.running = False

    def start(self) -> None:
        self._command("start", "started")
        self.running = True

    def freeze(self) -> None:
        self._command("freeze", "frozen")

    def thaw(self) -> None:
        self._command("thaw", "thawed")

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, RuntimeError):
                self._command("quit", "bye")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def client(url: str):
    """A plain boto3 client (not dodoso's store) to create the bucket and read it back."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=url, region_name=REGION, aws_access_key_id=KEY,
        aws_secret_access_key=KEY,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5,
                                                                  "mode": "standard"}))


# -- the endpoint process -----------------------------------------------------------------------

def serve(port: int) -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    connections: set[socket.socket] = set()
    lock = threading.Lock()
    thawed = threading.Event()
    thawed.set()

    class TrackedHandler(MotoRequestHandler):
        def handle_one_request(self) -> None:
            thawed.wait()
            super().handle_one_request()

        def setup(self) -> None:
            super().setup()
            with lock:
                connections.add(self.connection)

        def finish(self) -> None:
            with lock:
                connections.discard(self.connection)
            super().finish()

    class Server(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(self._ip_address, self._port, app, True,
                                       request_handler=TrackedHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

        def stop(self) -> None:
            super().stop()
            assert self._server is not None
            self._server.server_close()
            with lock:
                for conn in list(connections):
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_RDWR)

    server = Server(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    running = True
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "stop" and running:
            server.stop()
            running = False
            print("stopped", flush=True)
        elif command == "start" and not running:
            server.start()
            running = True
            print("started", flush=True)
        elif command == "freeze":
            thawed.clear()
            print("frozen", flush=True)
        elif command == "thaw":
            thawed.set()
            print("thawed", flush=True)
        elif command == "quit":
            if running:
                server.stop()
            print("bye", flush=True)
            return
        else:
            print(f"cannot {command!r} now", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.faults.s3")
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)
