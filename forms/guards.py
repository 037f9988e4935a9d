"""Checks on an uploaded form file that run before any parser sees it.

The kind of file is decided by its first bytes, never by its name; an XLSX archive is
measured from its central directory and then streamed member by member (nothing is
extracted, and no member is ever held whole in memory), so zip bombs, lying headers, DTDs
and oversized sheets are refused before openpyxl or pyxform load the workbook.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import PurePosixPath, PureWindowsPath
from typing import Literal
from xml.parsers import expat

from forms.issues import FormInvalid, FormIssue

FileKind = Literal["xlsx", "xls", "xml", "csv", "md"]

ZIP_MAGIC = b"PK\x03\x04"
ZIP_EMPTY_MAGIC = b"PK\x05\x06"
ZIP_CENTRAL_ENTRY = b"PK\x01\x02"
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
XLSX_REQUIRED_MEMBERS = ("[Content_Types].xml", "xl/workbook.xml")
XFORMS_NS = b"http://www.w3.org/2002/xforms"
SPREADSHEETML_2003_NS = b"urn:schemas-microsoft-com:office:spreadsheet"
SPREADSHEETML_NS = frozenset({
    "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "http://purl.oclc.org/ooxml/spreadsheetml/main",
})
# An encrypted ("password to open") workbook is an OLE2 file holding this stream.
OLE2_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")

_EXTENSIONS: dict[str, FileKind] = {
    ".xlsx": "xlsx", ".xlsm": "xlsx", ".xls": "xls", ".xml": "xml", ".csv": "csv",
    ".md": "md", ".markdown": "md",
}
_CONTENT_TYPES: dict[str, FileKind] = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.ms-excel.sheet.macroenabled.12": "xlsx",
    "application/vnd.ms-excel": "xls",
    "application/xml": "xml",
    "text/xml": "xml",
    "text/csv": "csv",
    "text/markdown": "md",
}
_KIND_NAMES = {"xlsx": "an Excel workbook (.xlsx)", "xls": "an Excel 97-2003 workbook (.xls)",
               "xml": "an XML file", "csv": "a CSV file", "md": "a Markdown table"}
# Applied to the first 4 KiB only.
_HTML_START = re.compile(rb"\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>])",
                         re.IGNORECASE | re.DOTALL)
_SNIFF_WINDOW = 64 * 1024
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class UploadLimits:
    """Caps on what an upload may cost to read. Settings build one; tests pass small ones."""

    max_bytes: int = 20_000_000
    max_members: int = 1000
    max_uncompressed_bytes: int = 50_000_000
    max_member_ratio: int = 100
    ratio_checked_above: int = 1_000_000
    max_rows: int = 20_000
    max_columns: int = 500
    max_cells: int = 1_000_000
    max_text_lines: int = 50_000


DEFAULT_LIMITS = UploadLimits()


def _invalid(code: str, message: str, *, too_large: bool = False) -> FormInvalid:
    return FormInvalid([FormIssue(level="error", code=code, message=message)],
                       too_large=too_large)


def declared_kind(filename: str | None, content_type: str | None) -> FileKind | None:
    """What the name (or, failing that, the content type) claims the file is."""
    if filename:
        base = PureWindowsPath(PurePosixPath(filename).name).name
        suffix = PurePosixPath(base).suffix.lower()
        if suffix in _EXTENSIONS:
            return _EXTENSIONS[suffix]
    if content_type:
        return _CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())
    return None


def check_size(data: bytes, limits: UploadLimits = DEFAULT_LIMITS) -> None:
    if not data:
        raise _invalid("file.empty", "The file is empty.")
    if len(data) > limits.max_bytes:
        raise _invalid("file.too_large", f"The file is {len(data)} bytes; forms may be at most "
                       f"{limits.max_bytes} bytes.", too_large=True)


def sniff(data: bytes, filename: str | None, content_type: str | None) -> FileKind:
    """The kind of form file ``data`` is, from its bytes. Refuses what is not a form at all.

    Binary kinds (xlsx, xls) are recognised by magic bytes whatever the name says. Text is
    ambiguous, so a text file is a CSV or Markdown form only when nothing claims it is a
    spreadsheet or XML: a CSV or HTML page renamed to ``.xlsx`` is refused.
    """
    if not data:
        raise _invalid("file.empty", "The file is empty.")
    claimed = declared_kind(filename, content_type)
    if data.startswith((ZIP_MAGIC, ZIP_EMPTY_MAGIC)):
        _require_workbook_members(data)
        return "xlsx"
    if data.startswith(OLE2_MAGIC):
        if OLE2_ENCRYPTED_STREAM in data:
            raise _invalid("file.encrypted", "The workbook is password-protected. Remove the "
                           "password in Excel (File > Info > Protect Workbook) and upload again.")
        return "xls"
    head = data[:_SNIFF_WINDOW]
    if head.startswith(UTF16_BOMS):
        head = head[:4096].decode("utf-16", errors="replace").encode("utf-8")
    stripped = head[len(UTF8_BOM):] if head.startswith(UTF8_BOM) else head
    if stripped.lstrip().startswith(b"<"):
        return _sniff_markup(stripped)
    return _sniff_text(data, claimed)


def _sniff_markup(head: bytes) -> FileKind:
    if XFORMS_NS in head:
        return "xml"
    if SPREADSHEETML_2003_NS in head:
        raise _invalid("file.not_a_form", "This is an 'XML Spreadsheet 2003' file, which is not "
                       "supported. Save it as an Excel Workbook (.xlsx) and upload again.")
    if _HTML_START.match(head[:4096]):
        raise _invalid("file.not_a_form", "This is a web page (HTML), not a form. Upload the "
                       "XLSForm spreadsheet (.xlsx or .xls) or an XForm (.xml).")
    return "xml"


def _sniff_text(data: bytes, claimed: FileKind | None) -> FileKind:
    if claimed in ("xlsx", "xls", "xml"):
        raise _invalid("file.not_a_form", f"The file is named as {_KIND_NAMES[claimed]} but "
                       "holds plain text (for example a CSV export). Upload the spreadsheet "
                       "itself (.xlsx or .xls), not a CSV or text copy of it.")
    # The same thresholds pyxform uses (is_markdown_table, is_csv) on the same window.
    text = data[:5000].decode("utf-8", errors="replace")
    looks_md, looks_csv = text.count("|") >= 5, text.count(",") >= 4
    if b"\x00" not in data[:_SNIFF_WINDOW]:
        if claimed == "csv" and looks_csv:
            return "csv"
        if looks_md:
            return "md"
        if looks_csv:
            return "csv"
    raise _invalid("file.not_a_form", "This file is not a form. Upload an XLSForm spreadsheet "
                   "(.xlsx or .xls) or an XForm (.xml).")


def name_warnings(kind: FileKind, filename: str | None,
                  content_type: str | None = None) -> list[FormIssue]:
    """A warning when the name claims another kind than the bytes are (an .xls named .xlsx)."""
    claimed = declared_kind(filename, content_type)
    if claimed is None or claimed == kind:
        return []
    return [FormIssue(
        level="warning", code="file.kind_mismatch",
        message=f"The file is named as {_KIND_NAMES[claimed]} but is {_KIND_NAMES[kind]}; it "
                f"was read as {_KIND_NAMES[kind]}. Consider renaming it.")]


def _require_workbook_members(data: bytes) -> None:
    if data.count(ZIP_CENTRAL_ENTRY) > DEFAULT_LIMITS.max_members:
        raise _too_many_members(DEFAULT_LIMITS)
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        raise _invalid("file.corrupt", "The file is damaged: it starts like an Excel workbook "
                       "but could not be opened as one.") from None
    if not all(member in names for member in XLSX_REQUIRED_MEMBERS):
        raise _invalid("file.not_a_form", "This archive is not an Excel workbook (it has no "
                       "workbook part). Upload an XLSForm spreadsheet (.xlsx or .xls).")


def check_xlsx_archive(data: bytes, limits: UploadLimits = DEFAULT_LIMITS) -> None:
    """Refuse zip bombs, lying or corrupt members, DTDs and oversized sheets in an XLSX.

    Declared sizes are checked first (member count, total, ratio per member); then every
    member is decompressed in bounded chunks, never more than its declared size, so a member
    that holds more than it declares fails its CRC here rather than inside openpyxl. XML
    members are fed to a streaming parser that refuses any DTD and counts sheet rows and
    cells; ``<dimension ref>`` is not trusted.
    """
    check_size(data, limits)
    if data.count(ZIP_CENTRAL_ENTRY) > limits.max_members:
        raise _too_many_members(limits)
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            infos = archive.infolist()
            _check_declared_sizes(infos, limits)
            budget = limits.max_uncompressed_bytes
            for info in infos:
                budget -= _stream_member(archive, info, budget, limits)
    except FormInvalid:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError):
        # RuntimeError: an encrypted member; NotImplementedError: an unknown compression.
        raise _invalid("file.corrupt", "The workbook is damaged (a part of it failed its "
                       "integrity check). Open it in Excel, save it again and re-upload.") from None
    names = {info.filename for info in infos}
    if not all(member in names for member in XLSX_REQUIRED_MEMBERS):
        raise _invalid("file.not_a_form", "This archive is not an Excel workbook (it has no "
                       "workbook part). Upload an XLSForm spreadsheet (.xlsx or .xls).")


def _too_many_members(limits: UploadLimits) -> FormInvalid:
    return _invalid("file.zip_bomb", f"The workbook has more than {limits.max_members} parts; "
                    "it is not a plausible form.", too_large=True)


def _check_declared_sizes(infos: list[zipfile.ZipInfo], limits: UploadLimits) -> None:
    if len(infos) > limits.max_members:
        raise _too_many_members(limits)
    total = sum(info.file_size for info in infos)
    if total > limits.max_uncompressed_bytes:
        raise _invalid("file.zip_bomb", f"The workbook unpacks to {total} bytes; at most "
                       f"{limits.max_uncompressed_bytes} bytes are accepted.", too_large=True)
    for info in infos:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _invalid("file.corrupt", "The workbook uses a compression method Excel "
                           "does not write. Open it in Excel, save it again and re-upload.")
        if info.flag_bits & 0x1:
            raise _invalid("file.encrypted", "A part of the workbook is encrypted.")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_checked_above and ratio > limits.max_member_ratio:
            raise _invalid("file.zip_bomb", "A part of the workbook is compressed "
                           f"{int(ratio)}:1; more than {limits.max_member_ratio}:1 is refused "
                           "as a zip bomb.", too_large=True)


def _stream_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int,
                   limits: UploadLimits) -> int:
    """Decompress one member in chunks; returns the bytes it really held."""
    scanner = _SheetScanner(limits) if _is_xml_part(info.filename) else None
    seen = 0
    with archive.open(info) as member:
        for chunk in _chunks(member):
            seen += len(chunk)
            if seen > info.file_size or seen > budget:
                raise _invalid("file.zip_bomb", "A part of the workbook holds more than its "
                               "header declares.", too_large=True)
            if scanner is not None:
                scanner.feed(chunk)
    if seen != info.file_size:
        raise _invalid("file.corrupt", "A part of the workbook is shorter than its header "
                       "declares; the file is damaged.")
    if scanner is not None:
        scanner.close()
    return seen


def _chunks(member) -> Iterator[bytes]:
    while chunk := member.read(_READ_CHUNK):
        yield chunk


def _is_xml_part(name: str) -> bool:
    """XML parts openpyxl may parse. VML drawings are skipped: Excel's are not well-formed."""
    return name.lower().endswith((".xml", ".rels"))


