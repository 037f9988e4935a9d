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


# -- the form library's tests -----------------------------------------------------------------

@pytest.fixture
def compiled_once(monkeypatch):
    """Installing a library form reuses the compilation this module caches."""
    from server.services import library
    from tests.support.library import by_source

    cached, real = by_source(), library.prepare
    monkeypatch.setattr(library, "prepare",
                        lambda ctx, upload: cached.get(upload.data) or real(ctx, upload))


@pytest.fixture
def ctx(app):
    """The forms service's context for the test app."""
    from server.services.forms import FormsContext

    services = app.extensions["dodoso"]
    return FormsContext(settings=services.settings, store=services.blob_store)
