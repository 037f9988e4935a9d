"""The library's reference lists, made from authoritative data: ISO 3166 and ISO 4217 from
pycountry (Debian iso-codes), Kiswahili names from the Unicode CLDR through babel, and the
classifications and lists no package ships (ISCO-08, ISCED 2011, ISCED-F 2013, ISIC Rev.4,
Tanzania's councils) from the sourced CSV files in ``data/`` (see ``data/SOURCES.md``).

pycountry and babel are needed only here, when the library is built or checked; installing
a library form into a project reads the committed workbooks and media files instead.
"""

from __future__ import annotations

import csv
import datetime
import io
from dataclasses import dataclass, field
from pathlib import Path

LIBRARY_DIR = Path(__file__).resolve().parent
DATA_DIR = LIBRARY_DIR / "data"

EN = "English (en)"
SW = "Kiswahili (sw)"

CURRENCY_DATE = datetime.date(2026, 1, 1)
"""CLDR says which currencies are legal tender where on a date; a fixed date keeps builds
repeatable. Move it forward (and rebuild) when the data packages are upgraded."""

CORRIDOR_COUNTRIES = ("TZA", "KEN", "UGA", "OMN", "SAU", "ARE", "QAT", "ZAF", "GBR", "USA",
                      "BDI", "RWA", "COD", "MOZ", "ZMB", "MWI")
"""Shown first: Tanzania, its neighbours and the main destinations of Tanzanian workers."""

CORRIDOR_CURRENCIES = ("TZS", "UGX", "KES", "USD", "EUR", "GBP", "AED", "SAR", "OMR", "QAR",
                       "ZAR")

LANGUAGES = ("sw", "en", "fr", "ar", "pt", "de", "zh", "hi", "so", "am", "lg", "rw", "rn",
             "suk", "nym", "mas", "kde")
"""Working languages offered by the diaspora registry; their names come from CLDR."""


@dataclass(frozen=True)
class Item:
    """One choice: its value, its label per language and any extra columns (a filter's
    ``parent``), in the order the workbook or CSV shows them."""

    name: str
    labels: dict[str, str]
    extra: dict[str, str] = field(default_factory=dict)


# -- data files ------------------------------------------------------------------------------

