"""pyodk, the official ODK Python client, against a live ``dodoso serve`` (set up with ``db
upgrade`` and ``demo`` in a fresh working directory, as tests/e2e/test_demo_server.py does):
it logs in with the demo's administrator, creates submissions (one with a photo, sent
chunked), lists them and reads them back, as it would against ODK Central."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from pyodk.client import Client

from server.cli import DEMO_PROJECT_NAME
from tests.e2e.test_demo_server import (
    HOST,
    REQUEST_TIMEOUT_SECONDS,
    call,
    demo_env,
    dodoso_script,
    free_port,
    printed,
    run_dodoso,
    stop,
    wait_until_healthy,
)
from tests.support.xlsx import XLSX, md_to_xlsx

FORM_ID = "pyodk_check"
SURVEY = f"""
| survey   |              |         |              |
|          | type         | name    | label        |
|          | text         | name    | Name         |
|          | image        | photo   | Photo        |
| settings |              |         |              |
|          | form_title   | form_id | version      |
|          | pyodk check  | {FORM_ID} | 1          |
"""
PHOTO = b"\xff\xd8\xff\xe0" + b"not really a jpeg " * 2000  # > pyodk's 16 KB chunks


@dataclass
class Server:
    base_url: str
    email: str
    password: str
    project_id: int
    log: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("pyodk")
    port = free_port()
    env = {**demo_env(port), "DODOSO_ODK_VALIDATE": "off"}
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
        published = requests.post(
            f"{base_url}/v1/projects/{project_id}/forms?publish=true&ignoreWarnings=true",
            data=md_to_xlsx(SURVEY), timeout=REQUEST_TIMEOUT_SECONDS,
            headers={"Authorization": f"Bearer {token}", "Content-Type": XLSX},
            proxies={"http": "", "https": ""})
        assert published.status_code == 200, published.text
        yield Server(base_url, email, password, project_id, log)
    finally:
        stop(process)


@pytest.fixture
def client(server: Server, tmp_path: Path):
    """A pyodk Client configured the documented way: a TOML file and a token cache."""
    config = tmp_path / "pyodk_config.toml"
    config.write_text(
        "[central]\n"
        f'base_url = "{server.base_url}"\n'
        f'username = "{server.email}"\n'
        f'password = "{server.password}"\n'
        f"default_project_id = {server.project_id}\n")
    made = Client(config_path=config, cache_path=tmp_path / "pyodk_cache.toml")
    made.session.trust_env = False  # no proxy between the test and 127.0.0.1
    with made:
        yield made


def submission_xml(instance_id: str, name: str, photo: str = "") -> str:
    return (f'<data id="{FORM_ID}" version="1"><name>{name}</name><photo>{photo}</photo>'
            f"<meta><instanceID>{instance_id}</instanceID></meta></data>")


def test_pyodk__creates_lists_and_gets_submissions(client, server, tmp_path):
    first, second = f"uuid:{uuid.uuid4()}", f"uuid:{uuid.uuid4()}"
    photo = tmp_path / "id.jpg"
    photo.write_bytes(PHOTO)

    created = client.submissions.create(xml=submission_xml(first, "Amina", photo.name),
                                        form_id=FORM_ID, attachments=[photo])
    assert created.instanceId == first
    assert [(a.name, a.exists) for a in created.attachments] == [("id.jpg", True)]
    plain = client.submissions.create(xml=submission_xml(second, "Juma"), form_id=FORM_ID,
                                      device_id="pyodk:test")
    assert plain.instanceId == second and plain.deviceId == "pyodk:test"

    listed = client.submissions.list(form_id=FORM_ID)
    assert [s.instanceId for s in listed] == [second, first]
    got = client.submissions.get(first, form_id=FORM_ID)
    assert got.instanceId == first
    assert got.submitterId == created.submitterId
    assert got.reviewState is None

    # The photo arrived whole, through pyodk's chunked upload.
    photo_url = f"projects/{server.project_id}/forms/{FORM_ID}/submissions/{first}/attachments"
    assert client.get(f"{photo_url}/id.jpg").content == PHOTO


def test_pyodk__a_cached_token_is_verified_and_reused(client, server, tmp_path):
    """A second Client with the same cache checks the token (``GET /v1/users/current``)
    instead of logging in again."""
    token = client.session.headers["Authorization"]
    again = Client(config_path=tmp_path / "pyodk_config.toml",
                                cache_path=tmp_path / "pyodk_cache.toml")
    again.session.trust_env = False
    with again:
        assert again.session.headers["Authorization"] == token
        instance_id = f"uuid:{uuid.uuid4()}"
        again.submissions.create(xml=submission_xml(instance_id, "Zawadi"), form_id=FORM_ID)
        assert instance_id in {s.instanceId for s in again.submissions.list(form_id=FORM_ID)}


def test_pyodk__an_edit_by_put_makes_a_new_version(client):
    first, edited = f"uuid:{uuid.uuid4()}", f"uuid:{uuid.uuid4()}"
    client.submissions.create(xml=submission_xml(first, "Neema"), form_id=FORM_ID)
    edit = submission_xml(edited, "Neema K.").replace(
        "<meta>", f"<meta><deprecatedID>{first}</deprecatedID>")
    client.submissions.edit(first, xml=edit, form_id=FORM_ID)
    got = client.submissions.get(first, form_id=FORM_ID)
    assert got.reviewState == "edited"
    versions = client.get(
        f"projects/{client.project_id}/forms/{FORM_ID}/submissions/{first}/versions").json()
    assert [v["instanceId"] for v in versions] == [edited, first]
