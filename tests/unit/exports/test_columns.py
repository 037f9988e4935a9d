"""The export's column model, from schemas built by hand: Central's layout, the version merge,
names vs labels, geopoints, split select_multiples and file names."""

from __future__ import annotations

import datetime as dt

import pytest

from forms.schema import Choice, ChoiceList, Field, FormSchema
from server.exports.columns import (
    REPEAT_TAIL,
    ROOT_HEAD,
    ROOT_RECORD,
    ROOT_TAIL,
    FormVersion,
    Layout,
    OptionError,
    build,
    merged_fields,
    resolve_language,
    submission_date,
)


def f(path: str, type_: str = "string", *, repeat: str | None = None,
      labels: dict[str, str] | None = None, choices: str | None = None) -> Field:
    name = path.rsplit("/", 1)[1]
    group = path.rsplit("/", 1)[0] or None
    kind = ("repeat" if type_ == "repeat" else "group" if type_ == "structure"
            else "question")
    return Field(path=path, name=name, type=type_, kind=kind, repeat=repeat, group=group,
                 order=0, choice_list=choices, labels=labels or {})


def schema(*fields: Field, lists: dict[str, ChoiceList] | None = None,
           languages: tuple[str, ...] = ()) -> FormSchema:
    return FormSchema(fields=fields, choice_lists=lists or {}, languages=languages,
                      default_language=languages[0] if languages else None)


LANGS = ChoiceList("langs", (Choice("en", {"English (en)": "English", "Kiswahili (sw)":
                                           "Kiingereza"}),
                             Choice("sw", {"English (en)": "Swahili", "Kiswahili (sw)":
                                           "Kiswahili"})), "inline")
FORM = schema(
    f("/name", labels={"English (en)": "Name", "Kiswahili (sw)": "Jina"}),
    f("/age", "int"),
    f("/home", "geopoint", labels={"English (en)": "Home"}),
    f("/langs", "select", choices="langs", labels={"English (en)": "Languages"}),
    f("/g", "structure"),
    f("/g/h", "structure"),
    f("/g/h/deep", "decimal"),
    f("/roster", "repeat"),
    f("/roster/m_name", repeat="/roster"),
    f("/roster/grp", "structure", repeat="/roster"),
    f("/roster/grp/m_age", "int", repeat="/roster"),
    f("/roster/stays", "repeat", repeat="/roster"),
    f("/roster/stays/country", repeat="/roster/stays"),
    f("/meta", "structure"),
    f("/meta/instanceID"),
    lists={"langs": LANGS}, languages=("English (en)", "Kiswahili (sw)"))


def headers(columns, path=""):
    return columns.table(path).headers


def test_build__central_layout_for_root_and_repeats():
    columns = build("survey", [FormVersion("1", FORM)], Layout())
    assert headers(columns) == [
        *ROOT_HEAD, "name", "age", "home-Latitude", "home-Longitude", "home-Altitude",
        "home-Accuracy", "langs", "g-h-deep", "meta-instanceID", *ROOT_TAIL]
    assert headers(columns, "/roster") == ["m_name", "grp-m_age", *REPEAT_TAIL]
    assert headers(columns, "/roster/stays") == ["country", *REPEAT_TAIL]
    assert [t.file_name for t in columns.tables] == [
        "survey.csv", "survey-roster.csv", "survey-stays.csv"]


def test_build__without_group_paths_headers_are_names():
    columns = build("survey", [FormVersion("1", FORM)], Layout(group_paths=False))
    assert "deep" in headers(columns) and "instanceID" in headers(columns)
    assert headers(columns, "/roster")[:2] == ["m_name", "m_age"]


def test_cells__geopoint_split_select_multiple_and_missing_values():
    columns = build("survey", [FormVersion("1", FORM)],
                    Layout(split_select_multiples=True), observed={"/langs": ["fr", "en"]})
    root = columns.root
    assert root.headers[7:11] == ["langs", "langs/en", "langs/sw", "langs/fr"]
    assert root.value_paths == ["/name", "/age", "/home", "/langs", "/g/h/deep",
                                "/meta/instanceID"]
    cells = root.field_cells(["Amina", "3", "1.5 -2.25", "sw fr", None, None])
    assert cells == ["Amina", "3", "1.5", "-2.25", None, None, "sw fr", 0, 1, 1, None, None]
    assert root.field_cells([None] * 6) == [None] * 6 + [None, 0, 0, 0, None, None]
    with pytest.raises(ValueError):
        root.field_cells(["too", "few"])


def test_cells__labels_in_a_language_for_headers_and_choices():
    columns = build("survey", [FormVersion("1", FORM)], Layout(labels=True, language="sw"))
    assert columns.language == "Kiswahili (sw)"
    assert headers(columns)[1:3] == ["Jina", "age"]  # no label: the name
    english = build("survey", [FormVersion("1", FORM)],
                    Layout(labels=True, split_select_multiples=True))
    assert english.language == "English (en)"
    assert "Languages/Swahili" in headers(english) and "Home-Latitude" in headers(english)
    cells = english.root.field_cells([None, None, None, "en sw xx", None, None])
    assert cells[6:9] == ["English; Swahili; xx", 1, 1]


