"""The export formats, each written from iterators of rows in constant memory: CSV, a zip of
CSVs (with the files under ``media/``), XLSX (streamed, see ``server.exports.xlsx``), GeoJSON,
and a zip of the submissions' files.

Writers pull rows only as fast as their output is consumed: nothing here holds a table. A
table source is a ``(Table, rows)`` pair produced lazily by the caller, so the query of the
next table runs only once the previous table is written.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from zipstream import ZIP_DEFLATED, ZIP_STORED, ZipStream

from server.exports import xlsx as xlsx_stream
from server.exports.columns import Column, Table
from server.exports.safety import (
    FORMULA_TRIGGERS,
    GEO_TEXT,
    XLSX_MAX_ROWS,
    SheetNames,
    neutralize,
    neutralize_cell,
    safe_file_name,
    xlsx_number,
    xlsx_text,
)
from server.storage import BlobNotFound
from sync.flatten import split_points

CHUNK_BYTES = 1 << 16
DEFLATE_LEVEL = 1
"""zlib level of the CSVs in a zip: about 4× faster than the default (6) for ~25% more
bytes, which keeps a 100k-submission export CPU-light."""
Rows = Iterable[Sequence[Any]]
TableSource = Iterable[tuple[Table, Rows]]
MISSING_MANIFEST = "missing-files.csv"
"""Listed at the root of a zip when stored files could not be read: never a silent gap."""


@dataclass(frozen=True)
class StoredFile:
    """A file to put in an archive: where, which submission and name it is, and how to
    read it (``open`` raises BlobNotFound when the bytes are gone)."""

    arcname: str
    key: str
    name: str
    size: int
    open: Callable[[], Iterator[bytes]]


# -- CSV --------------------------------------------------------------------------------------

def csv_bytes(columns: Sequence[Column], rows: Rows) -> Iterator[bytes]:
    """RFC 4180 CSV (UTF-8, CRLF, quoted as needed) of a header and rows, in ~64 KiB chunks.
    Text cells that a spreadsheet would run as formulas start with ``'`` (rows given as
    lists are changed in place)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([neutralize(c.header) for c in columns])
    checks = _text_columns(columns)
    triggers = FORMULA_TRIGGERS
    for row in rows:
        if row.__class__ is not list:
            row = list(row)
        for i, kind in checks:
            value = row[i]
            if value.__class__ is str and value and value[0] in triggers:
                row[i] = neutralize_cell(value, kind)
        writer.writerow(row)
        if buffer.tell() >= CHUNK_BYTES:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _text_columns(columns: Sequence[Column]) -> list[tuple[int, str]]:
    return [(i, c.kind) for i, c in enumerate(columns) if c.kind != "count"]


# -- zips -------------------------------------------------------------------------------------

def csv_zip(tables: TableSource, files: Iterable[StoredFile] = ()) -> Iterator[bytes]:
    """One CSV per table (deflated, fast), then the files (stored as they are: photos and
    recordings are compressed already), then, when some could not be read, a manifest of
    them."""
    archive = ZipStream(compress_type=ZIP_DEFLATED, compress_level=DEFLATE_LEVEL)
    for table, rows in tables:
        archive.add(csv_bytes(table.columns, rows), table.file_name)
        yield from archive.all_files()
    yield from _add_files(archive, files)
    yield from archive.footer()


def files_zip(files: Iterable[StoredFile]) -> Iterator[bytes]:
    archive = ZipStream(compress_type=ZIP_STORED)
    yield from _add_files(archive, files)
    yield from archive.footer()


def _add_files(archive: ZipStream, files: Iterable[StoredFile]) -> Iterator[bytes]:
    missing: list[tuple[str, str]] = []
    for stored in files:
        try:
            chunks = stored.open()
        except BlobNotFound:
            missing.append((stored.key, stored.name))
            continue
        archive.add(chunks, stored.arcname, size=stored.size, compress_type=ZIP_STORED)
        yield from archive.all_files()
    if missing:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["KEY", "name", "problem"])
        writer.writerows([neutralize(k), neutralize(n), "stored file missing"]
                         for k, n in missing)
        archive.add(out.getvalue().encode("utf-8"), MISSING_MANIFEST)
        yield from archive.all_files()


def media_arcname(name: str, key: str, *, shared: bool) -> str:
    """``media/<name>`` as Central does; when several files share the name, each goes under
    its submission: ``media/<instanceID>/<name>``. Both parts are made safe."""
    if shared:
        return f"media/{safe_file_name(key)}/{safe_file_name(name)}"
    return f"media/{safe_file_name(name)}"


def submission_arcname(name: str, key: str) -> str:
    """``<instanceID>/<name>``, both parts made safe (injectively, so never a collision)."""
    return f"{safe_file_name(key)}/{safe_file_name(name)}"


# -- XLSX -------------------------------------------------------------------------------------

def xlsx(tables: TableSource, *, max_rows: int = XLSX_MAX_ROWS) -> Iterator[bytes]:
    """One sheet per table (the root sheet named after the form, a repeat's after the
    repeat); a table longer than a sheet continues on ``name (2)``, ``name (3)`` … each with
    the header. Numbers in numeric fields are numeric cells; all text is a string cell,
    neutralised, without XML-illegal characters."""
    if max_rows < 2:
        raise ValueError("a sheet needs room for its header and a row")
    book = xlsx_stream.Workbook(level=DEFLATE_LEVEL)
    names = SheetNames()
    for table, rows in tables:
        header = [xlsx_text(c.header) for c in table.columns]
        convert = _xlsx_converters(table.columns)
        cells = _Peek([c(v) if v is not None else None for c, v in zip(convert, row,
                                                                        strict=True)]
                      for row in rows)
        name, part = names.claim(table.name), 1
        while True:
            yield from book.sheet(name, len(header), cells.take(header, max_rows))
            if cells.done:
                break
            part += 1
            name = names.claim(table.name, f" ({part})")
    yield from book.close()


