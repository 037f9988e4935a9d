"""``dodoso forms push`` against a live server: the installed console script, talking HTTP to
``dodoso serve`` (set up with ``db upgrade`` and ``demo`` in a fresh working directory, as
tests/e2e/test_demo_server.py does), the way a designer publishes from their laptop."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_demo_server import (
    COMMAND_TIMEOUT_SECONDS,
    call,
    dodoso_script,
)
from tests.forms_corpus import FORMS_DIR
from tests.support.live import LiveServer, demo_server
from tests.support.xlsx import md_to_xlsx


class Server(LiveServer):
    def get(self, path: str) -> tuple[int, object]:
        reply = call("GET", f"{self.base_url}/v1/projects/{self.project_id}/forms{path}",
                     token=self.token)
        return reply.status, reply.body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with demo_server(tmp_path_factory.mktemp("forms-push")) as live:
        yield Server(**vars(live))


def push(server: Server, path: Path, *args: str, auth: tuple[str, ...] | None = None,
         password: str | None = None) -> subprocess.CompletedProcess[str]:
    """``dodoso forms push`` as a separate process. ``start_new_session`` detaches it from
    any terminal, so a password prompt reads stdin as it would in a pipeline."""
    credentials = ("--token", server.token) if auth is None else auth
    return subprocess.run(
        [str(dodoso_script()), "forms", "push", str(path), "--project", str(server.project_id),
         "--server", server.base_url, *credentials, *args],
        cwd=server.workdir, env=server.env, input=password, capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT_SECONDS, check=False, start_new_session=True)


def survey(form_id: str, version: str, extra_row: str = "") -> str:
    return f"""
| survey   |                |           |                              |
|          | type           | name      | label                        |
|          | text           | worker    | Name of the returnee         |
|          | integer        | months    | Months abroad                |
|          | select_one yn  | paid      | Were all wages paid?         |
{extra_row}
| choices  |                |           |                              |
|          | list_name      | name      | label                        |
|          | yn             | yes       | Yes                          |
|          | yn             | no        | No                           |
| settings |                |           |                              |
|          | form_title     | form_id   | version                      |
|          | Returnee wages | {form_id} | {version}                    |
"""


NEW_QUESTION = "|          | text           | newq      | Anything else?               |"


def xlsx(tmp_path: Path, name: str, md: str) -> Path:
    path = tmp_path / f"{name}.xlsx"
    path.write_bytes(md_to_xlsx(md))
    return path


def ok(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return done.stdout.splitlines()


def test_push__creates_drafts_with_a_diff_and_publishes(server, tmp_path):
    v1 = xlsx(tmp_path, "wages_v1", survey("wages", "2026010101"))
    assert ok(push(server, v1, "--publish")) == [
        "Created form wages (version 2026010101).",
        "Published wages version 2026010101.",
    ]
    status, form = server.get("/wages")
    assert status == 200
    assert form["version"] == "2026010101" and form["publishedAt"] is not None

    v2 = xlsx(tmp_path, "wages_v2", survey("wages", "2026010201", NEW_QUESTION))
    assert ok(push(server, v2)) == [
        "New draft of wages (version 2026010201).",
        "  added: /newq",
    ]
    assert server.get("/wages")[1]["version"] == "2026010101"  # the draft is not live
    status, draft = server.get("/wages/draft")
    assert status == 200 and draft["version"] == "2026010201"

    assert ok(push(server, v2, "--publish")) == [
        "New draft of wages (version 2026010201).",
        "  added: /newq",
        "Published wages version 2026010201.",
    ]
    assert server.get("/wages")[1]["version"] == "2026010201"
    assert server.get("/wages/draft")[0] == 404
    assert "/newq" in {f["path"] for f in server.get("/wages/fields")[1]}
    assert [v["version"] for v in server.get("/wages/versions")[1]] == [
        "2026010201", "2026010101"]
    log = server.log.read_text()
    assert f"path=/v1/projects/{server.project_id}/forms/wages/draft" in log  # it logs at all
    assert server.token not in log


def test_push__without_publish_the_new_form_stays_a_draft(server, tmp_path):
    path = xlsx(tmp_path, "draft_only", survey("draft_only", "1"))
    assert ok(push(server, path)) == ["Created form draft_only (version 1)."]
    status, form = server.get("/draft_only")
    assert status == 200
    assert form["publishedAt"] is None
    assert server.get("/draft_only.xml")[0] == 404


def test_push__publish_under_another_version(server, tmp_path):
    path = xlsx(tmp_path, "renamed", survey("renamed", "1"))
    assert ok(push(server, path, "--publish", "--version", "2026-03-a"))[-1] == (
        "Published renamed version 2026-03-a.")
    assert server.get("/renamed")[1]["version"] == "2026-03-a"


def test_push__a_broken_form_exits_1_with_the_errors_row_by_row(server, tmp_path):
    md = (FORMS_DIR / "broken" / "duplicate_names.md").read_text(encoding="utf-8")
    done = push(server, xlsx(tmp_path, "duplicate_names", md), "--publish")
    assert done.returncode == 1, done.stdout
    assert done.stdout == ""
    first, *issues = done.stderr.splitlines()
    assert first.endswith("[400.15]")
    assert [line.split(":")[0] for line in issues] == [
        "  ERROR survey row 4, name", "  ERROR survey row 6, name"]
    assert all(line.endswith("[xlsform.duplicate_name]") for line in issues)
    assert server.get("/duplicate_names")[0] == 404


def test_push__warnings_refuse_the_form_unless_ignored(server, tmp_path):
    md = (FORMS_DIR / "border_monitoring.md").read_text(encoding="utf-8")
    path = xlsx(tmp_path, "border_monitoring", md)
    refused = push(server, path)
    assert refused.returncode == 1, refused.stdout
    first, *issues = refused.stderr.splitlines()
    assert first.endswith("[400.16]")
    assert issues and all(line.startswith("  WARNING survey row ") for line in issues)
    assert server.get("/border_monitoring")[0] == 404
    assert ok(push(server, path, "--ignore-warnings")) == [
        "Created form border_monitoring (version (none))."]


def test_push__email_prompts_for_the_password(server, tmp_path):
    path = xlsx(tmp_path, "by_email", survey("by_email", "1"))
    done = push(server, path, auth=("--email", server.email), password=server.password + "\n")
    assert ok(done) == ["Created form by_email (version 1)."]
    assert "Password" in done.stderr
    assert server.password not in done.stdout + done.stderr

    wrong = push(server, xlsx(tmp_path, "wrong", survey("wrong", "1")),
                 auth=("--email", server.email), password="not-the-password\n")
    assert wrong.returncode == 1
    assert "Log-in failed" in wrong.stderr
    assert server.get("/wrong")[0] == 404


def test_push__needs_a_token_or_an_email(server, tmp_path):
    path = xlsx(tmp_path, "anonymous", survey("anonymous", "1"))
    done = push(server, path, auth=())
    assert done.returncode == 2
    assert "--token" in done.stderr and "--email" in done.stderr
    bad = push(server, path, auth=("--token", "x" * 64))
    assert bad.returncode == 1
    assert "[401." in bad.stderr
    assert server.get("/anonymous")[0] == 404
