"""The library's reference lists are what the authoritative data says: countries, regions and
currencies as pycountry (ISO) and babel (CLDR) give them today, and the classification files
complete and consistent. Each check derives the expected list on its own from the packages,
not through forms.library.lists."""

from __future__ import annotations

import csv
import datetime
import io
import re
from collections import Counter

import pycountry
import pytest
from babel import Locale
from babel.numbers import get_territory_currencies
from openpyxl import load_workbook

from forms.library import DATA_DIR, FORMS, MEDIA_DIR, get
from forms.library.build import read_table

EN, SW = "label::English (en)", "label::Kiswahili (sw)"
SW_LOCALE = Locale("sw")


def media(name: str) -> list[dict[str, str]]:
    with (MEDIA_DIR / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def data(name: str) -> list[dict[str, str]]:
    with (DATA_DIR / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def built_choices(form_id: str) -> dict[str, list[dict[str, str]]]:
    """The choices sheet of the committed workbook, by list."""
    sheet = load_workbook(io.BytesIO(get(form_id).xlsx()))["choices"]
    rows = list(sheet.iter_rows(values_only=True))
    header = [str(h) for h in rows[0]]
    lists: dict[str, list[dict[str, str]]] = {}
    for row in rows[1:]:
        record = {h: "" if v is None else str(v) for h, v in zip(header, row, strict=True)}
        lists.setdefault(record["list_name"], []).append(record)
    return lists


def every_list(name: str) -> list[list[dict[str, str]]]:
    found = [lists[name] for f in FORMS if name in (lists := built_choices(f.form_id))]
    assert found, f"no library form uses {name}"
    return found


def test_countries__all_of_iso_3166_with_cldr_kiswahili_names():
    rows = media("countries.csv")
    expected = {c.alpha_3: (getattr(c, "common_name", None) or c.name,
                            SW_LOCALE.territories[c.alpha_2], c.alpha_2)
                for c in pycountry.countries}
    assert len(rows) == len(expected) == 249
    assert {r["name"]: (r["label_en"], r["label_sw"], r["iso2"]) for r in rows} == expected
    by_code = {r["name"]: r for r in rows}
    assert by_code["ARE"]["label_sw"] == "Falme za Kiarabu"
    assert by_code["TZA"]["label_en"] == "Tanzania"
    assert [r["name"] for r in rows[:3]] == ["TZA", "KEN", "UGA"]  # the corridor first


def test_currency__iso_4217_in_use_with_cldr_kiswahili_names():
    in_use = set()
    for country in pycountry.countries:
        in_use.update(get_territory_currencies(country.alpha_2, datetime.date(2026, 1, 1),
                                               tender=True))
    expected = {c.alpha_3: (c.name, SW_LOCALE.currencies[c.alpha_3])
                for c in pycountry.currencies if c.alpha_3 in in_use}
    assert "TZS" in expected and "XAU" not in expected and "USN" not in expected
    for choices in every_list("currency"):
        assert {r["name"]: (r[EN], r[SW]) for r in choices} == expected
        assert [r["name"] for r in choices[:4]] == ["TZS", "UGX", "KES", "USD"]


def test_tz_region__the_31_iso_3166_2_regions():
    expected = {s.code: s.name.removesuffix(" Region")
                for s in pycountry.subdivisions.get(country_code="TZ")}
    exonyms = {r["code"]: r for r in data("tz_region_names_sw.csv")}
    assert all(expected[code] + " Region" == r["name_en_iso"] for code, r in exonyms.items())
    for choices in every_list("tz_region"):
        assert [r["name"] for r in choices] == [f"TZ-{n:02d}" for n in range(1, 32)]
        assert {r["name"]: r[EN] for r in choices} == expected
        for r in choices:
            sw = exonyms[r["name"]]["name_sw"] if r["name"] in exonyms else expected[r["name"]]
            assert r[SW] == sw


def test_uganda__regions_and_every_district_filtered_by_region():
    subdivisions = list(pycountry.subdivisions.get(country_code="UG"))
    regions = {s.code: s.name for s in subdivisions if s.type == "Geographical region"}
    (ug_region,) = every_list("ug_region")
    assert {r["name"]: r[EN] for r in ug_region} == regions
    rows = {r["name"]: r for r in media("ug_districts.csv")}
    for s in subdivisions:
        if s.type in ("District", "City"):
            assert rows[s.code]["label"] == s.name
            assert rows[s.code]["parent"] == (s.parent_code or "UG-C")
    others = [r for r in rows.values() if r["name"].startswith("other_")]
    assert sorted(r["parent"] for r in others) == sorted(regions)
    assert set(rows) <= {s.code for s in subdivisions} | {r["name"] for r in others}


# -- Tanzania's councils: data/tz_councils.csv and the media file made from it -----------------

TZ_COUNCIL_COLUMNS = ["region_iso", "council_code", "council_name", "council_type", "source",
                      "vintage"]
ZANZIBAR = {"TZ-06", "TZ-07", "TZ-10", "TZ-11", "TZ-15"}
"""Pemba North and South, Zanzibar North, South and West: census districts, not councils."""
CODE_SUFFIX = {"district": "-dc", "town": "-tc", "municipal": "-mc", "city": "-cc"}
LABEL_FORMS = {
    "district": ("{} District Council", "Halmashauri ya Wilaya ya {}"),
    "town": ("{} Town Council", "Halmashauri ya Mji wa {}"),
    "municipal": ("{} Municipal Council", "Halmashauri ya Manispaa ya {}"),
    "city": ("{} City Council", "Halmashauri ya Jiji la {}"),
}


def test_tz_councils__the_2022_census_councils_each_in_a_valid_region():
    with (DATA_DIR / "tz_councils.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == TZ_COUNCIL_COLUMNS
    regions = {s.code for s in pycountry.subdivisions.get(country_code="TZ")}
    assert len(regions) == 31
    assert {r["region_iso"] for r in rows} == regions  # none invalid, every region has one
    assert regions >= ZANZIBAR
    assert {r["name_sw"] for r in data("tz_region_names_sw.csv")
            if r["code"] in ZANZIBAR} == {"Kaskazini Pemba", "Kaskazini Unguja", "Kusini Pemba",
                                          "Kusini Unguja", "Mjini Magharibi"}
    codes = [r["council_code"] for r in rows]
    assert len(set(codes)) == len(codes)
    assert len({(r["region_iso"], r["council_name"], r["council_type"]) for r in rows}) == len(rows)
    for r in rows:
        assert all(r[c] and r[c] == r[c].strip() for c in TZ_COUNCIL_COLUMNS), r
        assert r["source"].startswith("NBS 2022 PHC Administrative Units report"), r
        assert r["vintage"] == "2022"
        assert r["council_type"] in CODE_SUFFIX, r
        code = r["council_code"]
        assert re.fullmatch(r"TZ-\d{2}-[a-z0-9]+(-[a-z0-9]+)*", code), code
        assert code.startswith(r["region_iso"] + "-"), code
        if r["region_iso"] in ZANZIBAR:
            assert r["council_type"] == "district", r  # Zanzibar: the census districts
            assert not code.endswith(tuple(CODE_SUFFIX.values())), code
        else:
            assert code.endswith(CODE_SUFFIX[r["council_type"]]), code
    # The report's 184 mainland councils and 11 Zanzibar districts (data/SOURCES.md).
    mainland = [r for r in rows if r["region_iso"] not in ZANZIBAR]
    assert (len(mainland), len(rows) - len(mainland)) == (184, 11)
    assert Counter(r["council_type"] for r in mainland) == {
        "district": 137, "municipal": 20, "town": 21, "city": 6}
    assert all(1 <= n <= 11 for n in Counter(r["region_iso"] for r in rows).values())
    named = {(r["region_iso"], r["council_name"], r["council_type"]) for r in rows}
    # Where the sources disagree, the 2022 report is followed (data/SOURCES.md).
    assert ("TZ-22", "Msalala", "district") in named  # restored to the transcription
    assert ("TZ-02", "Dar es Salaam", "city") in named
    assert ("TZ-02", "Ilala", "municipal") not in named  # became Dar es Salaam City Council
    assert ("TZ-12", "Mtama", "district") in named and ("TZ-12", "Lindi", "district") not in named
    assert ("TZ-03", "Dodoma", "city") in named and ("TZ-31", "Tunduma", "town") in named


def test_tz_councils__media_file_in_both_languages_by_region_with_an_escape_per_region():
    councils = data("tz_councils.csv")
    rows = media("tz_councils.csv")
    assert list(rows[0]) == ["name", "label", "label_en", "label_sw", "region"]
    by_name = {r["name"]: r for r in rows}
    assert len(by_name) == len(rows)
    for council in councils:
        row = by_name[council["council_code"]]
        if council["region_iso"] in ZANZIBAR:
            en, sw = "{} District", "Wilaya ya {}"
        else:
            en, sw = LABEL_FORMS[council["council_type"]]
        name = council["council_name"]
        assert (row["label_en"], row["label_sw"]) == (en.format(name), sw.format(name))
        assert row["label"] == f"{row['label_en']} / {row['label_sw']}"
        assert row["region"] == council["region_iso"]
    regions = [s.code for s in pycountry.subdivisions.get(country_code="TZ")]
    others = [r for r in rows if r["name"].startswith("other_")]
    assert sorted(r["name"] for r in others) == sorted(f"other_{code}" for code in regions)
    assert all(r["name"] == f"other_{r['region']}" and r["label_en"] and r["label_sw"]
               for r in others)
    assert set(by_name) == {c["council_code"] for c in councils} | {r["name"] for r in others}
    for code in regions:  # the escape comes after the region's councils, which are by name
        in_region = [r for r in rows if r["region"] == code]
        assert in_region[-1]["name"] == f"other_{code}"
        assert [r["label_en"] for r in in_region[:-1]] == sorted(
            r["label_en"] for r in in_region[:-1])
    assert by_name["TZ-03-kondoa-tc"]["label"] == (
        "Kondoa Town Council / Halmashauri ya Mji wa Kondoa")
    assert by_name["TZ-15-magharibi-a"]["label"] == "Magharibi A District / Wilaya ya Magharibi A"


def test_language__cldr_names():
    (languages,) = every_list("language")
    english = Locale("en").languages
    for r in languages:
        assert (r[EN], r[SW]) == (english[r["name"]], SW_LOCALE.languages[r["name"]])
    assert {"sw", "en"} <= {r["name"] for r in languages}


def test_countries__values_are_iso_alpha_3_codes():
    assert media("countries.csv")[0].keys() == {"name", "label", "label_en", "label_sw", "iso2"}
    assert all(re.fullmatch(r"[A-Z]{3}", r["name"]) for r in media("countries.csv"))


# -- the sourced classification files -------------------------------------------------------

def test_isco08__10_major_and_43_sub_major_groups():
    rows = data("isco08.csv")
    major = [r for r in rows if r["level"] == "major"]
    sub = [r for r in rows if r["level"] == "submajor"]
    assert len(major) == 10 and len(sub) == 43 and len(rows) == 53
    assert sorted(r["code"] for r in major) == [str(n) for n in range(10)]
    assert len({r["code"] for r in rows}) == 53
    for r in sub:
        assert r["parent"] in {m["code"] for m in major} and r["code"].startswith(r["parent"])
    assert {r["code"]: r["label_en"] for r in sub}["22"] == "Health professionals"
    for choices in every_list("isco_submajor"):
        assert {(c["name"], c["parent"]) for c in choices} == {
            (r["code"], r["parent"]) for r in sub}


@pytest.mark.parametrize(("name", "codes"), [
    ("isced2011_levels.csv", ["none"] + [f"isced{n}" for n in range(9)]),
    ("iscedf2013_broad.csv", [f"{n:02d}" for n in range(11)]),
    ("isic4_sections.csv", [chr(c) for c in range(ord("A"), ord("U") + 1)]),
])
def test_classifications__complete_and_bilingual(name, codes):
    rows = data(name)
    assert [r["code"] for r in rows] == codes
    assert all(r["label_en"] and r["label_sw"] for r in rows)


def test_sources__every_data_file_is_named_with_its_source():
    sources = (DATA_DIR / "SOURCES.md").read_text(encoding="utf-8")
    for path in DATA_DIR.glob("*.csv"):
        assert f"`{path.name}`" in sources, path.name


# -- RSS scoring weights: data, never guessed -------------------------------------------------

def test_rss_weights__one_row_per_indicator_and_no_guessed_numbers():
    rows = data("rss_indicators.csv")
    survey = read_table(get("returnee_rss").directory / "survey.md")
    questions = {name: type_.split()[-1] for type_, name in
                 zip(survey.column("type"), survey.column("name"), strict=True)
                 if name.startswith("rss_")}
    assert {r["item"]: r["choice_list"] for r in rows} == questions
    assert {r["dimension"] for r in rows} == {"economic", "social", "psychosocial"}
    for column in ("weight_dimension", "weight_composite"):
        supplied = [r for r in rows if r[column]]
        if not supplied:
            continue  # to be supplied from the IOM Reintegration Handbook, Annex 4
        assert len(supplied) == len(rows), f"{column}: supply every weight or none"
        assert all(r["weight_source"] for r in rows)
        if column == "weight_composite":
            assert sum(float(r[column]) for r in rows) == pytest.approx(1)
        else:
            for dimension in {r["dimension"] for r in rows}:
                assert sum(float(r[column]) for r in rows
                           if r["dimension"] == dimension) == pytest.approx(1)
