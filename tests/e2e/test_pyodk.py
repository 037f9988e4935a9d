"""pyodk, the official ODK Python client, against a live ``dodoso serve`` (set up with ``db
upgrade`` and ``demo`` in a fresh working directory, as tests/e2e/test_demo_server.py does):
it logs in with the demo's administrator, creates submissions (one with a photo, sent
chunked), lists them and reads them back, as it would against ODK Central."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pyodk.client import Client

from tests.e2e.test_demo_server import (
    REQUEST_TIMEOUT_SECONDS,
)
from tests.support.live import LiveServer, demo_server
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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with demo_server(tmp_path_factory.mktemp("pyodk")) as live:
        published = requests.post(
            f"{live.base_url}/v1/projects/{live.project_id}/forms"
            "?publish=true&ignoreWarnings=true",
            data=md_to_xlsx(SURVEY), timeout=REQUEST_TIMEOUT_SECONDS,
            headers={"Authorization": f"Bearer {live.token}", "Content-Type": XLSX},
            proxies={"http": "", "https": ""})
        assert published.status_code == 200, published.text
        yield live


@pytest.fixture
def client(server: LiveServer, tmp_path: Path):
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