class _Peek:
    """Rows handed out a sheet at a time, knowing whether any are left."""

    _END = object()

    def __init__(self, rows: Iterable[Any]) -> None:
        self._rows = iter(rows)
        self._next = next(self._rows, self._END)

    @property
    def done(self) -> bool:
        return self._next is self._END

    def take(self, header: list[Any], limit: int) -> Iterator[Any]:
        """The header, then rows until the sheet has ``limit`` rows or none are left."""
        yield header
        for _ in range(limit - 1):
            if self._next is self._END:
                return
            yield self._next
            self._next = next(self._rows, self._END)


def _xlsx_converters(columns: Sequence[Column]) -> list[Callable[[Any], Any]]:
    return [_XLSX_CONVERTERS[c.kind] for c in columns]


def _xlsx_int(value: Any) -> Any:
    if isinstance(value, str):
        number = xlsx_number(value, integer=True)
        return xlsx_text(value) if number is None else number
    return value


def _xlsx_decimal(value: Any) -> Any:
    if isinstance(value, str):
        number = xlsx_number(value, integer=False)
        return xlsx_text(value) if number is None else number
    return value


def _xlsx_str(value: Any) -> Any:
    return xlsx_text(value if value.__class__ is str else str(value))


def _xlsx_geo(value: Any) -> Any:
    text = value if isinstance(value, str) else str(value)
    return text if GEO_TEXT.fullmatch(text) else xlsx_text(text)


def _xlsx_count(value: Any) -> Any:
    return value if isinstance(value, int) else _xlsx_int(str(value))


_XLSX_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "text": _xlsx_str, "int": _xlsx_int, "decimal": _xlsx_decimal, "count": _xlsx_count,
    "geo": _xlsx_geo}


# -- GeoJSON ----------------------------------------------------------------------------------

def geojson(table: Table, geo_path: str, geo_type: str,
            rows: Iterable[tuple[Sequence[Any], str | None]]) -> Iterator[bytes]:
    """A FeatureCollection: one Feature per row whose ``geo_path`` answer is a valid
    geopoint (Point), geotrace (LineString) or geoshape (Polygon); ``id`` is the row's KEY,
    ``properties`` its other columns (numbers as numbers). Rows without a usable geometry
    are left out."""
    columns = table.columns
    keep = [i for i, c in enumerate(columns) if c.field != geo_path]
    key_index = next(i for i, c in enumerate(columns) if c.header == "KEY" and c.field is None)
    names = [columns[i].header for i in keep]
    kinds = [columns[i].kind for i in keep]
    parts: list[str] = []
    size = 0
    yield b'{"type":"FeatureCollection","features":['
    separator = ""
    for cells, value in rows:
        geometry = parse_geometry(geo_type, value)
        if geometry is None:
            continue
        properties = {name: _json_value(cells[i], kind)
                      for name, i, kind in zip(names, keep, kinds, strict=True)}
        feature = {"type": "Feature", "id": cells[key_index], "geometry": geometry,
                   "properties": properties}
        text = separator + json.dumps(feature, ensure_ascii=False, separators=(",", ":"))
        separator = ","
        parts.append(text)
        size += len(text)
        if size >= CHUNK_BYTES:
            yield "".join(parts).encode("utf-8")
            parts, size = [], 0
    parts.append("]}")
    yield "".join(parts).encode("utf-8")


def _json_value(value: Any, kind: str) -> Any:
    if kind in ("int", "decimal") and isinstance(value, str):
        number = xlsx_number(value, integer=kind == "int")
        return value if number is None else number
    return value


def parse_geometry(geo_type: str, value: str | None) -> dict[str, Any] | None:
    """GeoJSON geometry of an ODK geo answer (``lat lon [alt [acc]]`` points, ``;``
    between points), or None when it is empty or not valid. Positions are ``[lon, lat]``,
    with altitude when every point has one."""
    if not value:
        return None
    points = [_position(p) for p in (split_points(value) if geo_type != "geopoint"
                                     else [value])]
    if not points or any(p is None for p in points):
        return None
    positions: list[list[float]] = points  # type: ignore[assignment]
    if any(len(p) == 2 for p in positions):
        positions = [p[:2] for p in positions]
    if geo_type == "geopoint":
        return {"type": "Point", "coordinates": positions[0]}
    if geo_type == "geotrace":
        return {"type": "LineString", "coordinates": positions} if len(positions) >= 2 else None
    if positions[0] != positions[-1]:
        positions.append(positions[0])
    return {"type": "Polygon", "coordinates": [positions]} if len(positions) >= 4 else None


def _position(point: str) -> list[float] | None:
    parts = point.split()
    if len(parts) < 2:
        return None
    try:
        numbers = [float(p) for p in parts[:3]]
    except ValueError:
        return None
    if any(n != n or abs(n) == float("inf") for n in numbers):
        return None
    lat, lon = numbers[0], numbers[1]
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return [lon, lat, numbers[2]] if len(numbers) == 3 else [lon, lat]
