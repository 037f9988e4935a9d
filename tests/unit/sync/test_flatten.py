import time
import tracemalloc
from pathlib import Path

import pytest
from lxml import etree

import sync.instance
from forms.xform import parse_xform
from sync.flatten import (
    MAX_EXTRA_PATH,
    MAX_EXTRA_VALUES,
    ROW_COUNT_LIMIT,
    Row,
    flatten,
    split_multiple,
    split_points,
)
from sync.instance import InstanceInvalid, parse_instance, referenced_files
from tests.forms_corpus import compile_md, md_to_xform

SUBMISSIONS = Path(__file__).parents[2] / "data" / "submissions"
ID = "uuid:6f1c3b5e-2d4a-4b8e-9c61-0a7e5d3f9b12"
JR = 'xmlns:jr="http://openrosa.org/javarosa"'


@pytest.fixture(scope="module")
def household():
    return parse_xform(compile_md("household_migration")).schema


@pytest.fixture(scope="module")
def border():
    return parse_xform(compile_md("border_monitoring")).schema


def rows_of(xml: bytes | str, schema, **kwargs) -> list[Row]:
    data = xml.encode() if isinstance(xml, str) else xml
    return flatten(parse_instance(data), schema, **kwargs)


def by_key(rows: list[Row]) -> dict[str, Row]:
    return {r.key: r for r in rows}


def household_xml(body: str, instance_id: str = "uuid:h") -> str:
    return (f'<data id="household_migration" version="2024061201" {JR}>{body}'
            f"<meta><instanceID>{instance_id}</instanceID></meta></data>")


# -- the household: nested repeats -------------------------------------------------------

def test_flatten__household_has_one_row_per_submission_member_stay_and_transfer(household):
    rows = rows_of((SUBMISSIONS / "household_migration.xml").read_bytes(), household)
    assert [(r.table, r.key, r.parent_key, r.position) for r in rows] == [
        (None, ID, None, 1),
        ("/roster", f"{ID}/roster[1]", ID, 1),
        ("/roster", f"{ID}/roster[2]", ID, 2),
        ("/roster/stays_abroad", f"{ID}/roster[2]/stays_abroad[1]", f"{ID}/roster[2]", 1),
        ("/roster/stays_abroad/transfers", f"{ID}/roster[2]/stays_abroad[1]/transfers[1]",
         f"{ID}/roster[2]/stays_abroad[1]", 1),
        ("/roster/stays_abroad/transfers", f"{ID}/roster[2]/stays_abroad[1]/transfers[2]",
         f"{ID}/roster[2]/stays_abroad[1]", 2),
        ("/roster/stays_abroad", f"{ID}/roster[2]/stays_abroad[2]", f"{ID}/roster[2]", 2),
        ("/roster", f"{ID}/roster[3]", ID, 3),
        ("/roster/stays_abroad", f"{ID}/roster[3]/stays_abroad[1]", f"{ID}/roster[3]", 1),
    ]
    assert all(r.extra == {} and not r.extra_truncated for r in rows)


def test_flatten__household_root_row_values(household):
    root = rows_of((SUBMISSIONS / "household_migration.xml").read_bytes(), household)[0]
    assert root.values == {
        "/start": "2024-06-12T09:14:03.120+03:00",
        "/end": "2024-06-12T09:41:57.004+03:00",
        "/deviceid": "collect:Xy12AbCdEf34GhIj",
        "/consent": "OK",
        "/region": "coast",
        "/district": "kilifi",
        "/village": "Mtwapa",
        "/household_gps": "-3.9389183 39.7436209 12.5 4.8",
        "/dwelling_photo": "1718173211000.jpg",
        "/household_size": "3",
        "/thanks": None,
        "/meta/audit": "audit.csv",
        "/meta/instanceID": ID,
    }