class _SheetScanner:
    """Streams one XML part: refuses DTDs and entities; counts SpreadsheetML rows and cells."""

    def __init__(self, limits: UploadLimits) -> None:
        self.limits = limits
        self.rows = 0
        self.cells = 0
        self.cells_in_row = 0
        self.parser = expat.ParserCreate(namespace_separator=" ")
        self.parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self.parser.StartDoctypeDeclHandler = self._refuse_dtd
        self.parser.EntityDeclHandler = self._refuse_dtd
        self.parser.ExternalEntityRefHandler = self._refuse_dtd
        self.parser.StartElementHandler = self._start

    def feed(self, chunk: bytes) -> None:
        try:
            self.parser.Parse(chunk, False)
        except expat.ExpatError:
            raise self._malformed() from None

    def close(self) -> None:
        try:
            self.parser.Parse(b"", True)
        except expat.ExpatError:
            raise self._malformed() from None

    def _malformed(self) -> FormInvalid:
        return _invalid("file.corrupt", "The workbook is damaged: one of its parts is not "
                        "well-formed XML.")

    def _refuse_dtd(self, *_args) -> None:
        raise _invalid("file.unsafe_xml", "The workbook contains a document type declaration "
                       "(DTD) or entity, which Excel never writes; it is refused as unsafe.")

    def _start(self, name: str, attrs: dict) -> None:
        namespace, _, local = name.rpartition(" ")
        if namespace not in SPREADSHEETML_NS:
            return
        if local == "row":
            self.rows += 1
            self.cells_in_row = 0
            if self.rows > self.limits.max_rows:
                raise _invalid("file.too_many_rows", f"A sheet has more than "
                               f"{self.limits.max_rows} rows; that is too large for a form.")
        elif local == "c":
            self.cells += 1
            self.cells_in_row += 1
            if self.cells_in_row > self.limits.max_columns:
                raise _invalid("file.too_many_columns", "A sheet row has more than "
                               f"{self.limits.max_columns} cells; that is too wide for a form.")
            if self.cells > self.limits.max_cells:
                raise _invalid("file.too_many_cells", f"A sheet has more than "
                               f"{self.limits.max_cells} cells; that is too large for a form.")


