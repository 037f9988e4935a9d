"""The writers on their own: CSV round trips, zips, XLSX sheets split at a (tiny) row limit,
GeoJSON geometries, missing files listed, and rows pulled only as output is consumed."""

from __future__ import annotations

import csv
import io
import itertools
import json
import zipfile

import pytest
from openpyxl import load_workbook

from server.exports import writers
from server.exports.columns import Column, Table
from server.storage import BlobNotFound

COLUMNS = [Column("name", "text"), Column("age", "int"), Column("wage", "decimal"),
           Column("route", "geo"), Column("n", "count")]


def table(name: str = "t", path: str = "", file_name: str = "t.csv",
          columns=COLUMNS) -> Table:
    return Table(path, name, file_name, list(columns), [])


def parse_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


class Counted:
    """An endless row source that counts how many rows were taken."""

    def __init__(self) -> None:
        self.taken = 0

    def __iter__(self):
        for i in itertools.count():
            self.taken += 1
            yield [f"row {i} " + "x" * 50, str(i), "1.5", None, i]


def test_csv__round_trips_quotes_commas_newlines_and_nul():
    values = ['a "quoted", value', "line\r\nbreak", "nul\x00byte", "\x01\x0b", "ünï 😀"]
    data = b"".join(writers.csv_bytes([Column("v", "text")], [[v] for v in values]))
    assert data.startswith(b"v\r\n")
    assert [r[0] for r in parse_csv(data)[1:]] == values


def test_csv__neutralises_text_but_not_numbers_or_coordinates():
    rows = [["=1+1", "-5", "-1.5e3", "-6.8 39.2 0 0;-6.9 39 0 0", -1],
            ["@x", "=2", "-1,5", "-1|cmd", 0]]
    header = [Column("=header", "text"), *COLUMNS[1:]]
    out = parse_csv(b"".join(writers.csv_bytes(header, rows)))
    assert out[0][0] == "'=header"
    assert out[1] == ["'=1+1", "-5", "-1.5e3", "-6.8 39.2 0 0;-6.9 39 0 0", "-1"]
    assert out[2] == ["'@x", "'=2", "'-1,5", "'-1|cmd", "0"]


def test_csv__rows_are_pulled_as_the_output_is_consumed():
    source = Counted()
    chunks = writers.csv_bytes(COLUMNS, source)
    first = next(chunks)
    assert first.startswith(b"name,age")
    assert 0 < source.taken < 5_000  # one ~64 KiB chunk's worth, not the endless table


def test_csv_zip__first_chunk_before_the_table_is_read_whole():
    source = Counted()
    chunks = writers.csv_zip(iter([(table(), source)]))
    taken = 0
    for _ in range(3):
        next(chunks)
        taken = source.taken
    assert taken < 10_000


def test_csv_zip__tables_then_files_then_a_manifest_of_missing_ones():
    def opener(content: bytes | None):
        def open_():
            if content is None:
                raise BlobNotFound("gone")
            return iter([content[:2], content[2:]])
        return open_

    files = [writers.StoredFile("media/a.jpg", "uuid:1", "a.jpg", 5, opener(b"abcde")),
             writers.StoredFile("media/b.jpg", "uuid:2", "=b.jpg", 3, opener(None))]
    tables = [(table(), [["x", "1", None, None, 1]]),
              (table("r", "/r", "t-r.csv", [Column("y", "text")]), [["=z"]])]
    data = b"".join(writers.csv_zip(iter(tables), files))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["t.csv", "t-r.csv", "media/a.jpg",
                                      writers.MISSING_MANIFEST]
        assert archive.getinfo("media/a.jpg").compress_type == zipfile.ZIP_STORED
        assert archive.read("media/a.jpg") == b"abcde"
        assert parse_csv(archive.read("t-r.csv")) == [["y"], ["'=z"]]
        assert parse_csv(archive.read(writers.MISSING_MANIFEST)) == [
            ["KEY", "name", "problem"], ["uuid:2", "'=b.jpg", "stored file missing"]]


def test_files_zip__empty_is_still_a_zip():
    data = b"".join(writers.files_zip([]))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == []


def test_xlsx__tables_split_into_sheets_past_the_row_limit():
    rows = [[f"n{i}", str(i), "-1.5", "-1 2;3 4", i] for i in range(7)]
    data = b"".join(writers.xlsx(iter([(table("Roster"), rows),
                                       (table("roster", "/r"), rows[:1])]), max_rows=3))
    book = load_workbook(io.BytesIO(data), read_only=True)
    assert book.sheetnames == ["Roster", "Roster (2)", "Roster (3)", "Roster (4)",
                               "roster (5)"]
    seen = []
    for name in book.sheetnames[:4]:
        sheet_rows = list(book[name].iter_rows(values_only=True))
        assert sheet_rows[0] == ("name", "age", "wage", "route", "n")
        assert len(sheet_rows) <= 3
        seen += sheet_rows[1:]
    assert seen == [(f"n{i}", i, -1.5, "-1 2;3 4", i) for i in range(7)]