def test_flatten__repeat_rows_hold_their_own_fields_including_those_in_groups(household):
    rows = by_key(rows_of((SUBMISSIONS / "household_migration.xml").read_bytes(), household))
    assert rows[f"{ID}/roster[1]"].values == {
        "/roster/member_name": "Amina Said",
        "/roster/member_age": "47",
        "/roster/member_sex": "female",
        "/roster/livelihood/income_sources": "farming remittances",
        "/roster/livelihood/monthly_income": "12000",
        "/roster/ever_abroad": "no",
    }
    assert rows[f"{ID}/roster[3]"].values["/roster/livelihood/income_sources"] is None
    assert rows[f"{ID}/roster[3]"].values["/roster/livelihood/monthly_income"] is None
    assert rows[f"{ID}/roster[2]/stays_abroad[1]"].values == {
        "/roster/stays_abroad/destination": "sa",
        "/roster/stays_abroad/year_left": "2019",
        "/roster/stays_abroad/reasons_ranked": "work family study",
        "/roster/stays_abroad/job/occupation": "Driver @ Almarai depot",
        "/roster/stays_abroad/job/wage_usd": "450",
    }
    assert rows[f"{ID}/roster[2]/stays_abroad[1]/transfers[2]"].values == {
        "/roster/stays_abroad/transfers/transfer_date": "2019-12-20",
        "/roster/stays_abroad/transfers/amount_kes": "22000.5",
        "/roster/stays_abroad/transfers/transfer_channel": "bank",
    }


def test_flatten__edit_keys_rows_by_its_own_instance_id_and_keeps_deprecated_id_out_of_extra(
        household):
    rows = rows_of((SUBMISSIONS / "household_migration_edit.xml").read_bytes(), household)
    new_id = "uuid:0b9d7e21-8c3f-4a55-b6d2-5e14f7a0c3d8"
    assert [r.key for r in rows] == [new_id, f"{new_id}/roster[1]"]
    assert rows[0].extra == {}
    assert rows[1].values["/roster/member_age"] == "48"


def test_flatten__absent_repeat_fields_are_none(household):
    rows = rows_of(household_xml("<roster><member_name>Solo</member_name></roster>"), household)
    assert rows[1].values == {
        "/roster/member_name": "Solo",
        "/roster/member_age": None,
        "/roster/member_sex": None,
        "/roster/livelihood/income_sources": None,
        "/roster/livelihood/monthly_income": None,
        "/roster/ever_abroad": None,
    }
    assert rows[0].values["/village"] is None


def test_flatten__jr_template_copies_are_ignored_and_not_counted(household):
    xml = household_xml(
        '<roster jr:template=""><member_name>template</member_name></roster>'
        "<roster><member_name>A</member_name>"
        '<stays_abroad jr:template=""><destination>x</destination></stays_abroad>'
        "<stays_abroad><destination>qa</destination></stays_abroad></roster>")
    rows = rows_of(xml, household)
    assert [(r.key, r.position) for r in rows] == [
        ("uuid:h", 1), ("uuid:h/roster[1]", 1), ("uuid:h/roster[1]/stays_abroad[1]", 1)]
    assert rows[1].values["/roster/member_name"] == "A"
    assert all(r.extra == {} for r in rows)


def test_flatten__positions_count_per_parent_even_when_repeats_are_interleaved(household):
    xml = household_xml(
        "<roster><member_name>A</member_name></roster><village>V</village>"
        "<roster><stays_abroad/><ever_abroad>yes</ever_abroad><stays_abroad/></roster>")
    assert [r.key for r in rows_of(xml, household)] == [
        "uuid:h", "uuid:h/roster[1]", "uuid:h/roster[2]", "uuid:h/roster[2]/stays_abroad[1]",
        "uuid:h/roster[2]/stays_abroad[2]"]


# -- Central's key format with groups around repeats -------------------------------------

GROUPED_REPEATS = """
| survey |
| | type         | name    | label   |
| | begin_group  | hh      | House   |
| | begin_repeat | members | Members |
| | text         | name    | Name    |
| | begin_group  | work    | Work    |
| | begin_repeat | jobs    | Jobs    |
| | text         | title   | Title   |
| | end_repeat   |         |         |
| | end_group    |         |         |
| | end_repeat   |         |         |
| | end_group    |         |         |
"""


