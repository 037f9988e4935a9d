"""Per-form SQL views for analysts (PostgreSQL): built on publish from every version, one
per table, typed numbers that never fail on a bad value, live submissions only, dropped with
the form; and the names they get."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from forms.schema import Field, FormSchema
from server.cli import main
from server.queries import views as view_queries
from tests.support.api import openrosa_submit, publish_version, submit_xml, upload_form
from tests.support.forms import publish_md

SURVEY = """
| survey   |               |          |                      |
|          | type          | name     | label                |
|          | text          | name     | Name                 |
|          | begin group   | hh       | Household            |
|          | integer       | size     | Size                 |
|          | decimal       | income   | Income               |
|          | end group     |          |                      |
|          | begin repeat  | members  | Members              |
|          | text          | m_name   | Member name          |
|          | integer       | m_age    | Age                  |
|          | end repeat    |          |                      |
| settings |               |          |                      |
|          | form_title    | form_id  | version              |
|          | Household     | census   | {version}            |
"""
SURVEY_V2 = SURVEY.replace(
    "|          | end repeat    |          |                      |",
    "|          | end repeat    |          |                      |\n"
    "|          | text          | district | District             |")


def instance(instance_id: str, *, version: str = "1", size: str = "4", income: str = "1.5",
             ages: tuple[str, ...] = ("34", "29"), district: str | None = None) -> bytes:
    members = "".join(f"<members><m_name>M{i}</m_name><m_age>{a}</m_age></members>"
                      for i, a in enumerate(ages))
    extra = f"<district>{district}</district>" if district is not None else ""
    return (f'<data id="census" version="{version}"><name>Amina</name>'
            f"<hh><size>{size}</size><income>{income}</income></hh>{members}{extra}"
            f"<meta><instanceID>{instance_id}</instanceID></meta></data>").encode()


def test_identifier__safe_short_and_distinct():
    assert view_queries.identifier("v1_Census 2026!") == "v1_census_2026"
    long_a, long_b = "v1_" + "a" * 80, "v1_" + "a" * 79 + "b"
    assert len(view_queries.identifier(long_a)) == 63
    assert view_queries.identifier(long_a) != view_queries.identifier(long_b)


def test_view_specs__every_versions_fields_once_with_unique_column_names():
    def field(path, type_="string", repeat=None, kind="question"):
        return Field(path=path, name=path.rsplit("/", 1)[1], type=type_, kind=kind,
                     repeat=repeat, group=None, order=0)

    new = FormSchema((field("/a-b"), field("/a/b"), field("/key")), {})
    old = FormSchema((field("/a-b"), field("/gone", "int")), {})
    [root] = view_queries.view_specs(3, "f", [new, old])
    assert [(c.name, c.path) for c in root.columns] == [
        ("a-b", "/a-b"), ("a-b_2", "/a/b"), ("key_2", "/key"), ("gone", "/gone")]


@pytest.fixture
def postgres(db):
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("SQL views are built on PostgreSQL only")
    return db


@pytest.fixture
def census(client, make, postgres, project, auth):
    make.app_user(project)
    upload_form(client, project, auth, SURVEY.format(version="1"))
    return project, auth


def post(client, project, auth, xml: bytes) -> None:
    submit_xml(client, f"/v1/projects/{project.id}/forms/census/submissions", auth, xml)


def rows(db, sql: str) -> list[dict]:
    return [dict(r._mapping) for r in db.execute(text(sql))]


def test_views__a_published_form_reads_as_tables(client, census, postgres):
    project, auth = census
    post(client, project, auth, instance("uuid:1"))
    post(client, project, auth, instance("uuid:2", size="not a number", income="-2.5e1",
                                         ages=("7",)))
    base = f"v{project.id}_census"
    found = rows(postgres, f'SELECT * FROM "{base}" ORDER BY instance_id')
    assert [(r["instance_id"], r["name"], r["hh-size"], r["hh-income"], r["review_state"],
             r["form_version"]) for r in found] == [
        ("uuid:1", "Amina", 4, 1.5, "received", "1"),
        ("uuid:2", "Amina", None, -25, "received", "1")]
    members = rows(postgres, f'SELECT * FROM "{base}__members" ORDER BY key')
    assert [(r["instance_id"], r["key"], r["parent_key"], r["position"], r["m_name"],
             r["m_age"]) for r in members] == [
        ("uuid:1", "uuid:1/members[1]", "uuid:1", 1, "M0", 34),
        ("uuid:1", "uuid:1/members[2]", "uuid:1", 2, "M1", 29),
        ("uuid:2", "uuid:2/members[1]", "uuid:2", 1, "M0", 7)]


def test_views__a_new_version_adds_its_columns_and_old_rows_stay(client, census, postgres):
    project, auth = census
    post(client, project, auth, instance("uuid:1"))
    publish_version(client, project, auth, "census", SURVEY_V2.format(version="2"))
    post(client, project, auth, instance("uuid:2", version="2", district="Kigoma"))
    found = rows(postgres, f'SELECT instance_id, form_version, district FROM '
                           f'"v{project.id}_census" ORDER BY instance_id')
    assert found == [{"instance_id": "uuid:1", "form_version": "1", "district": None},
                     {"instance_id": "uuid:2", "form_version": "2", "district": "Kigoma"}]


def test_views__deleted_and_test_submissions_are_not_shown(client, census, postgres):
    project, auth = census
    post(client, project, auth, instance("uuid:1"))
    post(client, project, auth, instance("uuid:2"))
    postgres.execute(text("UPDATE submissions SET deleted_at = now() "
                          "WHERE instance_id = 'uuid:2'"))
    assert [r["instance_id"] for r in rows(postgres, f'SELECT * FROM "v{project.id}_census"')
            ] == ["uuid:1"]
    assert len(rows(postgres, f'SELECT * FROM "v{project.id}_census__members"')) == 2


def test_views__dropped_with_the_form(client, census, postgres):
    project, auth = census
    assert len(view_queries.existing(postgres, _form_id(postgres, project))) == 2
    r = client.delete(f"/v1/projects/{project.id}/forms/census", headers=auth)
    assert r.status_code == 200, r.get_json()
    assert view_queries.existing(postgres, _form_id(postgres, project)) == []


def test_views__submitted_through_collect_too(client, census, postgres, make):
    project, auth = census
    app_user, token = make.app_user(project, "Tablet 2")
    r = client.post(f"/v1/projects/{project.id}/forms/census/assignments/app-user/"
                    f"{app_user.id}", headers=auth)
    assert r.status_code in (200, 201), r.get_json()
    openrosa_submit(client, f"/v1/key/{token}/projects/{project.id}/submission",
                    instance("uuid:c1"))
    assert rows(postgres, f'SELECT instance_id FROM "v{project.id}_census"') == [
        {"instance_id": "uuid:c1"}]


def _form_id(db, project) -> int:
    return db.scalar(text("SELECT id FROM forms WHERE project_id = :p AND xml_form_id = "
                          "'census'"), {"p": project.id})


def test_views__migrations_drop_them_and_upgrade_rebuilds_them(postgres, tmp_path):
    """A view depends on the tables a migration changes: ``db downgrade`` must not fail on
    it, and ``db upgrade`` back to head gives the analysts their views again."""
    from sqlalchemy.orm import Session

    from server import migrate
    from server.auth.actor import SYSTEM
    from server.services.forms import FormsContext
    from server.services.projects import create_project
    from server.storage import open_blob_store
    from tests.support.scratch import migrated_scratch_postgres

    base_url = postgres.get_bind().engine.url.render_as_string(hide_password=False)
    scratch = migrated_scratch_postgres(base_url, tmp_path, prefix="dodoso_views")
    with scratch as (settings, engine):
        with Session(engine) as db:
            project = create_project(db, SYSTEM, name="Views")
            publish_md(db, FormsContext(settings, open_blob_store(settings)), SYSTEM, project,
                       SURVEY.format(version="1"), filename="census.xlsx")
            db.commit()
            expected = [f"v{project.id}_census", f"v{project.id}_census__members"]

        def names() -> list[str]:
            with engine.connect() as conn:
                return view_queries.all_views(conn)

        assert names() == expected
        migrate.downgrade(settings, "0003")
        assert names() == []
        migrate.upgrade(settings)
        assert names() == expected
        with engine.begin() as conn:
            view_queries.drop(conn, expected)
        result = CliRunner().invoke(main, ["db", "views"], env={
            "DODOSO_ENV": "development", "DODOSO_DATABASE_URL": settings.database_url,
            "DODOSO_BLOB_STORE": str(tmp_path / "blobs"), "DODOSO_LOG_LEVEL": "WARNING"})
        assert result.exit_code == 0, (result.output, result.exception)
        assert f"{project.id}/census: v{project.id}_census__members" in result.output
        assert names() == expected
