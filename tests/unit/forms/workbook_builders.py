"""Spreadsheets built in memory for the form tests: real .xlsx (openpyxl or part by part),
a minimal real .xls (BIFF8 in an OLE2 container, readable by xlrd) and zip bombs.

Binaries are built here rather than committed, so a test shows what it feeds the code.
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Sequence
from io import BytesIO

from openpyxl import Workbook

Rows = Sequence[Sequence[object]]

SIMPLE_SURVEY: Rows = [["type", "name", "label"], ["integer", "age", "Age"],
                       ["text", "name", "Name"]]

OPC = "http://schemas.openxmlformats.org"
MAIN_NS = f"{OPC}/spreadsheetml/2006/main"
RELATIONSHIPS_NS = f"{OPC}/package/2006/relationships"
RELATION = f"{OPC}/officeDocument/2006/relationships"
SHEETML = "application/vnd.openxmlformats-officedocument.spreadsheetml"


def _override(part: str, kind: str) -> str:
    return f'<Override PartName="{part}" ContentType="{SHEETML}.{kind}+xml"/>'


def _relationships(*targets: tuple[str, str]) -> str:
    links = "".join(f'<Relationship Id="rId{i}" Type="{RELATION}/{kind}" Target="{target}"/>'
                    for i, (kind, target) in enumerate(targets, start=1))
    return (f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{RELATIONSHIPS_NS}">'
            f"{links}</Relationships>")


CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    f'<Types xmlns="{OPC}/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    + _override("/xl/workbook.xml", "sheet.main")
    + _override("/xl/worksheets/sheet1.xml", "worksheet")
    + _override("/xl/sharedStrings.xml", "sharedStrings")
    + "</Types>")
ROOT_RELS = _relationships(("officeDocument", "xl/workbook.xml"))
WORKBOOK = (
    f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{MAIN_NS}" xmlns:r="{RELATION}">'
    '<sheets><sheet name="survey" sheetId="1" r:id="rId1"/></sheets></workbook>')
WORKBOOK_RELS = _relationships(("worksheet", "worksheets/sheet1.xml"),
                               ("sharedStrings", "sharedStrings.xml"))


def xlsx(sheets: dict[str, Rows]) -> bytes:
    """A real workbook written by openpyxl (formulas written as text starting with '=')."""
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    out = BytesIO()
    book.save(out)
    return out.getvalue()


def sheet_xml(rows_xml: str, *, dimension: str = "A1:C3") -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{MAIN_NS}">'
            f'<dimension ref="{dimension}"/><sheetData>{rows_xml}</sheetData></worksheet>')


def inline_cells(number: int, *values: str, first_column: int = 0) -> str:
    """Text cells of row ``number`` from column ``first_column`` (0 = A); '' leaves a gap."""
    return "".join(f'<c r="{chr(65 + first_column + i)}{number}" t="inlineStr"><is><t>{v}'
                   "</t></is></c>" for i, v in enumerate(values) if v != "")


def inline_row(number: int, *values: str) -> str:
    return f'<row r="{number}">{inline_cells(number, *values)}</row>'


def hand_xlsx(sheet: str, *, shared_strings: str | None = None,
              extra: dict[str, bytes] | None = None,
              compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A one-sheet ('survey') workbook assembled part by part, for shapes openpyxl won't write."""
    strings = shared_strings or f'<?xml version="1.0"?><sst xmlns="{MAIN_NS}" count="0"/>'
    parts = {"[Content_Types].xml": CONTENT_TYPES, "_rels/.rels": ROOT_RELS,
             "xl/workbook.xml": WORKBOOK, "xl/_rels/workbook.xml.rels": WORKBOOK_RELS,
             "xl/worksheets/sheet1.xml": sheet, "xl/sharedStrings.xml": strings}
    out = BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


def simple_hand_xlsx() -> bytes:
    return hand_xlsx(sheet_xml(inline_row(1, "type", "name", "label")
                               + inline_row(2, "integer", "age", "Age")))


# ------------------------------------------------------------------------ a minimal .xls

def _record(kind: int, body: bytes) -> bytes:
    return struct.pack("<HH", kind, len(body)) + body


def _bof(substream: int) -> bytes:
    return _record(0x0809, struct.pack("<HHHHII", 0x0600, substream, 0x0DBB, 0x07CC, 0, 0x06))


def _label(row: int, col: int, text: str) -> bytes:
    encoded = text.encode("utf-16-le")
    return _record(0x0204, struct.pack("<HHHHB", row, col, 0, len(text), 1) + encoded)