def test_flatten__keys_name_the_groups_between_repeats_as_central_does():
    schema = parse_xform(md_to_xform(GROUPED_REPEATS)).schema
    xml = ('<data id="grouped"><hh><members><name>A</name><work>'
           "<jobs><title>t1</title></jobs><jobs><title>t2</title></jobs></work></members>"
           "</hh><meta><instanceID>uuid:g</instanceID></meta></data>")
    rows = rows_of(xml, schema)
    assert [(r.table, r.key, r.parent_key, r.position) for r in rows] == [
        (None, "uuid:g", None, 1),
        ("/hh/members", "uuid:g/hh/members[1]", "uuid:g", 1),
        ("/hh/members/work/jobs", "uuid:g/hh/members[1]/work/jobs[1]", "uuid:g/hh/members[1]", 1),
        ("/hh/members/work/jobs", "uuid:g/hh/members[1]/work/jobs[2]", "uuid:g/hh/members[1]", 2),
    ]
    assert rows[3].values == {"/hh/members/work/jobs/title": "t2"}


# -- values ------------------------------------------------------------------------------

def test_flatten__geo_values_are_kept_as_sent(border):
    rows = rows_of((SUBMISSIONS / "border_monitoring.xml").read_bytes(), border)
    assert len(rows) == 1
    values = rows[0].values
    assert values["/crossing_point"] == "9.0301 38.7402 2355.0 5.0"
    assert values["/route"] == (
        "9.0301 38.7402 2355.0 5.0;9.0405 38.7511 2360.2 4.0; 9.0512 38.7633 2371.9 3.0")
    assert split_points(values["/route"]) == [
        "9.0301 38.7402 2355.0 5.0", "9.0405 38.7511 2360.2 4.0", "9.0512 38.7633 2371.9 3.0"]
    assert len(split_points(values["/camp_area"])) == 4
    assert values["/passport_scan"] == "P<KENMWANGI<<JOHN<KAMAU<<<"
    assert values["/crossing_time"] == "14:32:00.000+03:00"
    assert values["/meta/instanceID"] == "uuid:3a8f0c44-71b2-4e09-8d5a-c2e6b9f41d07"
    assert values["/signature"] == "1718180000005.png"


def test_flatten__free_text_is_kept_as_sent_and_typed_values_are_stripped(household):
    xml = household_xml(
        "<village>  Mtwapa, \u00a0Kilifi \n</village>"
        "<household_gps>\n -3.9 39.7 0 5 \n</household_gps>"
        "<dwelling_photo> 1.jpg </dwelling_photo>"
        "<roster><member_name>   </member_name><member_age>\n 47 \n</member_age>"
        "<member_sex>  </member_sex>"
        "<livelihood><income_sources> farming  wages </income_sources></livelihood></roster>")
    root, member = rows_of(xml, household)
    assert root.values["/village"] == "  Mtwapa, \u00a0Kilifi \n"
    assert root.values["/household_gps"] == "-3.9 39.7 0 5"
    assert root.values["/dwelling_photo"] == "1.jpg"
    assert member.values["/roster/member_name"] == "   "
    assert member.values["/roster/member_age"] == "47"
    assert member.values["/roster/member_sex"] is None
    assert member.values["/roster/livelihood/income_sources"] == "farming  wages"
    assert split_multiple(member.values["/roster/livelihood/income_sources"]) == [
        "farming", "wages"]


def test_flatten__character_references_cdata_and_comments_inside_values(household):
    xml = household_xml(
        "<village>Mt<!-- typo fixed -->wapa &#64; <![CDATA[<coast>]]></village>")
    assert rows_of(xml, household)[0].values["/village"] == "Mtwapa @ <coast>"


def test_split_multiple_and_split_points_tolerate_empty_input():
    assert split_multiple(None) == split_multiple("") == split_multiple("  ") == []
    assert split_multiple("a\tb\n c") == ["a", "b", "c"]
    assert split_points(None) == split_points("") == []
    assert split_points("1 2 3 4;") == ["1 2 3 4"]


