"""The form library's forms: built from their sources byte for byte, compiled by dodoso's
pipeline and ODK Validate, bilingual throughout, consent first with an early end, PII kept
to the minimum, impossible answers refused, entities declared. Each form is compiled once
per session (tests/support/library.py)."""

from __future__ import annotations

import csv
import io
import re

import pytest
from lxml import etree
from openpyxl import load_workbook

import forms.library
from forms.library import FORMS, MEDIA_DIR, LibraryForm, get
from forms.library.build import (
    SourceError,
    build_all,
    build_form,
    read_table,
    sheets,
)
from forms.schema import Field, FormSchema
from forms.validate import java_available
from tests.support.library import FORM_IDS, prepared

EN, SW = "English (en)", "Kiswahili (sw)"
XF = "http://www.w3.org/2002/xforms"
needs_java = pytest.mark.skipif(not java_available("java"), reason="ODK Validate needs Java")


def schema(form_id: str) -> FormSchema:
    return prepared(form_id).info.schema


def binds(form_id: str) -> dict[str, dict[str, str]]:
    """Field path (``/grp/q``) → its bind's attributes (local names)."""
    root = etree.fromstring(prepared(form_id).xform)
    out = {}
    for bind in root.iterfind(f".//{{{XF}}}bind"):
        path = "/" + "/".join(bind.get("nodeset", "").split("/")[2:])
        out[path] = {etree.QName(k).localname: v for k, v in bind.attrib.items()}
    return out


def squash(expression: str | None) -> str:
    """An expression without spaces and with ``/data/a/b`` as written by pyxform."""
    return re.sub(r"\s+", "", expression or "")


def asked(s: FormSchema) -> list[Field]:
    """What the respondent or enumerator sees: questions, groups and repeats, not
    calculations or metadata."""
    return [f for f in s.fields if f.kind in ("question", "group", "repeat")
            and f.calculate is None]


# -- sources and build ---------------------------------------------------------------------

def test_build__committed_workbooks_and_media_match_their_sources():
    """Run ``python -m forms.library.build`` after editing a source."""
    built = build_all()
    assert {p.name for p in built} == {f.xlsx_path.name for f in FORMS} | {
        "countries.csv", "ug_districts.csv", "tz_councils.csv"}
    for form in FORMS:
        committed = load_workbook(io.BytesIO(form.xlsx_path.read_bytes()))
        for name, table in sheets(form).items():
            rows = [["" if c is None else str(c) for c in row]
                    for row in committed[name].iter_rows(values_only=True)]
            assert rows == [table.header, *table.rows], (form.form_id, name)
    stale = [p.name for p, data in built.items() if p.read_bytes() != data]
    assert stale == []


def test_build__is_byte_for_byte_repeatable():
    form = get("returnee_rss")
    assert build_form(form) == build_form(form) == form.xlsx_path.read_bytes()


def test_build__check_mode_reports_a_stale_file(tmp_path, monkeypatch, capsys):
    from forms.library import build

    stale = tmp_path / "returnee_rss.xlsx"
    stale.write_bytes(b"an older build")
    form = get("returnee_rss")
    monkeypatch.setattr(build, "build_all", lambda: {stale: build_form(form)})
    assert build.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert stale.read_bytes() == b"an older build"
    assert build.main([]) == 0
    assert stale.read_bytes() == build_form(form)


def test_read_table__escaped_bars_notes_and_ragged_rows(tmp_path):
    path = tmp_path / "survey.md"
    path.write_text("# notes are ignored\n\n| type | calculation |\n|---|---|\n"
                    "| calculate | if(${a} = 1, 'x\\|y', '') |\n", encoding="utf-8")
    table = read_table(path)
    assert table.header == ["type", "calculation"]
    assert table.rows == [["calculate", "if(${a} = 1, 'x|y', '')"]]
    path.write_text("| type | name |\n|---|---|\n| text |\n", encoding="utf-8")
    with pytest.raises(SourceError, match="line 3"):
        read_table(path)
    path.write_text("no table here\n", encoding="utf-8")
    with pytest.raises(SourceError, match="no table"):
        read_table(path)


