"""Build the library's XLSForms from their readable sources.

    python -m forms.library.build           # write every <form>/<form>.xlsx and media/*.csv
    python -m forms.library.build --check   # exit 1 if a committed file differs from a build

Each form directory holds one Markdown table per sheet (``survey.md``, ``choices.md``,
``settings.md``, optionally ``entities.md``). A choice list the survey uses but the form does
not define comes from ``shared/choices.md`` (hand-written lists shared by the forms) or is
generated from packaged data (``lists.GENERATED_LISTS``: countries' currencies, regions,
ISCO, ISCED, ISIC …). The CSV files behind ``select_one_from_file`` are generated into
``media/``. The output is byte-for-byte repeatable: fixed workbook properties and zip
timestamps, rows in source order.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from forms.library import FORMS, LIBRARY_DIR, MEDIA_DIR, SHARED_DIR, LibraryForm

SHEETS = ("survey", "choices", "settings", "entities")
FIXED_TIME = datetime(2026, 1, 1)
ZIP_TIME = (2026, 1, 1, 0, 0, 0)
_SELECT = re.compile(r"^(select_one|select_multiple|rank)\s+(\S+)\s*$")
_SELECT_FILE = re.compile(r"^(?:select_one|select_multiple)_from_file\s+(\S+)\s*$")
_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}")
_MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")


class SourceError(Exception):
    """A source file the build cannot use; the message says which file and why."""


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]

    def column(self, name: str) -> list[str]:
        i = self.header.index(name)
        return [r[i] for r in self.rows]


def read_table(path: Path) -> Table:
    """One Markdown table: the first ``|`` line is the header, ``|---|`` lines are skipped,
    other lines (headings, notes) are ignored. ``\\|`` is a literal bar in a cell."""
    header: list[str] | None = None
    rows: list[list[str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line.startswith("|") or _SEPARATOR.match(line):
            continue
        cells = [c.strip().replace("\\|", "|")
                 for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if header is None:
            header = cells
        elif len(cells) != len(header):
            raise SourceError(f"{path.name} line {number}: {len(cells)} cells, the header has "
                              f"{len(header)}")
        else:
            rows.append(cells)
    if header is None:
        raise SourceError(f"{path.name}: no table")
    return Table(header, rows)


def _lists_used(survey: Table) -> list[str]:
    used: list[str] = []
    for type_ in survey.column("type"):
        match = _SELECT.match(type_)
        if match and not match.group(2).startswith("${") and match.group(2) not in used:
            used.append(match.group(2))
    return used


def media_used(survey: Table) -> list[str]:
    used: list[str] = []
    for type_ in survey.column("type"):
        match = _SELECT_FILE.match(type_)
        if match and match.group(1) not in used:
            used.append(match.group(1))
    return used


def _shared_lists() -> dict[str, list[dict[str, str]]]:
    table = read_table(SHARED_DIR / "choices.md")
    lists: dict[str, list[dict[str, str]]] = {}
    for row in table.rows:
        record = dict(zip(table.header, row, strict=True))
        lists.setdefault(record["list_name"], []).append(record)
    return lists


def _generated(name: str) -> list[dict[str, str]] | None:
    from forms.library import lists

    make = lists.GENERATED_LISTS.get(name)
    if make is None:
        return None
    return [{"list_name": name, "name": item.name,
             **{f"label::{lang}": text for lang, text in item.labels.items()}, **item.extra}
            for item in make()]


def choices_table(form: LibraryForm, survey: Table) -> Table:
    """The form's own lists, then every list it uses but does not define, in first use."""
    own_path = form.directory / "choices.md"
    own = read_table(own_path) if own_path.exists() else Table(
        ["list_name", "name", "label::English (en)", "label::Kiswahili (sw)"], [])
    header = list(own.header)
    records = [dict(zip(own.header, r, strict=True)) for r in own.rows]
    defined = {r["list_name"] for r in records}
    shared = _shared_lists()
    for name in _lists_used(survey):
        if name in defined:
            continue
        added = shared.get(name) or _generated(name)
        if added is None:
            raise SourceError(f"{form.form_id}: the survey uses the choice list '{name}', "
                              "which neither the form, shared/choices.md nor the generated "
                              "lists define")
        records += added
        defined.add(name)
    for record in records:
        header += [k for k in record if k not in header]
    return Table(header, [[r.get(c, "") for c in header] for r in records])


def sheets(form: LibraryForm) -> dict[str, Table]:
    survey = read_table(form.directory / "survey.md")
    out = {"survey": survey, "choices": choices_table(form, survey),
           "settings": read_table(form.directory / "settings.md")}
    entities = form.directory / "entities.md"
    if entities.exists():
        out["entities"] = read_table(entities)
    return out


def workbook_bytes(tables: dict[str, Table]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.remove(workbook.active)
    workbook.properties.creator = "dodoso forms.library.build"
    workbook.properties.lastModifiedBy = "dodoso forms.library.build"
    workbook.properties.created = FIXED_TIME
    workbook.properties.modified = FIXED_TIME
    for name in SHEETS:
        if name not in tables:
            continue
        table = tables[name]
        sheet = workbook.create_sheet(name)
        sheet.append(table.header)
        for row in table.rows:
            sheet.append([cell if cell != "" else None for cell in row])
        sheet.freeze_panes = "A2"
    raw = io.BytesIO()
    workbook.save(raw)
    return _repeatable_zip(raw.getvalue())


def _repeatable_zip(data: bytes) -> bytes:
    """The same archive without the time of the build: openpyxl stamps every member, and the
    modified date in ``docProps/core.xml``, with the time it saves."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = _MODIFIED.sub(
                    rb"\g<1>" + FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode() + rb"\g<2>",
                    content)
            fixed = zipfile.ZipInfo(info.filename, date_time=ZIP_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            target.writestr(fixed, content)
    return out.getvalue()


def build_form(form: LibraryForm) -> bytes:
    tables = sheets(form)
    missing = [m for m in media_used(tables["survey"])
               if m not in form.media and m.removesuffix(".csv") not in form.entity_lists]
    if missing:
        raise SourceError(f"{form.form_id}: the survey reads {', '.join(missing)}; list it in "
                          "the registry's media (or entity_lists)")
    return workbook_bytes(tables)


def build_media() -> dict[str, bytes]:
    from forms.library import lists

    return {name: lists.csv_bytes(make()) for name, make in lists.MEDIA_FILES.items()}


def build_all() -> dict[Path, bytes]:
    """Every file the build writes, by path."""
    out = {form.xlsx_path: build_form(form) for form in FORMS}
    out.update({MEDIA_DIR / name: data for name, data in build_media().items()})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m forms.library.build",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="Write nothing; exit 1 if a committed file differs.")
    args = parser.parse_args(argv)
    try:
        built = build_all()
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = [p for p, data in built.items() if not p.exists() or p.read_bytes() != data]
    if args.check:
        for path in stale:
            print(f"out of date: {_shown(path)}", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(built[path])
        print(f"wrote {_shown(path)}")
    if not stale:
        print("up to date")
    return 0


def _shown(path: Path) -> str:
    return str(path.relative_to(LIBRARY_DIR)) if path.is_relative_to(LIBRARY_DIR) else str(path)


if __name__ == "__main__":
    sys.exit(main())