def read_data(name: str) -> list[dict[str, str]]:
    with (DATA_DIR / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _bilingual(rows: list[dict[str, str]], name_col: str = "code",
               extra: tuple[str, ...] = ()) -> list[Item]:
    return [Item(r[name_col], {EN: r["label_en"], SW: r["label_sw"]},
                 {c: r[c] for c in extra}) for r in rows]


def isco_major() -> list[Item]:
    return _bilingual([r for r in read_data("isco08.csv") if r["level"] == "major"])


def isco_submajor() -> list[Item]:
    return _bilingual([r for r in read_data("isco08.csv") if r["level"] == "submajor"],
                      extra=("parent",))


def isced_level() -> list[Item]:
    return _bilingual(read_data("isced2011_levels.csv"))


def iscedf_broad() -> list[Item]:
    return _bilingual(read_data("iscedf2013_broad.csv"))


def isic_section() -> list[Item]:
    return _bilingual(read_data("isic4_sections.csv"))


# -- pycountry + babel -------------------------------------------------------------------------

def _sw():
    from babel import Locale

    return Locale("sw")


def _country_name(country) -> str:
    return getattr(country, "common_name", None) or country.name


def country_rows() -> list[dict[str, str]]:
    """countries.csv: ISO 3166-1 alpha-3 as the value; corridor countries first, then by
    English name. JavaRosa reads one label column from a CSV whatever the form language, so
    ``label`` carries both names (searchable in either); ``label_en``/``label_sw`` keep them
    apart for analysis."""
    import pycountry

    territories = _sw().territories
    rows = []
    for c in pycountry.countries:
        en, sw = _country_name(c), territories[c.alpha_2]
        rows.append({"name": c.alpha_3, "label": en if en == sw else f"{en} / {sw}",
                     "label_en": en, "label_sw": sw, "iso2": c.alpha_2})
    first = {code: i for i, code in enumerate(CORRIDOR_COUNTRIES)}
    rows.sort(key=lambda r: (first.get(r["name"], len(first)), r["label_en"]))
    return rows


def currency() -> list[Item]:
    """ISO 4217 currencies that are legal tender somewhere (CLDR, on ``CURRENCY_DATE``):
    no funds, metals or testing codes. Corridor currencies first, then by English name."""
    import pycountry
    from babel.numbers import get_territory_currencies

    in_use: set[str] = set()
    for c in pycountry.countries:
        in_use.update(get_territory_currencies(c.alpha_2, CURRENCY_DATE, tender=True))
    names = _sw().currencies
    items = [Item(cur.alpha_3, {EN: cur.name, SW: names[cur.alpha_3]})
             for cur in pycountry.currencies if cur.alpha_3 in in_use]
    first = {code: i for i, code in enumerate(CORRIDOR_CURRENCIES)}
    items.sort(key=lambda i: (first.get(i.name, len(first)), i.labels[EN]))
    return items


def tz_region() -> list[Item]:
    """The 31 regions of Tanzania (ISO 3166-2:TZ). English names are pycountry's without
    the word "Region"; Kiswahili names are the same except where the English is an
    exonym (data/tz_region_names_sw.csv)."""
    import pycountry

    swahili = {r["code"]: r["name_sw"] for r in read_data("tz_region_names_sw.csv")}
    items = []
    for s in sorted(pycountry.subdivisions.get(country_code="TZ"), key=lambda s: s.code):
        en = s.name.removesuffix(" Region")
        items.append(Item(s.code, {EN: en, SW: swahili.get(s.code, en)}))
    return items


def ug_region() -> list[Item]:
    """Uganda's four geographical regions (ISO 3166-2:UG); Kiswahili names from
    data/ug_region_names_sw.csv."""
    import pycountry

    swahili = {r["code"]: r["name_sw"] for r in read_data("ug_region_names_sw.csv")}
    return [Item(s.code, {EN: s.name, SW: swahili[s.code]})
            for s in sorted(pycountry.subdivisions.get(country_code="UG"), key=lambda s: s.code)
            if s.type == "Geographical region"]


def ug_district_rows() -> list[dict[str, str]]:
    """ug_districts.csv: Uganda's districts and Kampala (ISO 3166-2:UG) with their region as
    ``parent``, by name; ISO lags Uganda's newest districts, so ``other`` closes the list."""
    import pycountry

    rows = [{"name": s.code, "label": s.name, "parent": s.parent_code or "UG-C"}
            for s in pycountry.subdivisions.get(country_code="UG")
            if s.type in ("District", "City")]
    rows.sort(key=lambda r: (r["label"], r["name"]))
    for region in ug_region():
        rows.append({"name": f"other_{region.name}",
                     "label": "Other district (not listed) / Wilaya nyingine (haipo kwenye orodha)",
                     "parent": region.name})
    return rows


ZANZIBAR_REGIONS = ("TZ-06", "TZ-07", "TZ-10", "TZ-11", "TZ-15")
"""The five regions of Zanzibar: their census units are districts (wilaya), not the councils
of the mainland's local government system."""

COUNCIL_LABELS = {
    "district": ("{} District Council", "Halmashauri ya Wilaya ya {}"),
    "town": ("{} Town Council", "Halmashauri ya Mji wa {}"),
    "municipal": ("{} Municipal Council", "Halmashauri ya Manispaa ya {}"),
    "city": ("{} City Council", "Halmashauri ya Jiji la {}"),
}
"""English and Kiswahili names of a mainland council by its type, from its place name: the
conventional forms of the councils' names (data/SOURCES.md)."""

ZANZIBAR_LABELS = ("{} District", "Wilaya ya {}")

OTHER_COUNCIL = ("Other council (not listed)", "Halmashauri nyingine (haipo kwenye orodha)")
OTHER_DISTRICT = ("Other district (not listed)", "Wilaya nyingine (haipo kwenye orodha)")


def council_labels(row: dict[str, str]) -> tuple[str, str]:
    """A row of data/tz_councils.csv named in English and Kiswahili."""
    if row["region_iso"] in ZANZIBAR_REGIONS:
        en, sw = ZANZIBAR_LABELS
    else:
        en, sw = COUNCIL_LABELS[row["council_type"]]
    return en.format(row["council_name"]), sw.format(row["council_name"])


def tz_council_rows() -> list[dict[str, str]]:
    """tz_councils.csv: Tanzania's councils (mainland) and districts (Zanzibar) of the 2022
    Census, data/tz_councils.csv, with their region as ``region`` for the choice filter, by
    region and English name; each region ends with ``other_<region>`` for a council the list
    lacks. ``label`` carries both names (see country_rows)."""
    rows = []
    for council in read_data("tz_councils.csv"):
        en, sw = council_labels(council)
        rows.append({"name": council["council_code"], "label": f"{en} / {sw}", "label_en": en,
                     "label_sw": sw, "region": council["region_iso"]})
    rows.sort(key=lambda r: (r["region"], r["label_en"], r["name"]))
    for region in tz_region():
        en, sw = OTHER_DISTRICT if region.name in ZANZIBAR_REGIONS else OTHER_COUNCIL
        rows.append({"name": f"other_{region.name}", "label": f"{en} / {sw}", "label_en": en,
                     "label_sw": sw, "region": region.name})
    return rows


def language() -> list[Item]:
    from babel import Locale

    en, sw = Locale("en").languages, Locale("sw").languages
    return [Item(code, {EN: en[code], SW: sw[code]}) for code in LANGUAGES]


GENERATED_LISTS = {
    "currency": currency,
    "tz_region": tz_region,
    "ug_region": ug_region,
    "language": language,
    "isco_major": isco_major,
    "isco_submajor": isco_submajor,
    "isced_level": isced_level,
    "iscedf_broad": iscedf_broad,
    "isic_section": isic_section,
}
"""Choice lists a form may use without defining them; the build appends them."""

MEDIA_FILES = {
    "countries.csv": country_rows,
    "ug_districts.csv": ug_district_rows,
    "tz_councils.csv": tz_council_rows,
}
"""CSV files behind ``select_one_from_file``, written to ``media/`` by the build."""


def csv_bytes(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")
