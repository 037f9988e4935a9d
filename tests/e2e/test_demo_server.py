"""The README's promise, for real: ``make run`` serves, and with the credentials it prints,
curl can log in, create a project and an app user.

The steps of ``make run`` run as subprocesses of the installed ``dodoso`` console script, in a
fresh working directory, on the embedded default (SQLite and blobs under ./instance): no
DODOSO_* variable of the caller, DODOSO_TEST_DATABASE_URL included, reaches them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.cli import DEMO_PROJECT_NAME

STARTUP_TIMEOUT_SECONDS = 20
COMMAND_TIMEOUT_SECONDS = 60
REQUEST_TIMEOUT_SECONDS = 10
HOST = "127.0.0.1"
CURL = shutil.which("curl")
COLLECT_URL = re.compile(r"^\s*(?P<url>http://\S+/v1/key/(?P<token>[A-Za-z0-9_-]+)/projects/\d+)$",
                         re.MULTILINE)


def dodoso_script() -> Path:
    """The console script installed next to this interpreter (so a different ``dodoso`` on PATH
    cannot stand in for the one under test), else the one on PATH."""
    sibling = Path(sys.executable).parent / "dodoso"
    if sibling.exists():
        return sibling
    found = shutil.which("dodoso")
    if found is None:
        pytest.fail("the dodoso console script is not installed (pip install -e .)")
    return Path(found)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def demo_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DODOSO_")}
    env.update(
        DODOSO_ENV="development",
        DODOSO_ARGON2_TIME_COST="1",
        DODOSO_ARGON2_MEMORY_KIB="64",
        DODOSO_PUBLIC_URL=f"http://{HOST}:{port}",
        DODOSO_LOG_LEVEL="DEBUG",  # log as much as there is, to catch a leaked token
        NO_PROXY=HOST,
        no_proxy=HOST,
    )
    return env


# -- HTTP: curl when installed (as the README says), urllib otherwise ----------------------

@dataclass
class Reply:
    status: int
    body: Any


def call(method: str, url: str, *, body: Any = None, token: str | None = None) -> Reply:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    status, raw = (_curl if CURL else _urllib)(method, url, headers, data)
    return Reply(status, json.loads(raw) if raw.strip() else None)


def _curl(method: str, url: str, headers: dict[str, str], data: bytes | None) -> tuple[int, str]:
    args = [CURL, "-sS", "--noproxy", "*", "--max-time", str(REQUEST_TIMEOUT_SECONDS),
            "-X", method, "-w", "\n%{http_code}", url]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    if data is not None:
        args += ["--data-binary", "@-"]
    done = subprocess.run(args, input=data or b"", capture_output=True,
                          timeout=REQUEST_TIMEOUT_SECONDS + 5, check=False)
    assert done.returncode == 0, done.stderr.decode()
    raw, _, status = done.stdout.decode().rpartition("\n")
    return int(status), raw


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _urllib(method: str, url: str, headers: dict[str, str],
            data: bytes | None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with _OPENER.open(request, timeout=REQUEST_TIMEOUT_SECONDS) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# -- the server -----------------------------------------------------------------------------

@dataclass
class DemoServer:
    base_url: str
    workdir: Path
    env: dict[str, str]
    demo_output: str
    email: str
    password: str
    stdout: Path
    stderr: Path

    def logs(self) -> str:
        return self.stderr.read_text() + self.stdout.read_text()


def run_dodoso(args: list[str], workdir: Path, env: dict[str, str]) -> str:
    done = subprocess.run([str(dodoso_script()), *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS,
                          check=False)
    assert done.returncode == 0, f"dodoso {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def printed(label: str, text: str) -> str:
    match = re.search(rf"^{label}:\s+(\S+)$", text, re.MULTILINE)
    assert match, f"no {label!r} in the demo's output:\n{text}"
    return match.group(1)


def wait_until_healthy(process: subprocess.Popen, base_url: str, stderr: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dodoso serve exited with {process.returncode}:\n{stderr.read_text()}")
        try:
            with _OPENER.open(f"{base_url}/v1/health", timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    pytest.fail(f"dodoso serve did not answer /v1/health within {STARTUP_TIMEOUT_SECONDS} s:\n"
                f"{stderr.read_text()}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """``make run``: db upgrade, demo, serve on 127.0.0.1, from a fresh working directory."""
    workdir = tmp_path_factory.mktemp("make-run")
    port = free_port()
    env = demo_env(port)
    run_dodoso(["db", "upgrade"], workdir, env)
    demo = run_dodoso(["demo"], workdir, env)
    stdout, stderr = workdir / "serve.out", workdir / "serve.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [str(dodoso_script()), "serve", "--host", HOST, "--port", str(port)],
            cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    try:
        base_url = f"http://{HOST}:{port}"
        wait_until_healthy(process, base_url, stderr)
        yield DemoServer(base_url=base_url, workdir=workdir, env=env, demo_output=demo,
                         email=printed("Site administrator", demo),
                         password=printed("Password", demo), stdout=stdout, stderr=stderr)
    finally:
        stop(process)


# -- tests ----------------------------------------------------------------------------------

def test_make_run__printed_credentials_log_in_create_a_project_and_an_app_user(demo_server):
    base = demo_server.base_url
    assert (demo_server.workdir / "instance" / "dodoso.db").is_file()  # the embedded default

    wrong = call("POST", f"{base}/v1/sessions",
                 body={"email": demo_server.email, "password": demo_server.password + "x"})
    assert wrong.status == 401
    login = call("POST", f"{base}/v1/sessions",
                 body={"email": demo_server.email, "password": demo_server.password})
    assert login.status == 200, login.body
    session_token = login.body["token"]

    created = call("POST", f"{base}/v1/projects", token=session_token,
                   body={"name": "Household Survey 2026"})
    assert created.status == 200, created.body
    project_id = created.body["id"]

    new = call("POST", f"{base}/v1/projects/{project_id}/app-users", token=session_token,
               body={"displayName": "Tablet 1"})
    assert new.status == 200, new.body
    app_user_token = new.body["token"]
    assert len(app_user_token) >= 43
    assert new.body["displayName"] == "Tablet 1"

    listed = call("GET", f"{base}/v1/projects", token=session_token)
    assert listed.status == 200, listed.body
    names = {p["name"] for p in listed.body}
    assert {DEMO_PROJECT_NAME, "Household Survey 2026"} <= names
    app_users = call("GET", f"{base}/v1/projects/{project_id}/app-users", token=session_token)
    assert [(a["id"], a["token"]) for a in app_users.body] == [(new.body["id"], None)]
    assert call("GET", f"{base}/v1/projects").status == 401

    # Put both app-user keys into request paths, as Collect does, so the log has a chance to
    # leak them.
    demo_key = COLLECT_URL.search(demo_server.demo_output)
    assert demo_key and demo_key["url"].startswith(f"{base}/v1/key/"), demo_server.demo_output
    for url in (f"{demo_key['url']}/formList",
                f"{base}/v1/key/{app_user_token}/projects/{project_id}/formList"):
        status, body = (_curl if CURL else _urllib)("GET", url, {"X-OpenRosa-Version": "1.0"},
                                                   None)
        assert status == 200 and "<xforms" in body, (status, body)

    logs = demo_server.logs()
    assert "/v1/sessions" in logs and "/v1/projects" in logs  # requests are logged at all
    assert "/v1/key/[redacted]" in logs
    for secret in (session_token, app_user_token, demo_key["token"], demo_server.password):
        assert secret not in logs


@pytest.mark.skipif(CURL is None or shutil.which("bash") is None, reason="needs curl and bash")
def test_make_run__the_printed_curl_commands_work(demo_server):
    """The demo prints shell commands; pasted into a shell, they log in, list projects,
    create one and create an app user."""
    text = demo_server.demo_output
    snippet = text.split("Log in and use the API:\n", 1)[1].split("\n\n", 1)[0]
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", snippet], env=demo_server.env,
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS,
                          check=False)
    assert done.returncode == 0, done.stderr
    replies, decoder, rest = [], json.JSONDecoder(), done.stdout.strip()
    while rest:
        value, end = decoder.raw_decode(rest)
        replies.append(value)
        rest = rest[end:].lstrip()
    projects, project, app_user = replies
    assert DEMO_PROJECT_NAME in {p["name"] for p in projects}
    assert project["name"] == "My survey"
    assert app_user["displayName"] == "Tablet 1"
    assert len(app_user["token"]) >= 43
    assert app_user["token"] not in demo_server.logs()
