"""forms.feedback: every common mistake at once, numbered as pyxform numbers rows."""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path

import pytest
from pyxform.errors import PyXFormError
from pyxform.question_type_dictionary import QUESTION_TYPE_DICT
from pyxform.xls2xform import convert

from forms.compile import read_sheets
from forms.feedback import lint_workbook
from tests.unit.forms.workbook_builders import xlsx

FORMS = Path(__file__).parents[2] / "data" / "forms"


def lint_md(md: str) -> list[tuple[str, str | None, int | None, str | None]]:
    issues = lint_workbook(read_sheets(md.encode(), "md"))
    assert all(i.level == "error" for i in issues)
    return [(i.code, i.sheet, i.row, i.column) for i in issues]


def codes(md: str) -> list[str]:
    return [code for code, *_ in lint_md(md)]


def pyxform_row(data: bytes, file_type: str) -> int:
    with pytest.raises(PyXFormError) as caught:
        convert(BytesIO(data), file_type=file_type)
    return int(re.match(r"\[row : (\d+)\]", str(caught.value)).group(1))


def test_rows_are_spreadsheet_rows_like_pyxforms_even_after_blank_rows():
    data = xlsx({"survey": [["type", "name", "label"], ["integer", "age", "Age"], [], [],
                            ["text", "job", "Job"], [None, None, None],
                            ["integer", "age", "Age again"]]})
    [issue] = lint_workbook(read_sheets(data, "xlsx"))
    assert (issue.code, issue.row) == ("xlsform.duplicate_name", 7)
    assert pyxform_row(data, ".xlsx") == 7


def test_choice_rows_are_numbered_like_pyxforms():
    md = """
| survey |
|        | type          | name | label |
|        | select_one yn | q    | Q     |
| choices |
|         | list_name | name | label |
|         | yn        | yes  | Yes   |
|         | yn        | no   | No    |
|         | yn        | yes  | Oui   |
"""
    assert lint_md(md) == [("xlsform.duplicate_choice", "choices", 4, "name")]
    assert pyxform_row(md.encode(), ".md") == 4


def test_duplicates_are_per_sibling_set_and_repeats_are_unique_everywhere():
    md = """
| survey |
|        | type         | name  | label |
|        | text         | name  | Name  |
|        | begin_group  | head  | Head  |
|        | text         | name  | Name  |
|        | begin_repeat | trips | Trips |
|        | text         | name  | Name  |
|        | end_repeat   |       |       |
|        | end_group    |       |       |
|        | begin_repeat | trips | Again |
|        | text         | where | Where |
|        | end_repeat   |       |       |
|        | text         | name  | Again |
"""
    assert lint_md(md) == [("xlsform.duplicate_name", "survey", 9, "name"),
                           ("xlsform.duplicate_name", "survey", 12, "name")]


def test_references_everywhere_pyxform_expands_them():
    md = """
| survey |
|        | type          | name | label        | choice_filter   |
|        | integer       | age  | Age          |                 |
|        | select_one yn | q    | Q ${age}     | ${nope} = 1     |
| choices |
|         | list_name | name | label      | other      |
|         | yn        | yes  | Yes ${ag}  | ${ignored} |
| settings |
|          | instance_name     |
|          | concat(${whoami}) |
"""
    assert lint_md(md) == [("xlsform.unknown_reference", "survey", 3, "choice_filter"),
                           ("xlsform.unknown_reference", "choices", 2, "label"),
                           ("xlsform.unknown_reference", "settings", 2, "instance_name")]


def test_malformed_and_ambiguous_references():
    md = """
| survey |
|        | type        | name  | label           |
|        | begin_group | a     | A               |
|        | text        | x     | X               |
|        | end_group   |       |                 |
|        | begin_group | b     | B               |
|        | text        | x     | X               |
|        | end_group   |       |                 |
|        | text        | y     | ${ y }          |
|        | text        | z     | ${x}            |
|        | text        | w     | ${last-saved#y} |
"""
    assert lint_md(md) == [("xlsform.bad_reference", "survey", 8, "label"),
                           ("xlsform.ambiguous_reference", "survey", 9, "label")]


def test_selects_that_need_no_choices_sheet_list():
    md = """
| survey |
|        | type                             | name  | label | choice_filter |
|        | begin_repeat                     | kids  | Kids  |               |
|        | text                             | kid   | Kid   |               |
|        | end_repeat                       |       |       |               |
|        | select_one ${kid}                | fav   | Fav   |               |
|        | select_one_from_file towns.csv   | town  | Town  |               |
|        | select_multiple_from_file a.xml  | areas | Areas |               |
|        | rank yn                          | order | Order |               |
|        | select_one yn or_other           | other | Other |               |
| choices |
|         | list_name | name | label |
|         | yn        | yes  | Yes   |
"""
    assert lint_md(md) == []


def test_select_without_a_list_name():
    assert lint_md("""
| survey |
|        | type       | name | label |
|        | select one | q    | Q     |
""") == [("xlsform.missing_choice_list", "survey", 2, "type")]