def test_build__a_list_nobody_defines_is_refused(tmp_path, monkeypatch):
    form_dir = tmp_path / "tiny"
    form_dir.mkdir()
    (form_dir / "survey.md").write_text(
        "| type | name | label::English (en) | label::Kiswahili (sw) |\n|---|---|---|---|\n"
        "| select_one no_such_list | q | Q | Q |\n", encoding="utf-8")
    (form_dir / "settings.md").write_text("| form_id | version |\n|---|---|\n| tiny | 1 |\n",
                                          encoding="utf-8")
    monkeypatch.setattr(forms.library, "LIBRARY_DIR", tmp_path)
    with pytest.raises(SourceError, match="no_such_list"):
        build_form(LibraryForm("tiny", "Tiny", "A test form."))


def test_build__a_file_the_registry_does_not_list_is_refused(tmp_path, monkeypatch):
    form_dir = tmp_path / "tiny"
    form_dir.mkdir()
    (form_dir / "survey.md").write_text(
        "| type | name | label |\n|---|---|---|\n"
        "| select_one_from_file countries.csv | c | Country |\n", encoding="utf-8")
    (form_dir / "settings.md").write_text("| form_id |\n|---|\n| tiny |\n", encoding="utf-8")
    monkeypatch.setattr(forms.library, "LIBRARY_DIR", tmp_path)
    with pytest.raises(SourceError, match="countries.csv"):
        build_form(LibraryForm("tiny", "Tiny", "A test form."))
    assert build_form(LibraryForm("tiny", "Tiny", "A test form.", media=("countries.csv",)))


# -- compile and validate ------------------------------------------------------------------

@needs_java
@pytest.mark.parametrize("form_id", FORM_IDS)
def test_form__compiles_without_warnings_and_passes_odk_validate(form_id):
    form = get(form_id)
    result = prepared(form_id)  # validate=True where Java runs: a refusal raises FormInvalid
    assert result.warnings == []
    info = result.info
    assert (info.form_id, info.title, info.version) == (form_id, form.title, form.version)
    assert re.fullmatch(r"20\d{6}\d{2}", info.version)  # yyyymmddNN
    assert info.encryption_key is None
    assert info.schema.field("/meta/instanceName") is not None  # instance_name is set
    assert {m.name for m in info.media} == set(form.media) | {
        f"{name}.csv" for name in form.entity_lists}


@pytest.mark.parametrize("form_id", FORM_IDS)
def test_form__every_label_hint_and_message_in_english_and_kiswahili(form_id):
    s = schema(form_id)
    assert s.languages == (EN, SW)
    assert s.default_language == EN
    for f in asked(s):
        if f.kind == "repeat" and not f.labels:
            continue  # pyxform labels the group around a repeat, not the repeat itself
        assert f.labels.get(EN) and f.labels.get(SW), f.path
    for name, choice_list in s.choice_lists.items():
        for choice in choice_list.choices:
            assert choice.labels.get(EN) and choice.labels.get(SW), (name, choice.value)
    root = etree.fromstring(prepared(form_id).xform)
    texts = {t.get("lang"): {x.get("id") for x in t.iterfind(f"{{{XF}}}text")}
             for t in root.iterfind(f".//{{{XF}}}itext/{{{XF}}}translation")}
    assert texts[EN] == texts[SW]
    for bind in root.iterfind(f".//{{{XF}}}bind"):
        if bind.get("constraint") is not None:
            message = bind.get("{http://openrosa.org/javarosa}constraintMsg") or ""
            assert message.startswith("jr:itext("), bind.get("nodeset")
    hints = [el for el in root.iter(f"{{{XF}}}hint")]
    assert all((h.get("ref") or "").startswith("jr:itext(") for h in hints)


