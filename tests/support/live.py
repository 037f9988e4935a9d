"""A live dodoso for end-to-end tests: ``db upgrade``, ``demo`` and ``serve`` in a fresh
working directory, as ``make run`` does, with the demo administrator logged in."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from server.cli import DEMO_PROJECT_NAME
from tests.e2e.test_demo_server import (
    HOST,
    call,
    demo_env,
    dodoso_script,
    free_port,
    printed,
    run_dodoso,
    stop,
    wait_until_healthy,
)


@dataclass
class LiveServer:
    base_url: str
    workdir: Path
    env: dict[str, str]
    email: str
    password: str
    token: str
    project_id: int
    log: Path


@contextmanager
def demo_server(workdir: Path, **extra_env: str) -> Iterator[LiveServer]:
    """Serve the demo on a free port; the demo project's id and an admin token come with it.
    ODK Validate is off unless asked for: the integration tests cover it."""
    port = free_port()
    env = {**demo_env(port), "DODOSO_ODK_VALIDATE": "off", **extra_env}
    run_dodoso(["db", "upgrade"], workdir, env)
    demo = run_dodoso(["demo"], workdir, env)
    log = workdir / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(dodoso_script()), "serve", "--host", HOST, "--port", str(port)],
            cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT)
    try:
        base_url = f"http://{HOST}:{port}"
        wait_until_healthy(process, base_url, log)
        email, password = printed("Site administrator", demo), printed("Password", demo)
        login = call("POST", f"{base_url}/v1/sessions",
                     body={"email": email, "password": password})
        assert login.status == 200, login.body
        token = login.body["token"]
        projects = call("GET", f"{base_url}/v1/projects", token=token).body
        project_id = next(p["id"] for p in projects if p["name"] == DEMO_PROJECT_NAME)
        yield LiveServer(base_url, workdir, env, email, password, token, project_id, log)
    finally:
        stop(process)