# -- extra: nothing sent is lost ---------------------------------------------------------

def test_flatten__unknown_fields_go_to_extra_of_their_row(household):
    xml = household_xml(
        "<old_question>kept</old_question>"
        "<old_group><a>1</a><b><c>2</c></b><a>3</a></old_group>"
        "<roster><member_name>A</member_name><nickname>Ami</nickname>"
        "<livelihood><side_job>tailor</side_job></livelihood>"
        "<stays_abroad><visa>work</visa><job><employer/></job></stays_abroad></roster>")
    root, member, stay = rows_of(xml, household)
    assert root.extra == {
        "/old_question": "kept", "/old_group/a": "1", "/old_group/b/c": "2",
        "/old_group/a[2]": "3"}
    assert member.extra == {"/roster/nickname": "Ami", "/roster/livelihood/side_job": "tailor"}
    assert stay.extra == {"/roster/stays_abroad/visa": "work",
                          "/roster/stays_abroad/job/employer": ""}
    assert member.values["/roster/member_name"] == "A"


def test_flatten__second_copies_of_non_repeat_elements_go_to_extra(household):
    xml = household_xml(
        "<village>first</village><village>second</village><village>third</village>"
        "<roster><livelihood><monthly_income>1</monthly_income></livelihood>"
        "<livelihood><monthly_income>2</monthly_income><x>y</x></livelihood></roster>"
        "<meta><instanceID>uuid:dup</instanceID></meta>")
    root, member = rows_of(xml, household)
    assert root.values["/village"] == "first"
    assert root.key == root.values["/meta/instanceID"] == "uuid:dup"
    assert root.extra == {"/village[2]": "second", "/village[3]": "third",
                          "/meta[2]/instanceID": "uuid:h"}
    assert member.values["/roster/livelihood/monthly_income"] == "1"
    assert member.extra == {"/roster/livelihood[2]/monthly_income": "2",
                            "/roster/livelihood[2]/x": "y"}


def test_flatten__elements_inside_a_leaf_go_to_extra(household):
    xml = household_xml("<village>Mtwapa<ward>3</ward> north</village>")
    root = rows_of(xml, household)[0]
    assert root.values["/village"] == "Mtwapa north"
    assert root.extra == {"/village/ward": "3"}


def test_flatten__instance_name_outside_the_schema_is_not_extra(household):
    xml = ('<data id="household_migration"><meta><instanceID>uuid:n</instanceID>'
           "<instanceName>Said household</instanceName></meta></data>")
    assert rows_of(xml, household)[0].extra == {}


def test_flatten__namespaced_elements_match_by_local_name(household):
    xml = ('<data id="household_migration" xmlns:orx="http://openrosa.org/xforms">'
           "<orx:meta><orx:audit>audit.csv</orx:audit><orx:instanceID>uuid:o</orx:instanceID>"
           "</orx:meta></data>")
    root = rows_of(xml, household)[0]
    assert root.values["/meta/instanceID"] == "uuid:o"
    assert root.values["/meta/audit"] == "audit.csv"


# -- keys --------------------------------------------------------------------------------

def test_flatten__a_caller_key_is_used_when_the_submission_has_no_instance_id(household):
    xml = '<data id="household_migration"><roster/></data>'
    rows = rows_of(xml, household, key="uuid:server-made")
    assert [r.key for r in rows] == ["uuid:server-made", "uuid:server-made/roster[1]"]
    with pytest.raises(ValueError):
        rows_of(xml, household)


def test_flatten__refuses_an_encrypted_envelope(household):
    envelope = (SUBMISSIONS / "exit_interview_encrypted.xml").read_bytes()
    with pytest.raises(ValueError) as exc:
        rows_of(envelope, household)
    assert not isinstance(exc.value, InstanceInvalid)


# -- hostile shapes ----------------------------------------------------------------------

