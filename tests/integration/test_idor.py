"""An automated sweep of every route with a project id: credentials for one project never
reveal anything about another. New routes join the sweep by themselves."""

from __future__ import annotations

import re

import pytest

PLACEHOLDER = re.compile(r"<(?:(\w+):)?(\w+)>")
SKIP_METHODS = {"HEAD", "OPTIONS"}


def project_routes(app) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if "project_id" not in rule.arguments:
            continue
        for method in sorted(rule.methods - SKIP_METHODS):
            routes.append((method, rule.rule))
    return routes


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
        if foreign.status_code not in (404, 422) or (
            (foreign.status_code, foreign.get_json()) != (missing.status_code, missing.get_json())
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
        assert r.status_code in (404, 422), (method, rule, r.status_code)
        assert "Theirs" not in r.get_data(as_text=True)
