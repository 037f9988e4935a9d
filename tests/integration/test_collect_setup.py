"""Setting up ODK Collect: QR codes for app users and drafts, token rotation, the CLI."""

from __future__ import annotations

import pytest

from sync.collect import decode_payload
from tests.unit.sync.test_collect import png_pixels
from tests.unit.sync.test_collect import read_qr as scan


def read_qr(png: bytes) -> dict:
    return decode_payload(scan(*png_pixels(png)).text)


@pytest.fixture
def project(make):
    return make.project("Diaspora Registry")


def test_app_user_qr__png_carries_collects_settings(client, make, project, settings):
    headers = make.auth(make.member(project, "manager"))
    created = client.post(f"/v1/projects/{project.id}/app-users",
                          json={"displayName": "Tablet 4"}, headers=headers).get_json()
    r = client.post(f"/v1/projects/{project.id}/app-users/{created['id']}/qr",
                    json={"token": created["token"], "managed": True}, headers=headers)
    assert r.status_code == 200
    assert r.mimetype == "image/png"
    decoded = read_qr(r.data)
    assert decoded["general"]["server_url"] == (
        f"{settings.public_url}/v1/key/{created['token']}/projects/{project.id}")
    assert decoded["general"]["autosend"] == "wifi_and_cellular"
    assert decoded["project"]["name"] == "Diaspora Registry"
    svg = client.post(f"/v1/projects/{project.id}/app-users/{created['id']}/qr",
                      json={"token": created["token"], "format": "svg"}, headers=headers)
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data


def test_app_user_qr__refuses_a_token_that_is_not_this_app_users(client, make, project):
    headers = make.auth(make.member(project, "manager"))
    first, _ = make.app_user(project, "A")
    _, other_token = make.app_user(project, "B")
    r = client.post(f"/v1/projects/{project.id}/app-users/{first.id}/qr",
                    json={"token": other_token}, headers=headers)
    assert r.status_code == 400


def test_rotate_token__old_key_stops_working(client, make, project, db):
    from server.errors import Problem
    from server.services.app_users import authenticate_key

    headers = make.auth(make.member(project, "manager"))
    app_user, old = make.app_user(project)
    r = client.post(f"/v1/projects/{project.id}/app-users/{app_user.id}/token", headers=headers)
    assert r.status_code == 200
    new = r.get_json()["token"]
    assert new != old
    assert authenticate_key(db, new).app_user.id == app_user.id
    with pytest.raises(Problem):
        authenticate_key(db, old)
    viewer = make.auth(make.member(project, "viewer"))
    assert client.post(f"/v1/projects/{project.id}/app-users/{app_user.id}/token",
                       headers=viewer).status_code == 403


def test_draft_qr__points_collect_at_the_draft(client, make, project, settings):
    from tests.integration.test_forms_api import HOUSEHOLD_V1
    from tests.support.xlsx import XLSX, md_to_xlsx

    headers = make.auth(make.member(project, "designer"))
    client.post(f"/v1/projects/{project.id}/forms", data=md_to_xlsx(HOUSEHOLD_V1),
                content_type=XLSX, headers=headers)
    token = client.get(f"/v1/projects/{project.id}/forms/household/draft",
                       headers=headers).get_json()["draftToken"]
    r = client.get(f"/v1/projects/{project.id}/forms/household/draft/qr.png", headers=headers)
    assert r.status_code == 200
    assert read_qr(r.data)["general"]["server_url"] == (
        f"{settings.public_url}/v1/test/{token}/projects/{project.id}/forms/household/draft")
