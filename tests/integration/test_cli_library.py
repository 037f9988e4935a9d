"""``dodoso forms library list|install`` and the library in ``dodoso demo``, driven through
click's CliRunner on a fresh SQLite database per test (as tests/integration/test_cli.py).

The workbooks are compiled once per session (tests/support/library.py) and the install is
given those results, except in the test of a demo without Java, which compiles for real."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from forms.library import FORMS
from server.cli import DEMO_PROJECT_NAME
from server.models import AppUser, Form, FormAssignment, Project
from server.services import library
from tests.integration.test_cli import Cli
from tests.support.library import FORM_IDS, by_source


@pytest.fixture
def uncached_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    for name in list(os.environ):
        if name.startswith("DODOSO_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    made = Cli(tmp_path)
    made.ok("db", "upgrade")
    return made


@pytest.fixture
def cli(uncached_cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    cached = by_source()
    monkeypatch.setattr(library, "prepare", lambda ctx, upload: cached[upload.data])
    return uncached_cli


def project_id(cli: Cli) -> str:
    return cli.ok("projects", "create", "Labour migration").split()[2].rstrip(":")


def forms_of(cli: Cli, project: str) -> dict[str, Form]:
    with cli.db() as s:
        return {f.xml_form_id: f for f in s.scalars(
            select(Form).where(Form.project_id == int(project)))}


def test_list__every_form_with_its_version_and_title():
    from click.testing import CliRunner

    from server.cli import main

    result = CliRunner().invoke(main, ["forms", "library", "list"])
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.splitlines() if "\t" in line]
    assert lines == [[f.form_id, f.version, f.title] for f in FORMS]
    assert "registers entities in: diaspora_experts" in result.stdout
    assert "follows up the entity list(s): diaspora_experts" in result.stdout


def test_install__all_then_again(cli):
    project = project_id(cli)
    first = cli.ok("forms", "library", "install", "--project", project).splitlines()
    assert [line.split(":")[0] for line in first] == FORM_IDS
    assert all(": installed (version 2026" in line for line in first)
    assert set(forms_of(cli, project)) == set(FORM_IDS)
    second = cli.ok("forms", "library", "install", "--project", project).splitlines()
    assert all(": present (version" in line for line in second), second


def test_install__named_forms_assigned_to_an_app_user(cli):
    project = project_id(cli)
    created = cli.ok("app-users", "create", "Tablet 2", "--project", project)
    app_user = created.split()[3]
    out = cli.ok("forms", "library", "install", "returnee_rss", "remittance_corridor_intercept",
                 "--project", project, "--assign", app_user)
    assert out.splitlines() == [
        f"returnee_rss: installed (version {FORMS[3].version})",
        f"remittance_corridor_intercept: installed (version {FORMS[4].version})"]
    installed = forms_of(cli, project)
    assert set(installed) == {"returnee_rss", "remittance_corridor_intercept"}
    with cli.db() as s:
        assigned = set(s.scalars(select(FormAssignment.form_id).where(
            FormAssignment.app_user_id == int(app_user))))
    assert assigned == {f.id for f in installed.values()}


@pytest.mark.parametrize(("args", "message", "code"), [
    (["no_such_form", "--project", "1"], "not in the library: no_such_form", 2),
    (["--project", "999"], "No project 999", 1),
    (["returnee_rss", "--project", "1", "--assign", "42"], "No app user 42 in project 1", 1),
])
def test_install__refusals_are_clean_and_change_nothing(cli, args, message, code):
    project_id(cli)
    result = cli.run("forms", "library", "install", *args)
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output
    with cli.db() as s:
        assert s.scalars(select(Form)).all() == []


def test_demo__installs_the_library_for_the_demo_tablet(cli):
    out = cli.ok("demo")
    assert "Form library, installed in the demo project for the demo tablet:" in out
    for form_id in FORM_IDS:
        assert f"  {form_id}: installed (version " in out
    with cli.db() as s:
        project = s.scalar(select(Project).where(Project.name == DEMO_PROJECT_NAME))
        tablet = s.scalar(select(AppUser).where(AppUser.project_id == project.id))
        forms = s.scalars(select(Form).where(Form.project_id == project.id)).all()
        assert sorted(f.xml_form_id for f in forms) == sorted(FORM_IDS)
        assigned = set(s.scalars(select(FormAssignment.form_id).where(
            FormAssignment.app_user_id == tablet.id)))
        assert assigned == {f.id for f in forms}
    assert cli.ok("demo") == out  # the second run creates nothing and says the same


def test_demo__without_java_still_installs_the_library(uncached_cli):
    """ODK Validate demanded but no Java: the demo skips ODK Validate, so the library still
    installs."""
    out = uncached_cli.ok("demo", env={"DODOSO_JAVA": "/nonexistent/java",
                                       "DODOSO_ODK_VALIDATE": "on"})
    assert out.count(": installed (version ") == len(FORMS)
