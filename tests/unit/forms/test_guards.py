"""forms.guards: what an upload is, and the zip/sheet caps, before any parser runs
(hostile inputs 38–43)."""

from __future__ import annotations

import time
import tracemalloc
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from forms import guards
from forms.guards import UploadLimits, check_text, check_xlsx_archive, name_warnings, sniff
from forms.issues import FormInvalid
from tests.unit.forms.workbook_builders import (
    MAIN_NS,
    SIMPLE_SURVEY,
    hand_xlsx,
    inline_row,
    lying_header,
    ole2,
    sheet_xml,
    simple_hand_xlsx,
    single_cell_bomb,
    xls,
    xlsx,
)

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_FORM = b"survey,,,\n,type,name,label\n,integer,age,Age\n"
MD_FORM = b"| survey |\n|  | type | name | label |\n|  | integer | age | Age |\n"
HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body></body></html>"
XFORM = (b'<?xml version="1.0"?><h:html xmlns="http://www.w3.org/2002/xforms" '
         b'xmlns:h="http://www.w3.org/1999/xhtml"><h:head/><h:body/></h:html>')


def refused(call, *args, **kwargs) -> FormInvalid:
    with pytest.raises(FormInvalid) as caught:
        call(*args, **kwargs)
    return caught.value


def codes(invalid: FormInvalid) -> list[str]:
    return [issue.code for issue in invalid.issues]


# ------------------------------------------------------------------------------------ sniff

def test_sniff__real_xlsx_is_xlsx_whatever_its_name():
    data = xlsx({"survey": SIMPLE_SURVEY})
    assert sniff(data, "form.xlsx", XLSX_TYPE) == "xlsx"
    assert sniff(data, "form.csv", "text/csv") == "xlsx"
    assert sniff(data, None, None) == "xlsx"


def test_sniff__xls_named_xlsx_is_read_as_xls_with_a_warning():
    data = xls({"survey": SIMPLE_SURVEY})
    kind = sniff(data, "form.xlsx", XLSX_TYPE)
    assert kind == "xls"
    [warning] = name_warnings(kind, "form.xlsx")
    assert (warning.level, warning.code) == ("warning", "file.kind_mismatch")
    assert name_warnings("xls", "form.xls") == []
    assert name_warnings("xls", None) == []


def test_sniff__csv_named_xlsx_is_not_a_form():
    assert codes(refused(sniff, CSV_FORM, "form.xlsx", XLSX_TYPE)) == ["file.not_a_form"]
    assert codes(refused(sniff, CSV_FORM, "form.xls", None)) == ["file.not_a_form"]


def test_sniff__html_named_xlsx_is_not_a_form():
    assert codes(refused(sniff, HTML_PAGE, "form.xlsx", XLSX_TYPE)) == ["file.not_a_form"]
    assert codes(refused(sniff, b"\xef\xbb\xbf  <HTML><body>x</body></HTML>", "f.xls",
                         None)) == ["file.not_a_form"]


def test_sniff__xml_spreadsheet_2003_is_not_a_form():
    data = (b'<?xml version="1.0"?><?mso-application progid="Excel.Sheet"?>'
            b'<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet"/>')
    assert codes(refused(sniff, data, "form.xls", None)) == ["file.not_a_form"]


def test_sniff__xform_is_xml_even_when_named_xlsx():
    assert sniff(XFORM, "form.xml", "application/xml") == "xml"
    assert sniff(b"\xef\xbb\xbf\n" + XFORM, "form.xlsx", None) == "xml"
    assert name_warnings("xml", "form.xlsx")[0].code == "file.kind_mismatch"


def test_sniff__text_forms_by_name_or_by_content():
    assert sniff(CSV_FORM, "form.csv", "text/csv") == "csv"
    assert sniff(MD_FORM, "form.md", None) == "md"
    assert sniff(CSV_FORM, None, None) == "csv"
    assert sniff(MD_FORM, None, "application/octet-stream") == "md"


def test_sniff__empty_file():
    assert codes(refused(sniff, b"", "form.xlsx", XLSX_TYPE)) == ["file.empty"]


@pytest.mark.parametrize("data", [b"\x00\x01\x02binary junk" * 10, b"just some words",
                                  bytes(range(256)) * 4])
