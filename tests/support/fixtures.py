"""Fixtures the integration tests share, registered for the whole suite by the root
conftest: a project, a manager of it, and the manager signed in. A module that needs other
ones (another name, another role) defines its own fixture of the same name."""

from __future__ import annotations

import pytest

from server.models import Project, User


@pytest.fixture
def project(make) -> Project:
    return make.project("Migration Profile")


@pytest.fixture
def manager(make, project: Project) -> User:
    return make.member(project, "manager")


@pytest.fixture
def auth(make, manager: User) -> dict[str, str]:
    """The manager's bearer headers, from a real ``POST /v1/sessions``."""
    return make.auth(manager)
