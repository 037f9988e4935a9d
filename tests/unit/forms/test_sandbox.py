"""forms.sandbox: compile in a limited child; the worker sees FormInvalid, never a hang, an
OOM or a traceback (hostile input #45). Each child costs about half a second."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from forms import sandbox
from forms.compile import compile_xlsform
from forms.guards import UploadLimits
from forms.issues import FormInvalid
from forms.sandbox import compile_isolated
from forms.validate import java_available
from tests.unit.forms.workbook_builders import SIMPLE_SURVEY, xlsx

BROKEN = Path(__file__).parents[2] / "data" / "forms" / "broken"
SIMPLE_MD = b"""
| survey |
|        | type    | name | label |
|        | integer | age  | Age   |
"""


def refused(data: bytes, **kwargs) -> FormInvalid:
    kwargs.setdefault("kind", "md")
    with pytest.raises(FormInvalid) as caught:
        compile_isolated(data, **kwargs)
    return caught.value


def test_compile_isolated__same_xform_as_in_process(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = xlsx({"survey": SIMPLE_SURVEY})
    isolated = compile_isolated(data, kind="xlsx", form_id_fallback="household.xlsx")
    direct = compile_xlsform(data, kind="xlsx", form_id_fallback="household.xlsx")
    assert isolated == direct
    assert b'id="household"' in isolated.xform
    assert list(tmp_path.iterdir()) == []


def test_compile_isolated__form_issues_come_back_intact():
    data = (BROKEN / "everything_wrong.md").read_bytes()
    with pytest.raises(FormInvalid) as direct:
        compile_xlsform(data, kind="md")
    assert refused(data).issues == direct.value.issues


def test_compile_isolated__timeout():
    invalid = refused(SIMPLE_MD, timeout_s=0.05)
    assert [i.code for i in invalid.errors] == ["form.compile_timeout"]
    assert not invalid.too_large


def test_compile_isolated__memory_limit():
    huge_label = b"| survey |\n|  | type | name | label |\n|  | integer | age | " + (
        b"A" * 15_000_000) + b" |\n"
    invalid = refused(huge_label, memory_bytes=64 << 20)
    assert [i.code for i in invalid.errors] == ["form.compile_too_large"]
    assert invalid.too_large


def test_compile_isolated__guards_run_in_the_child_with_the_given_limits():
    rows = [["type", "name", "label"]] + [["text", f"q{n}", "Q"] for n in range(60)]
    invalid = refused(xlsx({"survey": rows}), kind="xlsx", limits=UploadLimits(max_rows=50))
    assert [i.code for i in invalid.errors] == ["file.too_many_rows"]


@pytest.mark.skipif(not java_available(), reason="java is not installed")
def test_compile_isolated__validate_runs_odk_validate_on_the_result():
    invalid = refused((BROKEN / "constraint_syntax.md").read_bytes(), validate=True)
    assert [i.code for i in invalid.errors] == ["odk_validate.error"]


def test_child_env__carries_no_secrets(monkeypatch, tmp_path):
    monkeypatch.setenv("DODOSO_SECRET_KEY", "hunter2")
    env = sandbox._child_env(str(tmp_path))
    assert "hunter2" not in json.dumps(env)
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "PYTHONPATH",
                        "PYTHONIOENCODING", "PYTHONDONTWRITEBYTECODE", "PYTHONNOUSERSITE"}
    assert env["HOME"] == env["TMPDIR"] == str(tmp_path)


def reply(returncode: int, stdout: bytes = b"", stderr: bytes = b""):
    return subprocess.CompletedProcess([], returncode, stdout, stderr)


@pytest.mark.parametrize(("done", "code"), [
    (reply(-signal.SIGXCPU), "form.compile_timeout"),
    (reply(-signal.SIGKILL), "form.compile_too_large"),
    (reply(1, stderr=b"Traceback ...\nMemoryError\n"), "form.compile_too_large"),
    (reply(0, b'{"ok": false, "memory": true}'), "form.compile_too_large"),
    (reply(-signal.SIGSEGV), "xlsform.invalid"),
    (reply(1, b"not json", b"Traceback ...\nImportError: no"), "xlsform.invalid"),
    (reply(0, b'{"ok": false, "crash": "KeyError"}'), "xlsform.invalid"),
])
def test_read_reply__every_child_failure_is_a_form_issue(done, code):
    with pytest.raises(FormInvalid) as caught:
        sandbox._read_reply(done, timeout_s=30)
    assert [i.code for i in caught.value.errors] == [code]