def test_flatten__too_many_repeat_rows_are_refused(household):
    at_limit = household_xml("<roster/>" * ROW_COUNT_LIMIT)
    assert len(rows_of(at_limit, household)) == ROW_COUNT_LIMIT + 1
    with pytest.raises(InstanceInvalid) as exc:
        rows_of(household_xml("<roster/>" * (ROW_COUNT_LIMIT + 1)), household)
    assert exc.value.code == "instance.too_many_rows"
    nested = household_xml("<roster>" + "<stays_abroad><transfers/><transfers/></stays_abroad>"
                           * 2 + "</roster>")
    with pytest.raises(InstanceInvalid):
        rows_of(nested, household, row_count_limit=6)
    assert len(rows_of(nested, household, row_count_limit=7)) == 8


def test_flatten__deep_unknown_nesting_needs_no_recursion(household):
    depth = 120
    xml = household_xml("<x>" * depth + "deep" + "</x>" * depth)
    root = rows_of(xml, household)[0]
    assert root.extra == {"/x" * depth: "deep"}


def test_flatten__extra_is_capped_in_count(household):
    xml = household_xml("<junk>1</junk>" * (MAX_EXTRA_VALUES + 500))
    root = rows_of(xml, household)[0]
    assert len(root.extra) == MAX_EXTRA_VALUES
    assert root.extra["/junk"] == "1"
    assert root.extra_truncated