def test_language__full_name_code_or_default_else_refused():
    assert resolve_language([FORM], "Kiswahili (SW)") == "Kiswahili (sw)"
    assert resolve_language([FORM], "en") == "English (en)"
    assert resolve_language([FORM], None) == "English (en)"
    with pytest.raises(OptionError) as refused:
        resolve_language([FORM], "fr")
    assert refused.value.option == "language"
    assert resolve_language([schema(f("/x"))], "default") == "default"


def test_merge__older_fields_follow_their_old_preceding_sibling():
    v1 = schema(f("/a"), f("/b"), f("/gone"), f("/g", "structure"), f("/g/x"), f("/g/old"),
                f("/first_old"))
    v2 = schema(f("/new"), f("/a"), f("/b"), f("/added"), f("/g", "structure"), f("/g/x"))
    merged = [x.path for x in merged_fields([v1, v2])]
    assert merged == ["/new", "/a", "/b", "/gone", "/added", "/g", "/g/x", "/g/old",
                      "/first_old"]
    only_old_first = schema(f("/zero"), f("/a"))
    assert [x.path for x in merged_fields([only_old_first, v2])][:2] == ["/zero", "/new"]


def test_merge__a_group_only_older_versions_had_comes_back_whole():
    v1 = schema(f("/a"), f("/old", "structure"), f("/old/x"), f("/old/y"), f("/z"))
    v2 = schema(f("/a"), f("/z"))
    assert [x.path for x in merged_fields([v1, v2])] == ["/a", "/old", "/old/x", "/old/y",
                                                         "/z"]


def test_build__deleted_fields_only_when_asked():
    v1 = FormVersion("1", schema(f("/a"), f("/gone"), f("/b")))
    v2 = FormVersion("2", schema(f("/a"), f("/b"), f("/c")))
    assert headers(build("x", [v1, v2], Layout()))[1:4] == ["a", "b", "c"]
    assert headers(build("x", [v1, v2], Layout(deleted_fields=True)))[1:5] == [
        "a", "gone", "b", "c"]


def test_build__repeats_sharing_a_name_are_numbered_and_file_names_are_safe():
    form = schema(f("/r", "repeat"), f("/r/x", repeat="/r"), f("/g", "structure"),
                  f("/g/r", "repeat"), f("/g/r/y", repeat="/g/r"))
    columns = build('a:b?"c', [FormVersion("1", form)], Layout())
    assert [t.file_name for t in columns.tables] == ["abc.csv", "abc-r~1.csv", "abc-r~2.csv"]


def test_geo_field__by_path_or_unique_name_else_refused():
    form = schema(f("/p", "geopoint"), f("/t", "geotrace"), f("/g", "structure"),
                  f("/g/q", "geoshape"), f("/r", "repeat"), f("/r/p", "geopoint", repeat="/r"),
                  f("/r/q", "geopoint", repeat="/r"), f("/r/only", "geopoint", repeat="/r"))
    columns = build("x", [FormVersion("1", form)], Layout())
    assert columns.geo_field(None).path == "/p"
    assert columns.geo_field("/r/p").path == "/r/p"
    assert columns.geo_field("t").path == "/t"
    assert columns.geo_field("p").path == "/p"  # a top-level path without its slash
    assert columns.geo_field("only").path == "/r/only"  # a name only one field has
    for wanted in ("q", "/nowhere", "/r"):  # "q" names two fields
        with pytest.raises(OptionError):
            columns.geo_field(wanted)
    with pytest.raises(OptionError):
        build("x", [FormVersion("1", schema(f("/a")))], Layout()).geo_field(None)


def test_submission_date__is_javascripts_iso_string():
    moment = dt.datetime(2026, 11, 28, 6, 5, 4, 123456, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    assert submission_date(moment) == "2026-11-28T03:05:04.123Z"


def test_root_cells__metadata_follows_central():
    columns = build("x", [FormVersion("1", schema(f("/a")))], Layout())

    record = dict(created_at=dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc),
                  review_state="received", device_id=None, submitter_id=7,
                  submitter_name="Tablet", key="uuid:1", encrypted=True, attachments_present=1,
                  attachments_expected=2, form_version="1", edits=0)
    assert list(record) == list(ROOT_RECORD)
    cells = columns.root.root_cells([*record.values(), "v"])
    assert cells == ["2026-01-02T00:00:00.000Z", "v", "uuid:1", 7, "Tablet", 1, 2,
                     "not decrypted", None, None, 0, "1"]
    assert len(cells) == len(columns.root.columns)