def test_sniff__junk_is_not_a_form(data):
    assert codes(refused(sniff, data, None, None)) == ["file.not_a_form"]


def test_sniff__zip_that_is_not_a_workbook():
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<document/>")
    assert codes(refused(sniff, out.getvalue(), "letter.xlsx", None)) == ["file.not_a_form"]


def test_sniff__truncated_xlsx_is_corrupt():
    data = xlsx({"survey": SIMPLE_SURVEY})
    assert codes(refused(sniff, data[: len(data) // 2], "form.xlsx", None)) == ["file.corrupt"]


def test_sniff__password_protected_workbook():
    data = ole2({"EncryptionInfo": b"\x00" * 4096, "EncryptedPackage": b"\x01" * 4096})
    assert codes(refused(sniff, data, "form.xlsx", None)) == ["file.encrypted"]


# ---------------------------------------------------------------------- the xlsx archive

def test_check_xlsx_archive__real_workbooks_pass():
    check_xlsx_archive(xlsx({"survey": SIMPLE_SURVEY, "choices": [["list_name", "name"]]}))
    check_xlsx_archive(simple_hand_xlsx())


def test_check_xlsx_archive__200mb_single_cell_is_refused_before_decompressing():
    bomb = single_cell_bomb()
    assert len(bomb) < 1_000_000
    tracemalloc.start()
    started = time.perf_counter()
    try:
        invalid = refused(check_xlsx_archive, bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert codes(invalid) == ["file.zip_bomb"]
    assert invalid.too_large
    assert peak < 20_000_000
    assert time.perf_counter() - started < 2


def test_check_xlsx_archive__high_ratio_member():
    bomb = hand_xlsx(simple_sheet(), extra={"xl/media/padding.bin": b"\x00" * 3_000_000})
    invalid = refused(check_xlsx_archive, bomb)
    assert codes(invalid) == ["file.zip_bomb"] and invalid.too_large


def test_check_xlsx_archive__total_declared_size_over_the_cap():
    data = hand_xlsx(simple_sheet(), extra={"xl/media/a.bin": bytes(range(256)) * 2000})
    limits = UploadLimits(max_uncompressed_bytes=100_000)
    assert codes(refused(check_xlsx_archive, data, limits)) == ["file.zip_bomb"]
    check_xlsx_archive(data)


def test_check_xlsx_archive__too_many_members():
    extra = {f"xl/media/{i}.bin": b"x" for i in range(1001)}
    assert codes(refused(check_xlsx_archive, hand_xlsx(simple_sheet(), extra=extra))) == [
        "file.zip_bomb"]


def test_check_xlsx_archive__member_larger_than_declared_fails_its_crc():
    data = lying_header(simple_hand_xlsx(), "xl/worksheets/sheet1.xml", 100)
    assert codes(refused(check_xlsx_archive, data)) == ["file.corrupt"]


def test_check_xlsx_archive__member_smaller_than_declared():
    honest = simple_hand_xlsx()
    with zipfile.ZipFile(BytesIO(honest)) as archive:
        size = archive.getinfo("xl/worksheets/sheet1.xml").file_size
    data = lying_header(honest, "xl/worksheets/sheet1.xml", size + 10)
    assert codes(refused(check_xlsx_archive, data)) == ["file.corrupt"]


def test_check_xlsx_archive__unusual_compression_is_refused():
    data = hand_xlsx(simple_sheet(), compression=zipfile.ZIP_BZIP2)
    assert codes(refused(check_xlsx_archive, data)) == ["file.corrupt"]


def test_check_xlsx_archive__rows_are_counted_not_read_from_dimension():
    rows = inline_row(1, "type", "name", "label") + "".join(
        inline_row(n, "text", f"q{n}", "Q") for n in range(2, 62))
    lying_dimension = hand_xlsx(sheet_xml(rows, dimension="A1:C3"))
    invalid = refused(check_xlsx_archive, lying_dimension, UploadLimits(max_rows=50))
    assert codes(invalid) == ["file.too_many_rows"]
    check_xlsx_archive(lying_dimension)


def test_check_xlsx_archive__huge_dimension_alone_is_harmless():
    check_xlsx_archive(hand_xlsx(sheet_xml(inline_row(1, "type", "name", "label"),
                                           dimension="A1:XFD1048576")))


def test_check_xlsx_archive__a_million_rows_refused_in_bounded_time():
    rows = "<row/>" * 1_000_000  # stored, so neither the ratio nor the size cap fires first
    data = hand_xlsx(sheet_xml(rows), compression=zipfile.ZIP_STORED)
    started = time.perf_counter()
    assert codes(refused(check_xlsx_archive, data)) == ["file.too_many_rows"]
    assert time.perf_counter() - started < 1


def test_check_xlsx_archive__too_many_columns():
    wide = '<row r="1">' + "".join(f"<c><v>{i}</v></c>" for i in range(501)) + "</row>"
    assert codes(refused(check_xlsx_archive, hand_xlsx(sheet_xml(wide)))) == [
        "file.too_many_columns"]


def test_check_xlsx_archive__xxe_in_shared_strings_is_refused_and_secret_not_leaked(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-42")
    strings = (f'<?xml version="1.0"?><!DOCTYPE sst [<!ENTITY xxe SYSTEM "file://{secret}">]>'
               f'<sst xmlns="{MAIN_NS}" count="1"><si><t>&xxe;</t></si></sst>')
    invalid = refused(check_xlsx_archive, hand_xlsx(simple_sheet(), shared_strings=strings))
    assert codes(invalid) == ["file.unsafe_xml"]
    assert "TOPSECRET" not in repr(invalid.issues)


def test_check_xlsx_archive__entity_expansion_in_a_sheet_is_refused():
    laughs = ('<?xml version="1.0"?><!DOCTYPE w [<!ENTITY a "aaaaaaaaaa">'
              '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
              f'<worksheet xmlns="{MAIN_NS}"><sheetData><row><c t="inlineStr"><is><t>&b;</t>'
              '</is></c></row></sheetData></worksheet>')
    assert codes(refused(check_xlsx_archive, hand_xlsx(laughs))) == ["file.unsafe_xml"]


def test_check_xlsx_archive__malformed_sheet_xml_is_corrupt():
    assert codes(refused(check_xlsx_archive, hand_xlsx("<worksheet><row>"))) == ["file.corrupt"]


def test_check_xlsx_archive__entry_names_are_never_extracted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    escapee = Path("/tmp/dodoso-guard-escape-test")
    extra = {"../escape.xml": b"<x/>", str(escapee): b"<x/>", "xl/../../up.xml": b"<x/>"}
    check_xlsx_archive(hand_xlsx(simple_sheet(), extra=extra))
    assert list(tmp_path.iterdir()) == []
    assert not escapee.exists()
    assert not (tmp_path.parent / "escape.xml").exists()


def test_check_xlsx_archive__upload_over_the_byte_cap():
    invalid = refused(check_xlsx_archive, simple_hand_xlsx(), UploadLimits(max_bytes=100))
    assert codes(invalid) == ["file.too_large"] and invalid.too_large


# ----------------------------------------------------------------------------- text forms

def test_check_text__utf8_with_bom_is_accepted():
    assert check_text(b"\xef\xbb\xbf" + MD_FORM).startswith("| survey |")


def test_check_text__not_utf8():
    assert codes(refused(check_text, "| survey | é".encode("latin-1"))) == ["file.encoding"]


def test_check_text__line_cap():
    assert codes(refused(check_text, b"a,b\n" * 11, UploadLimits(max_text_lines=10))) == [
        "file.too_many_rows"]


def test_check_xls__row_cap_before_pyxform_reads_cells():
    data = xls({"survey": [["type", "name", "label"]] + [["text", f"q{n}", "Q"]
                                                         for n in range(60)]})
    invalid = refused(guards.check_xls, data, UploadLimits(max_rows=50))
    assert codes(invalid) == ["file.too_many_rows"]
    guards.check_xls(data)


def test_sniff__utf16_xform():
    assert sniff(XFORM.decode().replace('"1.0"?>', '"1.0" encoding="UTF-16"?>')
                 .encode("utf-16"), "form.xml", None) == "xml"


def test_check_workbook__dispatches_on_kind():
    guards.check_workbook(xls({"survey": SIMPLE_SURVEY}), "xls")
    assert codes(refused(guards.check_workbook, b"", "xls")) == ["file.empty"]


def simple_sheet() -> str:
    return sheet_xml(inline_row(1, "type", "name", "label") + inline_row(2, "integer", "age",
                                                                        "Age"))