def test_missing_choice_list_with_no_choices_sheet_at_all():
    assert lint_md("""
| survey |
|        | type          | name | label |
|        | select_one yn | q    | Q     |
|        | select_one ab | r    | R     |
""") == [("xlsform.missing_choice_list", "survey", 2, "type"),
         ("xlsform.missing_choice_list", "survey", 3, "type")]


def test_missing_survey_sheet_suggests_a_misspelling():
    issues = lint_workbook(read_sheets(xlsx({"Survy": [["type", "name"], ["text", "q"]],
                                             "choices": [["list_name", "name"]]}), "xlsx"))
    assert [i.code for i in issues] == ["xlsform.missing_survey"]
    assert "'Survy'" in issues[0].message


def test_header_aliases_and_translations_are_understood():
    assert lint_md("""
| survey |
|        | Type    | Name | Label::English (en) | Hint::English (en) | relevance |
|        | integer | age  | Age                 | In years           |           |
|        | text    | job  | Job                 |                    | ${age}>15 |
""") == []


def test_missing_type_column_is_one_header_issue():
    assert lint_md("""
| survey |
|        | typ     | name | label |
|        | integer | age  | Age   |
""") == [("xlsform.invalid_headers", "survey", 1, None)]


def test_disabled_rows_are_skipped():
    assert lint_md("""
| survey |
|        | type    | name | label | disabled |
|        | integer | age  | Age   |          |
|        | integr  | age  | Age   | yes      |
""") == []


def test_nested_blocks_left_open_and_a_mismatched_end():
    assert lint_md("""
| survey |
|        | type         | name  | label |
|        | begin_group  | g     | G     |
|        | begin_repeat | r     | R     |
|        | text         | q     | Q     |
|        | end_group    |       |       |
""") == [("xlsform.unclosed_group", "survey", 2, "type"),
         ("xlsform.unclosed_group", "survey", 3, "type"),
         ("xlsform.unmatched_end", "survey", 5, "type")]


def test_names_missing_invalid_or_reserved():
    assert lint_md("""
| survey |
|        | type    | name  | label |
|        | integer |       | Age   |
|        | text    | 1job  | Job   |
|        | text    | meta  | Meta  |
|        | note    |       | Hello |
|        | text    | ok    | OK    |
""") == [("xlsform.missing_name", "survey", 2, "name"),
         ("xlsform.invalid_name", "survey", 3, "name"),
         ("xlsform.reserved_name", "survey", 4, "name")]


def test_missing_type_and_calculation():
    assert lint_md("""
| survey |
|        | type      | name | label | calculation |
|        | integer   | age  | Age   |             |
|        |           | job  | Job   |             |
|        | calculate | c    |       |             |
""") == [("xlsform.missing_type", "survey", 3, "type"),
         ("xlsform.missing_calculation", "survey", 4, "calculation")]


@pytest.mark.parametrize("rows", [
    "",
    "|  | note | intro | Hello |\n|  | calculate | c | | \n",
    "|  | begin_group | g | G |\n|  | end_group | | |\n",
    "|  | start | start | |\n|  | deviceid | device | |\n|  | hidden | h | |\n",
])
def test_a_form_needs_a_question(rows):
    md = "| survey |\n|  | type | name | label |\n" + rows
    assert "form.no_questions" in codes(md.replace("|  | calculate | c | | ",
                                                   "|  | calculate | c | 1 | "))


@pytest.mark.parametrize("question", ["integer", "select_one yn", "acknowledge", "geopoint",
                                      "rank yn", "range", "photo"])
def test_one_question_is_enough(question):
    md = f"""
| survey |
|        | type       | name  | label |
|        | note       | intro | Hello |
|        | {question} | q     | Q     |
| choices |
|         | list_name | name | label |
|         | yn        | yes  | Yes   |
"""
    assert codes(md) == []


@pytest.mark.parametrize("question_type", sorted(QUESTION_TYPE_DICT))
def test_lint_agrees_with_pyxform_on_every_known_type(question_type):
    md = f"""
| survey |
|        | type            | name | label | calculation | trigger |
|        | integer         | q0   | Q0    |             |         |
|        | {question_type} | q1   | Q1    | 1           | ${{q0}} |
| choices |
|         | list_name | name | label |
|         | yn        | yes  | Yes   |
"""
    try:
        convert(BytesIO(md.encode()), file_type=".md")
        accepted = True
    except PyXFormError:
        accepted = False
    issues = codes(md)
    assert "xlsform.unknown_type" not in issues
    if accepted:
        assert issues == []


def test_lint_agrees_with_pyxform_on_the_valid_example_forms():
    examples = sorted(FORMS.glob("*.md"))
    if not examples:
        pytest.skip("no example forms")
    for path in examples:
        convert(BytesIO(path.read_bytes()), file_type=".md")
        assert lint_workbook(read_sheets(path.read_bytes(), "md")) == [], path.name
