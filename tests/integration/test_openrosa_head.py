"""Collect's HEAD before each upload, answered by ``sync.head`` in front of Flask for a key
this process verified seconds ago: the same answer Flask gives, and Flask's answer for
everything the lane cannot be sure of."""

# ruff: noqa: F811  (pytest fixtures imported by name)
from __future__ import annotations

import io
import json
import sys
from types import SimpleNamespace

import pytest
import structlog

from server.logs import configure_logging
from server.services import app_users
from server.services.app_users import VERIFIED_KEYS
from sync.head import SubmissionHead
from tests.integration.test_openrosa_hostile import OR, collect  # noqa: F401

VARYING = {"Date", "X-Request-Id"}


@pytest.fixture
def lane(monkeypatch) -> list[str]:
    """The paths the lane answered."""
    answered: list[str] = []
    real = SubmissionHead._no_content

    def spy(self, environ, start_response, started):
        answered.append(environ["PATH_INFO"])
        return real(self, environ, start_response, started)
    monkeypatch.setattr(SubmissionHead, "_no_content", spy)
    return answered


def head(client, url: str, **headers: str):
    return client.head(f"{url}/submission", headers={**OR, **headers})


def test_the_lane_answers_a_recently_verified_key_exactly_as_flask_does(
        client, collect, lane):
    VERIFIED_KEYS.clear()
    by_flask = head(client, collect.url)
    assert lane == []
    by_lane = head(client, collect.url)
    assert lane == [f"{collect.url}/submission"]
    assert by_flask.status_code == by_lane.status_code == 204
    assert by_lane.data == b""
    assert [name for name, _ in by_flask.headers] == [name for name, _ in by_lane.headers]
    assert {k: v for k, v in by_flask.headers if k not in VARYING} == \
        {k: v for k, v in by_lane.headers if k not in VARYING}
    assert by_lane.headers["X-OpenRosa-Accept-Content-Length"] == "100000000"
    assert by_lane.headers["Date"].endswith(" GMT")
    assert "Content-Type" not in by_lane.headers  # a 204 has no content


def test_the_caller_request_id_is_kept_and_a_bad_one_replaced(client, collect, lane):
    head(client, collect.url)
    assert head(client, collect.url, **{"X-Request-Id": "trace-0123456789"}
                ).headers["X-Request-Id"] == "trace-0123456789"
    replaced = head(client, collect.url, **{"X-Request-Id": "<script>"}).headers["X-Request-Id"]
    assert len(replaced) == 32 and replaced.isalnum()
    assert len(lane) == 2


def test_what_the_lane_cannot_be_sure_of_goes_to_flask(client, collect, lane, make,
                                                        monkeypatch):
    head(client, collect.url)
    lane.clear()
    token_url, project_id = collect.url.rsplit("/projects/", 1)
    other = make.project("Elsewhere")
    # another project's id: Flask refuses the key there
    assert head(client, f"{token_url}/projects/{other.id}").status_code == 403
    # no X-OpenRosa-Version: Flask's 400
    r = client.head(f"{collect.url}/submission")
    assert r.status_code == 400
    # a path Flask's rule would not match as it stands, or a leading zero
    assert client.head(f"{collect.url}/submission/", headers=OR).status_code in (308, 404)
    assert client.head(f"{token_url}/projects/0{project_id}/submission",
                       headers=OR).status_code in (204, 403, 404)
    # other methods
    assert client.get(f"{collect.url}/submission", headers=OR).status_code == 204
    assert lane == []
    # a key verified longer ago than the trust window is verified again by Flask
    monkeypatch.setattr(app_users, "HEAD_TRUST_SECONDS", 0.0)
    assert head(client, collect.url).status_code == 204
    assert lane == []


def test_a_revoked_key_is_never_answered_by_the_lane(client, collect, lane, db):
    from server.auth.actor import SYSTEM
    from server.models import AppUser
    head(client, collect.url)
    app_users.revoke_app_user(db, SYSTEM, db.get(AppUser, collect.app_user.id))
    db.commit()
    lane.clear()
    assert head(client, collect.url).status_code == 403
    assert lane == []


def test_the_lane_logs_its_request_with_the_key_redacted(client, collect, lane,
                                                         monkeypatch):
    head(client, collect.url)
    saved = structlog.get_config()
    out = io.StringIO()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", out)
        configure_logging(SimpleNamespace(log_level="INFO", log_format="json"))  # type: ignore[arg-type]
        try:
            r = head(client, collect.url)
        finally:
            structlog.configure(**saved)
    assert len(lane) == 1
    (line,) = [json.loads(x) for x in out.getvalue().splitlines() if '"request"' in x]
    token = collect.url.split("/")[3]
    assert token not in out.getvalue()
    assert line["path"] == f"/v1/key/[redacted]/projects/{collect.project.id}/submission"
    assert line["status"] == 204 and line["method"] == "HEAD"
    assert line["request_id"] == r.headers["X-Request-Id"]
