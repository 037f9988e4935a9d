"""Write XLSForms in tests as markdown tables (pyxform's format) and turn them into real
.xlsx workbooks, so API tests upload what designers upload."""

from __future__ import annotations

import io

from openpyxl import Workbook


def md_to_sheets(md: str) -> dict[str, list[list[str]]]:
    """``| survey | | |`` starts a sheet; the following rows (first cell empty) are its rows."""
    sheets: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for line in md.strip().splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0]:
            current = sheets.setdefault(cells[0], [])
            continue
        if current is not None:
            current.append(cells[1:])
    return sheets


def md_to_xlsx(md: str) -> bytes:
    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, rows in md_to_sheets(md).items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append([cell if cell != "" else None for cell in row])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