def test_xlsx__strings_never_become_formulas():
    data = b"".join(writers.xlsx(iter([(table(), [["=cmd|'/c calc'!A0", "=1", "-x", "=geo",
                                                  1]])])))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml")
    assert b"<f>" not in sheet and b"<f " not in sheet
    values = list(load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True))
    assert values[1] == ("'=cmd|'/c calc'!A0", "'=1", "'-x", "'=geo", 1)


def test_xlsx__an_exact_fit_makes_no_empty_sheet_and_an_empty_table_has_its_header():
    rows = [["a", "1", None, None, 1], ["b", "2", None, None, 2]]
    data = b"".join(writers.xlsx(iter([(table("full"), rows), (table("empty"), [])]),
                                 max_rows=3))
    book = load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["full", "empty"]
    assert [r[0] for r in book["full"].iter_rows(values_only=True)] == ["name", "a", "b"]
    assert list(book["empty"].iter_rows(values_only=True)) == [
        ("name", "age", "wage", "route", "n")]


def test_xlsx__workbook_parts_and_escaping():
    rows = [['<b>&"x"</b>', "1e3", "-0.5", "1 2", 0], ["  spaced\r\n\t", None, None, None, 3]]
    data = b"".join(writers.xlsx(iter([(table("Sheet & <1>"), rows)])))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        names = set(archive.namelist())
    assert {"[Content_Types].xml", "_rels/.rels", "xl/workbook.xml",
            "xl/_rels/workbook.xml.rels", "xl/styles.xml", "xl/worksheets/sheet1.xml"} <= names
    book = load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["Sheet & <1>"]
    values = list(book.active.iter_rows(values_only=True))
    assert values[1] == ('<b>&"x"</b>', 1000.0, -0.5, "1 2", 0)
    assert values[2] == ("  spaced\r\n\t", None, None, None, 3)  # CR survives XML parsing
    assert book.active.freeze_panes == "A2"


def test_xlsx__rows_are_pulled_as_the_output_is_consumed():
    source = Counted()
    chunks = writers.xlsx(iter([(table(), source)]))
    for _ in range(3):
        next(chunks)
    assert source.taken < 10_000


def test_xlsx__a_limit_without_room_for_rows_is_refused():
    with pytest.raises(ValueError):
        next(writers.xlsx(iter([]), max_rows=1))


@pytest.mark.parametrize(("kind", "value", "geometry"), [
    ("geopoint", "-1.5 36.8", {"type": "Point", "coordinates": [36.8, -1.5]}),
    ("geopoint", "-1.5 36.8 1600 5", {"type": "Point", "coordinates": [36.8, -1.5, 1600.0]}),
    ("geotrace", "1 2 0 0;3 4 0 0", {"type": "LineString",
                                     "coordinates": [[2.0, 1.0, 0.0], [4.0, 3.0, 0.0]]}),
    ("geotrace", "1 2;3 4 5", {"type": "LineString", "coordinates": [[2.0, 1.0], [4.0, 3.0]]}),
    ("geoshape", "0 0;0 1;1 1;0 0", {"type": "Polygon", "coordinates": [
        [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]]}),
    ("geoshape", "0 0;0 1;1 1", {"type": "Polygon", "coordinates": [
        [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]]}),
    ("geopoint", "", None), ("geopoint", "91 0", None), ("geopoint", "0 181", None),
    ("geopoint", "nan 1", None), ("geopoint", "abc def", None), ("geopoint", "1", None),
    ("geotrace", "1 2", None), ("geoshape", "0 0;1 1", None),
])
def test_parse_geometry(kind, value, geometry):
    assert writers.parse_geometry(kind, value) == geometry


def test_geojson__features_with_properties_and_rows_without_geometry_left_out():
    columns = [Column("name", "text"), Column("p-Latitude", "decimal", "/p"),
               Column("p-Longitude", "decimal", "/p"), Column("age", "int", "/age"),
               Column("KEY", "text")]
    rows = [(["=Amina", "1", "2", "34", "uuid:1"], "1 2"),
            (["Nobody", None, None, "x", "uuid:2"], None)]
    data = json.loads(b"".join(writers.geojson(table(columns=columns), "/p", "geopoint",
                                               rows)))
    assert data == {"type": "FeatureCollection", "features": [{
        "type": "Feature", "id": "uuid:1",
        "geometry": {"type": "Point", "coordinates": [2.0, 1.0]},
        "properties": {"name": "=Amina", "age": 34, "KEY": "uuid:1"}}]}


def test_arcnames__media_and_submission_folders():
    assert writers.media_arcname("a.jpg", "uuid:1", shared=False) == "media/a.jpg"
    assert writers.media_arcname("a.jpg", "uuid:1", shared=True) == "media/uuid%3A1/a.jpg"
    assert writers.submission_arcname("../x", "uuid:1") == "uuid%3A1/%2E.%2Fx"
