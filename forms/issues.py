"""What designers are told about their form: structured, located, with a stable code.

An issue says where (sheet, row, column, when known), what (a stable ``code`` and a message
a designer can act on) and, when it came from pyxform or ODK Validate, their original text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class FormIssue:
    level: Level
    code: str
    message: str
    sheet: str | None = None
    row: int | None = None
    column: str | None = None
    original: str | None = None
    field: str | None = None  # the form field's path, when the issue is about one

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def describe(self) -> str:
        """One line for a terminal: ``survey row 5, name: message``."""
        where = " ".join(p for p in (
            self.sheet or "",
            f"row {self.row}" if self.row is not None else "",
        ) if p)
        if self.column:
            where = f"{where}, {self.column}" if where else self.column
        return f"{self.level.upper()} {where + ': ' if where else ''}{self.message} [{self.code}]"


class FormInvalid(Exception):
    """The upload is not a usable form. ``issues`` holds every error found (and warnings)."""

    def __init__(self, issues: list[FormIssue], *, too_large: bool = False) -> None:
        super().__init__("; ".join(i.message for i in issues if i.level == "error"))
        self.issues = issues
        self.too_large = too_large

    @property
    def errors(self) -> list[FormIssue]:
        return [i for i in self.issues if i.level == "error"]

    @property
    def warnings(self) -> list[FormIssue]:
        return [i for i in self.issues if i.level == "warning"]
