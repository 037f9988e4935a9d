"""Who may export, and what a bad option gets: a 400.41 naming it, never a 500 and never a
silently wider export."""

# ruff: noqa: F811  (the shared fixtures come from test_exports and are parameters here)

from __future__ import annotations

import pytest

from tests.conftest import bearer
from tests.integration.test_exports import (  # noqa: F401  (fixtures)
    FORM_ID,
    collect,
    submitted,
    url,
    v1,
)
from tests.support.api import upload_form

ROUTES = ["submissions.csv.zip", "submissions.csv", "submissions.xlsx", "submissions.geojson",
          "attachments.zip", "exports"]


@pytest.mark.parametrize("role", ["viewer", "data-manager", "designer"])
def test_access__every_role_that_reads_the_project_may_export(client, make, project, role,
                                                              submitted):
    headers = make.auth(make.member(project, role))
    for route in ROUTES:
        r = client.get(url(project, route), headers=headers)
        assert r.status_code == 200, (route, r.status_code)


def test_access__another_projects_viewer_gets_404(client, make, project, submitted):
    elsewhere = make.project("Elsewhere")
    outsider = make.auth(make.member(elsewhere, "manager"))
    for route in ROUTES:
        r = client.get(url(project, route), headers=outsider)
        assert r.status_code == 404 and r.get_json()["code"] == 404.1, route
    r = client.post(url(project, "exports"), json={"format": "csv"}, headers=outsider)
    assert r.status_code == 404


def test_access__app_users_and_strangers_are_refused(client, make, project, submitted):
    _app_user, token = make.app_user(project, "Another tablet")
    for route in ROUTES:
        as_app_user = client.get(url(project, route), headers=bearer(token))
        assert as_app_user.status_code == 401, route
        anonymous = client.get(url(project, route))
        assert anonymous.status_code == 401, route
        assert "WWW-Authenticate" in anonymous.headers
        keyed = client.get(f"/v1/key/{token}/projects/{project.id}/forms/{FORM_ID}/{route}")
        assert keyed.status_code in (401, 403, 404), route


def test_access__an_unknown_form_is_404(client, project, auth, v1):
    r = client.get(f"/v1/projects/{project.id}/forms/nope/submissions.csv", headers=auth)
    assert r.status_code == 404


@pytest.mark.parametrize(("query", "option"), [
    ("groupPaths=maybe", "groupPaths"),
    ("attachments=2", "attachments"),
    ("colour=blue", "colour"),
    ("$filter=__system/submitterId eq 5", "$filter"),
    ("language=fr", "language"),
    ("reviewState=bogus", "reviewState"),
    ("submitterId=abc", "submitterId"),
    ("submittedFrom=2024-01-01' OR 1=1--", "submittedFrom"),
    ("submittedFrom=2026-02-01T00:00:00Z&submittedTo=2026-01-01T00:00:00Z", "submittedTo"),
    ("submittedFrom=2026-02-01T00:00:00", "submittedFrom"),  # no timezone: ambiguous
])
def test_options__bad_ones_are_400_41_naming_the_option(client, project, auth, submitted,
                                                        query, option):
    r = client.get(url(project, f"submissions.csv?{query}"), headers=auth)
    assert r.status_code == 400, r.get_data(as_text=True)
    body = r.get_json()
    assert body["code"] == 400.41
    assert body["details"]["option"] == option


def test_options__geo_field_must_be_a_geo_field_of_the_form(client, project, auth, submitted):
    for field in ("/name", "nowhere", "/work/wage"):
        r = client.get(url(project, f"submissions.geojson?geoField={field}"), headers=auth)
        assert r.status_code == 400 and r.get_json()["details"]["option"] == "geoField"


def test_options__geojson_of_a_form_without_geo_fields_is_400(client, make, auth):
    project = make.project("No maps")
    member = make.auth(make.member(project, "manager"))
    md = """
| survey   |            |        |        |
|          | type       | name   | label  |
|          | text       | name   | Name   |
| settings |            |        |        |
|          | form_title | form_id| version|
|          | Plain      | plain  | 1      |
"""
    upload_form(client, project, member, md)
    r = client.get(f"/v1/projects/{project.id}/forms/plain/submissions.geojson", headers=member)
    assert r.status_code == 400 and r.get_json()["details"]["option"] == "geoField"
    r = client.get(f"/v1/projects/{project.id}/forms/plain/submissions.csv?labels=true&"
                   "language=default", headers=member)
    assert r.status_code == 200


@pytest.mark.parametrize(("body", "option"), [
    ({"format": "pdf"}, "format"),
    ({}, "format"),
    ({"format": "csv", "bogus": True}, "bogus"),
    ({"format": "csv", "reviewState": "approved"}, "reviewState"),  # a list is expected
    ({"format": "csv", "groupPaths": "sometimes"}, "groupPaths"),
    ({"format": "geojson", "geoField": "/name"}, "geoField"),
    ([1, 2], "body"),
])
def test_background__bad_requests_are_400_41(client, project, auth, submitted, body, option):
    r = client.post(url(project, "exports"), json=body, headers=auth)
    assert r.status_code == 400, r.get_data(as_text=True)
    assert r.get_json()["code"] == 400.41
    assert r.get_json()["details"]["option"] == option


def test_background__a_body_that_is_not_json_is_400(client, project, auth, submitted):
    r = client.post(url(project, "exports"), data=b"format=csv", headers=auth,
                    content_type="application/x-www-form-urlencoded")
    assert r.status_code == 400 and r.get_json()["code"] == 400.41
