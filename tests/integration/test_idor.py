"""An automated sweep of every route with a project id: credentials for one project never
reveal anything about another. New routes join the sweep by themselves."""

from __future__ import annotations

import re

import pytest

PLACEHOLDER = re.compile(r"<(?:(\w+):)?(\w+)>")
SKIP_METHODS = {"HEAD", "OPTIONS"}


# The OpenRosa routes answer like ODK Central: a bad key in the URL is 403, a signed-in user
# without rights gets 401 (so Collect prompts). Both answer the same for every project.
OPENROSA_REFUSALS = (401, 403, 404)


def project_routes(app) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if "project_id" not in rule.arguments:
            continue
        for method in sorted(rule.methods - SKIP_METHODS):
            routes.append((method, rule.rule))
    return routes


def refusals(app, rule: str) -> tuple[int, ...]:
    endpoint = next(r.endpoint for r in app.url_map.iter_rules() if r.rule == rule)
    return OPENROSA_REFUSALS if endpoint.startswith("openrosa.") else (404, 422)


def fill(rule: str, values: dict[str, object]) -> str:
    return PLACEHOLDER.sub(lambda m: str(values.get(m.group(2), 1)), rule)


def test_sweep__covers_the_project_routes(base_app):
    assert len(project_routes(base_app)) >= 10


def test_sweep__foreign_project_answers_exactly_like_a_missing_one(client, base_app, make):
    mine, theirs = make.project("Mine"), make.project("Theirs")
    manager = make.member(mine, "manager")
    foreign_user = make.member(theirs, "viewer")
    foreign_app_user, _ = make.app_user(theirs)
    headers = make.auth(manager)
    failures = []
    for method, rule in project_routes(base_app):
        values = {"project_id": theirs.id, "app_user_id": foreign_app_user.id,
                  "user_id": foreign_user.id, "role": "viewer"}
        foreign = client.open(fill(rule, values), method=method, json={}, headers=headers)
        missing = client.open(fill(rule, {**values, "project_id": 987654321}), method=method,
                              json={}, headers=headers)
        if foreign.status_code not in refusals(base_app, rule) or (
            (foreign.status_code, foreign.data) != (missing.status_code, missing.data)
        ):
            failures.append((method, rule, foreign.status_code, missing.status_code))
    assert failures == []


@pytest.mark.parametrize("role", ["viewer", "data-manager", "designer", "manager"])
def test_sweep__no_route_leaks_with_any_role(client, base_app, make, role):
    mine, theirs = make.project("Mine"), make.project("Theirs")
    headers = make.auth(make.member(mine, role))
    for method, rule in project_routes(base_app):
        r = client.open(fill(rule, {"project_id": theirs.id}), method=method, json={},
                        headers=headers)
        assert r.status_code in refusals(base_app, rule), (method, rule, r.status_code)
        assert "Theirs" not in r.get_data(as_text=True)