def test_flatten__long_names_nested_deep_cannot_blow_up_memory(household):
    # 100 levels of 5,000-character names with 2,000 leaves at the bottom: uncapped paths
    # would total 2,000 x 500 kB = 1 GB.
    name = "n" * 5_000
    xml = household_xml(f"<{name}>" * 100 + "<a/>" * 2_000 + f"</{name}>" * 100)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        root = rows_of(xml, household)[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 2
    assert peak < 50_000_000
    assert root.extra_truncated
    assert all(len(path) <= MAX_EXTRA_PATH for path in root.extra)


# -- one walk over everything at once ----------------------------------------------------

WALKS = """
| survey   |                   |          |          |
|          | type              | name     | label    |
|          | text              | name     | Name     |
|          | select_multiple c | colors   | Colors   |
|          | geopoint          | where    | Where    |
|          | image             | photo    | Photo    |
|          | begin_group       | hh       | HH       |
|          | integer           | size     | Size     |
|          | begin_repeat      | member   | Member   |
|          | text              | m_name   | Name     |
|          | image             | m_photo  | Photo    |
|          | begin_group       | contact  | Contact  |
|          | text              | phone    | Phone    |
|          | audio             | greeting | Greeting |
|          | end_group         |          |          |
|          | begin_repeat      | visit    | Visit    |
|          | date              | when     | When     |
|          | geotrace          | route    | Route    |
|          | end_repeat        |          |          |
|          | end_repeat        |          |          |
|          | end_group         |          |          |
| choices  |                   |          |          |
|          | list_name         | name     | label    |
|          | c                 | red      | Red      |
|          | c                 | blue     | Blue     |
| settings |                   |          |          |
|          | form_id           | version  |          |
|          | walks             | 1        |          |
"""

WALKS_XML = b"""<?xml version="1.0"?>
<data id="walks" version="1" xmlns:jr="http://openrosa.org/javarosa"
      xmlns:orx="http://openrosa.org/xforms" xmlns:x="urn:x">
  <name> Amina <!-- c --> Juma </name>
  <colors> red  blue </colors>
  <where>
 -1.2 36.8 1700 5 </where>
  <photo> p.jpg </photo>
  <x:photo>second.jpg</x:photo>
  <hh>
    <size>4<?pi x?></size>
    <member jr:template=""><m_name>template</m_name><m_photo>t.jpg</m_photo></member>
    <member>
      <m_name>A</m_name><m_photo>a.jpg</m_photo>
      <contact><phone>1</phone><greeting>a.m4a</greeting></contact>
      <contact><phone>2</phone><greeting>a2.m4a</greeting></contact>
      <visit><when> 2024-01-02 </when><route>1 2 0 0;3 4 0 0; 5 6 0 0</route></visit>
      <visit jr:template=""><when>template</when></visit>
      <visit><when/><route/><note>late</note></visit>
    </member>
    <x:member>
      <m_name>B<sub>x</sub><sub jr:template="">t</sub><sub>y</sub><other/></m_name>
      <m_photo>a.jpg</m_photo>
      <contact jr:template=""><greeting>t.m4a</greeting></contact>
      <old><q>1</q><q>2</q><r><s/></r></old>
    </x:member>
  </hh>
  <hh><size>9</size></hh>
  <orx:meta><orx:instanceID>uuid:w</orx:instanceID><orx:instanceName>n</orx:instanceName>
    <orx:deprecatedID>uuid:v</orx:deprecatedID><audit>x.csv</audit></orx:meta>
</data>"""


def walks_rows() -> list[tuple]:
    schema = parse_xform(md_to_xform(WALKS)).schema
    return [(r.table, r.key, r.parent_key, r.position, list(r.values.items()),
             list(r.extra.items()), r.extra_truncated) for r in rows_of(WALKS_XML, schema)]


def test_flatten__groups_repeats_templates_namespaces_and_junk_in_one_submission():
    member = "/hh/member"
    assert walks_rows() == [
        (None, "uuid:w", None, 1,
         [("/name", " Amina  Juma "), ("/colors", "red  blue"), ("/where", "-1.2 36.8 1700 5"),
          ("/photo", "p.jpg"), ("/hh/size", "4"), ("/meta/instanceID", "uuid:w")],
         [("/photo[2]", "second.jpg"), ("/hh[2]/size", "9"), ("/meta/audit", "x.csv")],
         False),
        (member, "uuid:w/hh/member[1]", "uuid:w", 1,
         [(f"{member}/m_name", "A"), (f"{member}/m_photo", "a.jpg"),
          (f"{member}/contact/phone", "1"), (f"{member}/contact/greeting", "a.m4a")],
         [(f"{member}/contact[2]/phone", "2"), (f"{member}/contact[2]/greeting", "a2.m4a")],
         False),
        (f"{member}/visit", "uuid:w/hh/member[1]/visit[1]", "uuid:w/hh/member[1]", 1,
         [(f"{member}/visit/when", "2024-01-02"),
          (f"{member}/visit/route", "1 2 0 0;3 4 0 0; 5 6 0 0")],
         [], False),
        (f"{member}/visit", "uuid:w/hh/member[1]/visit[2]", "uuid:w/hh/member[1]", 2,
         [(f"{member}/visit/when", None), (f"{member}/visit/route", None)],
         [(f"{member}/visit/note", "late")], False),
        (member, "uuid:w/hh/member[2]", "uuid:w", 2,
         [(f"{member}/m_name", "B"), (f"{member}/m_photo", "a.jpg"),
          (f"{member}/contact/phone", None), (f"{member}/contact/greeting", None)],
         # Elements inside a value are recorded last first.
         [(f"{member}/m_name/other", ""), (f"{member}/m_name/sub[2]", "y"),
          (f"{member}/m_name/sub", "x"), (f"{member}/old/q", "1"), (f"{member}/old/q[2]", "2"),
          (f"{member}/old/r/s", "")],
         False),
    ]


def test_flatten__rows_are_the_same_when_the_template_scan_cannot_run(monkeypatch):
    expected = walks_rows()

    def overflow(root):  # what libxml2 does past ten million elements in one step
        raise etree.XPathEvalError("unknown error")

    monkeypatch.setattr(sync.instance, "_ANY_TEMPLATE", overflow)
    assert walks_rows() == expected


def test_referenced_files__of_the_same_submission_include_second_copies_of_groups():
    schema = parse_xform(md_to_xform(WALKS)).schema
    # flatten puts /photo[2] and /hh/member/contact[2] in extra; their files still count.
    assert referenced_files(parse_instance(WALKS_XML), schema) == [
        "p.jpg", "second.jpg", "a.jpg", "a.m4a", "a2.m4a"]
