"""Form media checks: a CSV a form reads (choices, pulldata) must be readable and have the
columns the form uses, or Collect fails on the tablet, silently or with a cryptic error."""

from __future__ import annotations

import csv
import io
from collections.abc import Set

from forms.issues import FormIssue

MAX_CSV_COLUMNS = 1000
CSV_MEDIA_SUFFIX = ".csv"


def check_csv(name: str, data: bytes,
              required_columns: Set[str]) -> list[FormIssue]:
    """Every problem with a CSV attachment; empty when Collect can use it."""
    def err(code: str, message: str, row: int | None = None) -> FormIssue:
        return FormIssue("error", code, message, sheet=name, row=row)

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [err("csv.encoding", f"{name} is not UTF-8 text (byte {exc.start}). Save it "
                                    "as 'CSV UTF-8' from your spreadsheet program.")]
    if "\x00" in text:
        return [err("csv.binary", f"{name} contains NUL bytes: it is not a CSV file.")]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        return [err("csv.unreadable", f"{name} could not be read as CSV: {exc}.", row=1)]
    if not header or not any(h.strip() for h in header):
        return [err("csv.no_header", f"{name} has no header row naming its columns.", row=1)]
    if len(header) > MAX_CSV_COLUMNS:
        return [err("csv.too_many_columns", f"{name} has {len(header)} columns; at most "
                                            f"{MAX_CSV_COLUMNS} are supported.", row=1)]
    issues: list[FormIssue] = []
    columns = [h.strip() for h in header]
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            issues.append(err("csv.duplicate_column",
                              f"{name} has the column '{column}' twice.", row=1))
        seen.add(column)
    missing = sorted(set(required_columns) - seen)
    if missing:
        issues.append(err(
            "csv.missing_columns",
            f"{name} lacks the column(s) {', '.join(missing)} that the form uses; it has "
            f"{', '.join(c for c in columns if c) or 'none'}.", row=1))
    try:
        for number, row in enumerate(reader, start=2):
            if len(row) > len(columns) and any(cell.strip() for cell in row[len(columns):]):
                issues.append(err("csv.ragged_row", f"{name} row {number} has more cells "
                                                    f"than the header has columns.", row=number))
                break
    except csv.Error as exc:
        issues.append(err("csv.unreadable", f"{name} could not be read as CSV: {exc}."))
    return issues