def xls(sheets: dict[str, Rows]) -> bytes:
    """A BIFF8 workbook of text cells in an OLE2 compound file, as Excel 97-2003 writes."""
    eof = _record(0x000A, b"")
    sheet_streams = []
    for rows in sheets.values():
        cells = b"".join(_label(r, c, str(value)) for r, row in enumerate(rows)
                         for c, value in enumerate(row) if value not in (None, ""))
        sheet_streams.append(_bof(0x0010) + cells + eof)

    def globals_for(offsets: list[int]) -> bytes:
        records = [_bof(0x0005), _record(0x0042, struct.pack("<H", 1200))]
        for offset, name in zip(offsets, sheets, strict=True):
            encoded = name.encode("utf-16-le")
            records.append(_record(0x0085, struct.pack("<IHBB", offset, 0, len(name), 1)
                                   + encoded))
        return b"".join(records) + eof

    size = len(globals_for([0] * len(sheets)))
    offsets = []
    for stream in sheet_streams:
        offsets.append(size)
        size += len(stream)
    workbook = globals_for(offsets) + b"".join(sheet_streams)
    return ole2({"Workbook": workbook.ljust(max(4096, len(workbook)), b"\x00")})


def ole2(streams: dict[str, bytes]) -> bytes:
    """A version-3 compound file holding ``streams`` (each ≥ 4096 bytes: no mini stream)."""
    sector = 512
    end, free, fat_mark, no_stream = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF
    body, fat, entries = b"", [], []
    for name, data in streams.items():
        padded = data.ljust(-(-len(data) // sector) * sector, b"\x00")
        first = len(fat)
        count = len(padded) // sector
        fat.extend(list(range(first + 1, first + count)) + [end])
        entries.append((name, 2, first, len(data)))
        body += padded
    directory_sector = len(fat)
    fat.append(end)
    fat_sector = len(fat)
    fat.append(fat_mark)
    fat.extend([free] * (sector // 4 - len(fat)))

    def entry(name: str, kind: int, start: int, size: int, child: int) -> bytes:
        encoded = (name + "\x00").encode("utf-16-le")
        return (encoded.ljust(64, b"\x00") + struct.pack("<HBB", len(encoded), kind, 1)
                + struct.pack("<III", no_stream, no_stream, child) + b"\x00" * 16
                + b"\x00" * 4 + b"\x00" * 16 + struct.pack("<IIi", start, size, 0))

    directory = entry("Root Entry", 5, end, 0, 1)
    for name, kind, start, size in entries:
        directory += entry(name, kind, start, size, no_stream)
    directory = directory.ljust(sector, b"\x00")
    header = (bytes.fromhex("D0CF11E0A1B11AE1") + b"\x00" * 16
              + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + b"\x00" * 6
              + struct.pack("<9I", 0, 1, directory_sector, 0, 4096, end, 0, end, 0)
              + struct.pack("<I", fat_sector) + struct.pack("<I", free) * 108)
    return header.ljust(sector, b"\x00") + body + directory + struct.pack(f"<{len(fat)}I", *fat)


# ------------------------------------------------------------------------------ zip bombs

def single_cell_bomb(cell_bytes: int = 200_000_000) -> bytes:
    """A workbook whose shared string is one cell of ``cell_bytes`` bytes, deflated hard.

    Built by streaming into the zip so the test never holds the 200 MB string.
    """
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", ROOT_RELS)
        archive.writestr("xl/workbook.xml", WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        archive.writestr("xl/worksheets/sheet1.xml",
                         sheet_xml('<row r="1"><c r="A1" t="s"><v>0</v></c></row>'))
        with archive.open("xl/sharedStrings.xml", "w", force_zip64=False) as part:
            part.write(f'<sst xmlns="{MAIN_NS}" count="1"><si><t>'.encode())
            chunk = b"A" * 1_000_000
            for _ in range(cell_bytes // len(chunk)):
                part.write(chunk)
            part.write(b"</t></si></sst>")
    return out.getvalue()


def lying_header(data: bytes, member: str, declared_size: int) -> bytes:
    """``data`` with ``member``'s declared uncompressed size (local and central) rewritten."""
    buffer = bytearray(data)
    encoded = member.encode()
    # (signature, offset of the uncompressed size, of the name length, of the name)
    for signature, size_at, length_at, name_at in ((b"PK\x03\x04", 22, 26, 30),
                                                   (b"PK\x01\x02", 24, 28, 46)):
        start = 0
        while (start := buffer.find(signature, start)) != -1:
            length = struct.unpack_from("<H", buffer, start + length_at)[0]
            if bytes(buffer[start + name_at:start + name_at + length]) == encoded:
                struct.pack_into("<I", buffer, start + size_at, declared_size)
            start += 4
    return bytes(buffer)
