"""The Problem registry: stable, unique codes; messages filled from details."""

from __future__ import annotations

from server.errors import Problem, Problems, all_problem_types


def test_codes__are_unique_and_match_their_http_status():
    types = all_problem_types()
    codes = [t.code for t in types.values()]
    assert len(codes) == len(set(codes))
    for name, t in types.items():
        assert 400 <= int(t.code) < 600, name
        assert t.code != int(t.code), f"{name} needs a sub-code"


def test_problem__fills_its_message_and_keeps_details():
    p = Problems.unparseable(format="JSON")
    assert isinstance(p, Problem)
    assert (p.status, p.code) == (400, 400.1)
    assert p.message == "Could not parse the given data as JSON."
    assert p.to_json() == {"code": 400.1, "message": p.message, "details": {"format": "JSON"}}


def test_problem__missing_template_fields_do_not_crash():
    assert "{limit}" in Problems.too_large().message


def test_problem__headers_are_per_instance():
    a = Problems.too_many_login_attempts(headers={"Retry-After": "5"})
    b = Problems.too_many_login_attempts()
    assert a.headers == {"Retry-After": "5"}
    assert b.headers == {}


def test_auth_problems__challenge_without_digest():
    for p in (Problems.auth_required(), Problems.unauthenticated(), Problems.https_only()):
        assert p.status == 401
        assert p.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Digest" not in p.headers["WWW-Authenticate"]