def check_text(data: bytes, limits: UploadLimits = DEFAULT_LIMITS) -> str:
    """A CSV or Markdown form as text: UTF-8 (a BOM is dropped), within the line cap."""
    check_size(data, limits)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _invalid("file.encoding", "Text forms (CSV, Markdown) must be saved as UTF-8."
                       ) from None
    if text.count("\n") > limits.max_text_lines:
        raise _invalid("file.too_many_rows", f"The file has more than {limits.max_text_lines} "
                       "lines; that is too large for a form.")
    return text


def check_xls(data: bytes, limits: UploadLimits = DEFAULT_LIMITS) -> None:
    """Row and column caps for an .xls, sheet by sheet, before pyxform turns cells into dicts.

    xlrd has to parse a sheet to count it (an .xls has no cheaper index), so this runs where
    compile runs: in the sandboxed child. A damaged file is left for pyxform's reader to
    describe.
    """
    check_size(data, limits)
    import xlrd

    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True)
    except Exception:  # xlrd raises many kinds on damaged files; pyxform's reader reports it
        return
    try:
        for index in range(book.nsheets):
            sheet = book.sheet_by_index(index)
            if sheet.nrows > limits.max_rows:
                raise _invalid("file.too_many_rows", f"The sheet '{sheet.name[:50]}' has more "
                               f"than {limits.max_rows} rows; that is too large for a form.")
            if sheet.ncols > limits.max_columns:
                raise _invalid("file.too_many_columns", f"The sheet '{sheet.name[:50]}' has "
                               f"more than {limits.max_columns} columns.")
            book.unload_sheet(index)
    except FormInvalid:
        raise
    except Exception:
        return
    finally:
        book.release_resources()


def check_workbook(data: bytes, kind: FileKind, limits: UploadLimits = DEFAULT_LIMITS) -> None:
    """The guard for ``kind``, as compile runs it before handing the bytes to pyxform."""
    if kind == "xlsx":
        check_xlsx_archive(data, limits)
    elif kind == "xls":
        check_xls(data, limits)
    elif kind in ("csv", "md"):
        check_text(data, limits)
    else:
        check_size(data, limits)
