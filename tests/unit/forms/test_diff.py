from forms.diff import check_compatible, diff_schemas
from forms.schema import FormSchema
from forms.xform import parse_xform
from tests.forms_corpus import md_to_xform

EN, SW = "English (en)", "Kiswahili (sw)"


def schema(md: str) -> FormSchema:
    return parse_xform(md_to_xform(md)).schema


V1_MD = """
| survey |
| | type | name | label |
| | text | worker | Worker name |
| | integer | age | Age |
| | text | passport_no | Passport number |
| | select_one country | destination | Destination |
| choices |
| | list_name | name | label |
| | country | sa | Saudi Arabia |
| | country | qa | Qatar |
"""
V1 = schema(V1_MD)


def test_diff__identical_versions_have_no_changes():
    diff = diff_schemas(V1, V1)
    assert diff.to_json() == {
        "added": [], "removed": [], "moved": [], "retyped": [], "choiceListsChanged": [],
        "breaking": [],
    }


def test_diff__field_added_and_removed():
    v2 = schema("""
    | survey |
    | | type | name | label |
    | | text | worker | Worker name |
    | | integer | age | Age |
    | | select_one country | destination | Destination |
    | | decimal | recruitment_fee | Fee paid |
    | choices |
    | | list_name | name | label |
    | | country | sa | Saudi Arabia |
    | | country | qa | Qatar |
    """)
    diff = diff_schemas(V1, v2)
    assert [f.path for f in diff.added] == ["/recruitment_fee"]
    assert [f.path for f in diff.removed] == ["/passport_no"]
    assert diff.moved == diff.retyped == diff.choice_lists_changed == []
    assert diff.to_json()["added"] == [{"path": "/recruitment_fee", "type": "decimal"}]


def test_diff__int_to_string_is_allowed():
    v2 = schema(V1_MD.replace("| | integer | age | Age |", "| | text | age | Age |"))
    diff = diff_schemas(V1, v2)
    assert [(r.path, r.old_type, r.new_type, r.allowed) for r in diff.retyped] == [
        ("/age", "int", "string", True)]
    assert diff.breaking == []
    assert check_compatible([V1], v2) == []


def test_diff__string_to_int_is_breaking_and_named():
    v2 = schema(V1_MD.replace("| | text | passport_no |", "| | integer | passport_no |"))
    diff = diff_schemas(V1, v2)
    assert [(r.path, r.old_type, r.new_type) for r in diff.breaking] == [
        ("/passport_no", "string", "int")]
    assert diff.to_json()["breaking"] == ["/passport_no"]
    [issue] = check_compatible([V1], v2)
    assert (issue.level, issue.code) == ("error", "form.field_retyped")
    assert "/passport_no" in issue.message
    assert "string" in issue.message and "int" in issue.message


def test_diff__select_one_to_select_multiple_is_breaking():
    v2 = schema(V1_MD.replace("select_one country", "select_multiple country"))
    assert [(r.old_type, r.new_type) for r in diff_schemas(V1, v2).breaking] == [
        ("select1", "select")]


def test_diff__moved_into_a_repeat():
    v2 = schema("""
    | survey |
    | | type | name | label |
    | | text | worker | Worker name |
    | | text | passport_no | Passport number |
    | | select_one country | destination | Destination |
    | | begin_repeat | siblings | Siblings abroad |
    | | integer | age | Age |
    | | end_repeat | | |
    | choices |
    | | list_name | name | label |
    | | country | sa | Saudi Arabia |
    | | country | qa | Qatar |
    """)
    diff = diff_schemas(V1, v2)
    assert [(m.old.path, m.new.path, m.old.repeat, m.new.repeat) for m in diff.moved] == [
        ("/age", "/siblings/age", None, "/siblings")]
    assert [f.path for f in diff.added] == ["/siblings"]
    assert diff.removed == []
    assert diff.to_json()["moved"] == [{"from": "/age", "to": "/siblings/age"}]


def test_diff__group_turned_into_repeat_is_breaking_and_moves_its_children():
    old = schema("""
    | survey |
    | | type | name | label |
    | | begin_group | employer | Employer |
    | | text | employer_name | Name |
    | | end_group | | |
    """)
    new = schema("""
    | survey |
    | | type | name | label |
    | | begin_repeat | employer | Employers |
    | | text | employer_name | Name |
    | | end_repeat | | |
    """)
    diff = diff_schemas(old, new)
    assert [(r.path, r.old_type, r.new_type, r.allowed) for r in diff.retyped] == [
        ("/employer", "structure", "repeat", False)]
    assert [(m.old.path, m.new.repeat) for m in diff.moved] == [
        ("/employer/employer_name", "/employer")]


def test_diff__choices_added_removed_and_relabelled():
    old = schema(f"""
    | survey |
    | | type | name | label::{EN} | label::{SW} |
    | | select_one channel | channel | How was money sent? | Pesa ilitumwa vipi? |
    | choices |
    | | list_name | name | label::{EN} | label::{SW} |
    | | channel | mpesa | M-Pesa | M-Pesa |
    | | channel | bank | Bank | Benki |
    | | channel | hawala | Hawala | Hawala |
    """)
    new = schema(f"""
    | survey |
    | | type | name | label::{EN} | label::{SW} |
    | | select_one channel | channel | How was money sent? | Pesa ilitumwa vipi? |
    | choices |
    | | list_name | name | label::{EN} | label::{SW} |
    | | channel | mpesa | M-Pesa | M-Pesa |
    | | channel | bank | Bank transfer | Uhamisho wa benki |
    | | channel | hand | Carried by hand | Kwa mkono |
    """)
    [change] = diff_schemas(old, new).choice_lists_changed
    assert (change.name, change.added, change.removed, change.relabelled) == (
        "channel", ("hand",), ("hawala",), ("bank",))
    assert diff_schemas(old, new).to_json()["choiceListsChanged"] == [{
        "name": "channel", "added": ["hand"], "removed": ["hawala"], "relabelled": ["bank"]}]
    assert diff_schemas(old, new).breaking == []


def test_check_compatible__every_published_version_counts():
    v2 = schema(V1_MD.replace("| | integer | age | Age |", "| | text | age | Age |"))
    v3 = schema(V1_MD.replace("| | integer | age | Age |", "| | decimal | age | Age |"))
    # v3 against v2 alone: string → decimal is already breaking; against v1 too: int → decimal.
    [issue] = check_compatible([V1, v2], v3)
    assert issue.code == "form.field_retyped"
    assert "/age" in issue.message
    assert "int / string" in issue.message and "decimal" in issue.message
    # Going back to int after a string version is refused, though v1 was int.
    assert [i.code for i in check_compatible([V1, v2], V1)] == ["form.field_retyped"]
    assert check_compatible([V1, v2], v2) == []
    assert check_compatible([], v3) == []