def test_media__every_file_choice_has_both_names():
    with (MEDIA_DIR / "countries.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert all(r["label_en"] and r["label_sw"] and r["label"] for r in rows)
    # JavaRosa shows one label column whatever the form language: it carries both names.
    assert all(r["label"] == (r["label_en"] if r["label_en"] == r["label_sw"]
                              else f"{r['label_en']} / {r['label_sw']}") for r in rows)
    with (MEDIA_DIR / "ug_districts.csv").open(encoding="utf-8") as f:
        assert all(r["label"] and r["parent"] for r in csv.DictReader(f))
    with (MEDIA_DIR / "tz_councils.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert all(r["region"] and r["label"] == f"{r['label_en']} / {r['label_sw']}" for r in rows)


# -- Tanzanian councils: chosen from the region's list, with an escape ---------------------------

COUNCIL_FORMS = {"hh_migration_remittances": ("region", "council_code", "council_other"),
                 "returnee_rss": ("region", "council_code", "council_other"),
                 "remittance_corridor_intercept": (
                     "site_region_tz", "site_council_code_tz", "site_council_other_tz")}


def test_councils__chosen_from_the_regions_list_with_an_escape_named_in_text():
    from tests.support.library import ANSWERS

    asking = {f.form_id for f in FORMS if "select_one_from_file tz_councils.csv"
              in read_table(f.directory / "survey.md").column("type")}
    assert asking == set(COUNCIL_FORMS)
    with (MEDIA_DIR / "tz_councils.csv").open(encoding="utf-8") as f:
        regions = {r["name"]: r["region"] for r in csv.DictReader(f)}
    for form_id, (region, council, other) in COUNCIL_FORMS.items():
        form = get(form_id)
        assert "tz_councils.csv" in form.media
        survey = read_table(form.directory / "survey.md")
        rows = {r[1]: dict(zip(survey.header, r, strict=True)) for r in survey.rows}
        assert rows[region]["type"] == "select_one tz_region"
        assert rows[council]["type"] == "select_one_from_file tz_councils.csv"
        assert rows[council]["choice_filter"] == f"region = ${{{region}}}"
        assert rows[other]["type"] == "text"
        # The free-text council of earlier versions is not asked any more.
        assert not {"council", "site_council_tz"} & set(rows)
        s, b = schema(form_id), binds(form_id)
        code = next(f for f in s.fields if f.name == council)
        where = next(f for f in s.fields if f.name == region).path
        root = etree.fromstring(prepared(form_id).xform)
        (itemset,) = [i for i in root.iter(f"{{{XF}}}itemset")
                      if "instance('tz_councils')" in i.get("nodeset", "")]
        assert squash(itemset.get("nodeset")) == (
            f"instance('tz_councils')/root/item[region=/data{where}]")
        named = next(f for f in s.fields if f.name == other)
        assert squash(b[named.path]["relevant"]) == f"starts-with(/data{code.path},'other_')"
        # The filled-in submissions of the tests answer a council of the region they answer.
        assert regions[ANSWERS[council]] == ANSWERS[region]


# -- consent, privacy, constraints ---------------------------------------------------------

@pytest.mark.parametrize("form_id", FORM_IDS)
def test_form__consent_comes_first_and_a_refusal_ends_the_interview(form_id):
    s = schema(form_id)
    consent = s.field("/grp_consent/consent")
    assert consent is not None and consent.required
    body = [f for f in asked(s) if f.group is None]
    assert body[0].path == "/grp_consent"
    yes, not_yes = "/grp_consent/consent='yes'", "/grp_consent/consent!='yes'"
    end = s.field("/end_refusal")
    assert end is not None and squash(end.relevant).endswith(not_yes)
    for f in body[1:]:
        if f.path != "/end_refusal":
            # Unanswered consent (an under-age respondent, no privacy) is not 'yes' either.
            assert yes in squash(f.relevant), f.path
    inside = [f for f in asked(s) if f.group == "/grp_consent"]
    after = inside[[f.path for f in inside].index("/grp_consent/consent") + 1:]
    assert after and all("/grp_consent/consent=" in squash(f.relevant) for f in after)


def _relevant_chain(s: FormSchema, f: Field) -> str:
    conditions = []
    while f is not None:
        conditions.append(squash(f.relevant))
        f = s.field(f.group) if f.group else None
    return " & ".join(conditions)


@pytest.mark.parametrize("form_id", FORM_IDS)
def test_form__minimal_pii(form_id):
    s = schema(form_id)
    types = {f.type for f in s.fields}
    assert not types & {"geopoint", "geotrace", "geoshape", "binary"}  # no GPS, photos
    names = {f.name for f in s.fields}
    assert not names & {"deviceid", "simserial", "phonenumber", "dob", "date_of_birth",
                        "name", "respondent_name", "full_name", "nida_number"}
    for f in s.fields:
        if "phone" in f.name or "email" in f.name:
            assert "/consent_recontact='yes'" in _relevant_chain(s, f), f.path


@pytest.mark.parametrize("form_id", FORM_IDS)
def test_form__numbers_and_years_are_bounded(form_id):
    s, b = schema(form_id), binds(form_id)
    for f in s.questions():
        if f.type in ("int", "decimal") and f.calculate is None:
            constraint = squash(b[f.path].get("constraint"))
            assert re.search(r"\.>=?0|\.>=|\.<=", constraint), (f.path, constraint)
        if f.type == "decimal" and f.calculate is None:
            assert ".>=0" in squash(b[f.path]["constraint"]) or ".>0" in squash(
                b[f.path]["constraint"]), f.path
        if f.name in ("yob", "year_left", "year_return", "emig_year_left", "rc_year_left",
                      "year_left_tz"):
            assert "format-date(today(),'%Y')" in squash(b[f.path]["constraint"]), f.path


def test_hh__return_cannot_precede_departure_and_work_fits_the_stay():
    b = binds("hh_migration_remittances")
    mig = "/grp_roster/hh_member"
    assert ".>=../year_left" in squash(b[f"{mig}/year_return"]["constraint"])
    assert "(../year_return-../year_left+1)*12" in squash(
        b[f"{mig}/months_worked_abroad"]["constraint"])
    # The roster has one row per member counted.
    roster = etree.fromstring(prepared("hh_migration_remittances").xform)
    repeat = roster.find(f".//{{{XF}}}repeat")
    assert squash(repeat.get("{http://openrosa.org/javarosa}count")) == "/data/grp_location/hh_size"


def test_monitoring__end_not_before_start_and_returnee_not_back_before_leaving():
    b = binds("mida_assignment_monitoring")
    assert ".>=/data/grp_assignment/start_date" in squash(
        b["/grp_assignment/end_date"]["constraint"])
    r = binds("returnee_rss")
    assert ">=/data/grp_case/year_left" in squash(r["/grp_case/return_date"]["constraint"])


def test_intercept__someone_interviewed_before_is_not_asked_again():
    s = schema("remittance_corridor_intercept")
    assert "/grp_consent/interviewed_before='no'" in squash(
        s.field("/grp_consent/consent").relevant)


# -- entities ---------------------------------------------------------------------------------

def test_registry__registers_experts_without_their_contact_details():
    registry = get("diaspora_skills_profile")
    (entity,) = prepared(registry.form_id).info.entities
    assert entity.dataset == registry.registers == "diaspora_experts"
    assert entity.actions == ("create",)
    properties = dict(entity.properties)
    assert properties["/expert_code"] == "expert_code"
    assert not any("contact" in path or "email" in path or "phone" in path
                   for path in properties)


def test_monitoring__follows_up_and_updates_the_registry_entity():
    monitoring = get("mida_assignment_monitoring")
    info = prepared(monitoring.form_id).info
    assert monitoring.entity_lists == ("diaspora_experts",)
    (entity,) = info.entities
    assert (entity.dataset, entity.actions) == ("diaspora_experts", ("update",))
    assert dict(entity.properties) == {"/grp_satisfaction/assignment_status": "placement_status"}
    assert info.schema.choice_lists["diaspora_experts"].source == "file"
    # The code the registry shows the expert is what the monitor types when offline.
    manual = binds(monitoring.form_id)["/grp_assignment/expert_code_manual"]["constraint"]
    assert "^DX-[0-9a-f]{8}$" in manual
    code = binds("diaspora_skills_profile")["/expert_code"]["calculate"]
    assert squash(code) == "once(concat('DX-',substr(uuid(),0,8)))"
