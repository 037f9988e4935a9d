"""forms.validate: ODK Validate's verdict as FormIssues. Only a few tests start a JVM."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from forms.compile import compile_xlsform
from forms.issues import FormInvalid
from forms.validate import issues_from_output, java_available, odk_validate

BROKEN = Path(__file__).parents[2] / "data" / "forms" / "broken"
needs_java = pytest.mark.skipif(not java_available(), reason="java is not installed")
VALID_MD = b"""
| survey |
|        | type    | name | label | constraint |
|        | integer | age  | Age   | . >= 0     |
"""
STDERR_REFUSAL = """

>> XForm is invalid.
org.javarosa.xform.parse.XFormParseException: bind for /data/age contains invalid constraint \
expression [. >] Bad node: org.javarosa.xpath.parser.ast.ASTNodeAbstractExpr@73ad2d6
\tat org.javarosa.xform.parse.StandardBindAttributesProcessor.createBinding(Std.java:100)
\tat org.opendatakit.validate.FormValidator.main(FormValidator.java:141)

The following files failed validation:
form.xml

Result: Invalid
"""


def compiled(name: str) -> bytes:
    return compile_xlsform((BROKEN / name).read_bytes(), kind="md").xform


@needs_java
def test_odk_validate__a_valid_form_passes():
    assert odk_validate(compile_xlsform(VALID_MD, kind="md").xform) == []


@needs_java
def test_odk_validate__constraint_syntax_error_pyxform_let_through():
    [issue] = odk_validate(compiled("constraint_syntax.md"))
    assert (issue.level, issue.code) == ("error", "odk_validate.error")
    assert "invalid constraint expression [. >]" in issue.message
    assert "/tmp" not in issue.message + issue.original
    assert "\tat " not in issue.original and "Exception" not in issue.message


@needs_java
def test_compile_with_validate__unknown_function_is_refused():
    with pytest.raises(FormInvalid) as caught:
        compile_xlsform((BROKEN / "unknown_function.md").read_bytes(), kind="md",
                        validate=True)
    [issue] = caught.value.errors
    assert issue.code == "odk_validate.error"
    assert "cannot handle function 'twice_of'" in issue.message


@needs_java
def test_odk_validate__timeout():
    [issue] = odk_validate(compile_xlsform(VALID_MD, kind="md").xform, timeout=0.01)
    assert issue.code == "odk_validate.timeout"


def test_odk_validate__missing_java():
    [issue] = odk_validate(b"<x/>", java="/nonexistent/bin/java")
    assert (issue.level, issue.code) == ("error", "odk_validate.unavailable")
    assert not java_available("/nonexistent/bin/java")


def test_odk_validate__java_gets_no_secrets_and_paths_are_stripped(tmp_path, monkeypatch):
    monkeypatch.setenv("DODOSO_SECRET_KEY", "hunter2-secret")
    fake_java = tmp_path / "java"
    fake_java.write_text('#!/bin/sh\nenv >&2\necho "Validating: $7" >&2\nexit 1\n')
    fake_java.chmod(fake_java.stat().st_mode | stat.S_IXUSR)
    [issue] = odk_validate(b"<x/>", java=str(fake_java))
    assert issue.code == "odk_validate.error"
    assert "hunter2" not in issue.message + issue.original
    assert "dodoso-validate-" not in issue.message + issue.original


def test_issues_from_output__refusal_is_one_clean_error():
    [issue] = issues_from_output(1, "Validating: form.xml\n", STDERR_REFUSAL)
    assert issue.message == ("bind for /data/age contains invalid constraint expression [. >]")
    assert "createBinding" not in issue.original
    assert "XFormParseException" in issue.original


def test_issues_from_output__caused_by_repeats_are_dropped():
    stderr = ("\n>> Something broke the parser.\njava.lang.RuntimeException: Error evaluating "
              "field 'c': The problem was located in Calculate expression for /data/c\n"
              "XPath evaluation: cannot handle function 'nofunc'\n\tat a.b(C.java:1)\n"
              "Caused by: org.javarosa.xpath.XPathUnhandledException: The problem was located\n"
              "XPath evaluation: cannot handle function 'nofunc'\n\t... 10 more\n\n"
              "Result: Invalid\n")
    [issue] = issues_from_output(1, "", stderr)
    assert issue.message.count("nofunc") == 1
    assert issue.message.startswith("Error evaluating field 'c'")


def test_issues_from_output__valid_with_stderr_is_a_warning():
    [issue] = issues_from_output(0, ">> Xform is valid!\n",
                                 "XForm Parse Warning: Unrecognized element [foo].\n")
    assert (issue.level, issue.code) == ("warning", "odk_validate.warning")
    assert issue.message == "XForm Parse Warning: Unrecognized element [foo]."


def test_issues_from_output__valid_and_silent_is_no_issue():
    out = "Validating: form.xml\n\n>> Xform parsing completed!\n\n>> Xform is valid!\n"
    assert issues_from_output(0, out, "") == []


def test_issues_from_output__refusal_without_words():
    [issue] = issues_from_output(2, "", "")
    assert issue.code == "odk_validate.error"
