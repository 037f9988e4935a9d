"""What makes an export safe to open: no cell a spreadsheet runs as a formula, no character
that breaks an XLSX file, sheet and file names every program accepts.

Formula neutralisation follows OWASP's advice for CSV injection: a text cell starting with
``=``, ``+``, ``-``, ``@``, TAB or CR (and, per our hostile-input list, LF and ``%``) gets a
single quote in front. Numbers in numeric fields (``-5``, ``-1.5e3``, a negative latitude)
and coordinates in geo fields are not formulas and stay as they are.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

FORMULA_TRIGGERS = frozenset("=+-@\t\r\n%")
NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
"""A decimal number as ODK writes one: no ``nan``/``inf``, no ``1_000``, no spaces."""
INTEGER = re.compile(r"[+-]?\d+")
GEO_TEXT = re.compile(r"[0-9eE.;+\- ]+")
"""A geotrace or geoshape as ODK writes one: points of numbers, ``;`` between them."""

_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
XLSX_MAX_CELL_CHARS = 32_767
XLSX_MAX_ROWS = 1_048_576
SHEET_NAME_MAX = 31
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\\x00-\x1f]")
_RESERVED_SHEET_NAMES = frozenset({"history"})

_FILE_NAME_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-~+()[]{}!,;=@ ")
_WINDOWS_RESERVED = re.compile(r"(?i)(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?")
MAX_FILE_NAME_BYTES = 255
_CENTRAL_UNSAFE = re.compile(r'[/\\?<>:*|"\x00-\x1f\x80-\x9f]')


def is_number(value: str) -> bool:
    return NUMBER.fullmatch(value) is not None


def neutralize(value: str) -> str:
    """Text a spreadsheet would run as a formula, made inert with a leading ``'``."""
    return "'" + value if value and value[0] in FORMULA_TRIGGERS else value


def neutralize_cell(value: object, kind: str) -> object:
    """A cell of a column of ``kind`` (see ``server.exports.columns.CellKind``): strings are
    neutralised, except numbers in numeric columns and coordinates in geo columns (digits,
    signs, dots, spaces and ``;`` cannot make a harmful formula)."""
    if isinstance(value, str) and value and value[0] in FORMULA_TRIGGERS:
        if kind in ("int", "decimal") and NUMBER.fullmatch(value):
            return value
        if kind == "geo" and GEO_TEXT.fullmatch(value):
            return value
        return "'" + value
    return value


def xml_text(value: str) -> str:
    """The string without the characters XML 1.0 (hence XLSX) cannot hold."""
    return _XML_ILLEGAL.sub("", value) if _XML_ILLEGAL.search(value) else value


def xlsx_text(value: str) -> str:
    """A string an XLSX cell can hold: XML-legal, at most 32,767 characters, no formula.
    (``xml_text`` and ``neutralize`` inlined: this runs for millions of cells.)"""
    if _XML_ILLEGAL.search(value):
        value = _XML_ILLEGAL.sub("", value)
    if value and value[0] in FORMULA_TRIGGERS:
        value = "'" + value
    return value if len(value) <= XLSX_MAX_CELL_CHARS else value[:XLSX_MAX_CELL_CHARS]


def xlsx_number(value: str, integer: bool) -> int | float | None:
    """The number a numeric field's text stands for, or None when it is not one (then the
    cell is text). Integers beyond what a double holds exactly stay text."""
    if integer and INTEGER.fullmatch(value):
        number = int(value)
        return number if abs(number) <= 2**53 else None
    if NUMBER.fullmatch(value):
        result = float(value)
        return result if result == result and abs(result) != float("inf") else None
    return None


class SheetNames:
    """Valid, unique XLSX sheet names: at most 31 characters, none of ``[]:*?/\\``, not
    starting or ending with ``'``, not ``History``, unique ignoring case (as Excel compares
    them)."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def claim(self, wanted: str, suffix: str = "") -> str:
        """A name from ``wanted`` (cut to fit) and ``suffix`` (kept whole), numbered
        `` (2)``, `` (3)`` … until it is unique."""
        base = _SHEET_FORBIDDEN.sub("_", xml_text(wanted)).strip("'").strip() or "Sheet"
        if base.lower() in _RESERVED_SHEET_NAMES:
            base = f"{base}_"
        name, n = self._fit(base, suffix), 1
        while name.lower() in self._used:
            n += 1
            name = self._fit(base, f"{suffix} ({n})")
        self._used.add(name.lower())
        return name

    @staticmethod
    def _fit(base: str, suffix: str) -> str:
        return (base[:SHEET_NAME_MAX - len(suffix)].rstrip("'").rstrip() or "Sheet") + suffix


def safe_file_name(name: str) -> str:
    """An archive entry name for an untrusted name, injective (two different names never
    give the same result, so entries cannot collide): characters outside a portable set are
    percent-encoded (``%`` too), and so are leading and trailing dots and spaces and the
    first letter of Windows' reserved device names. Letters of any script are kept as they
    are (no normalisation: NFC and NFD names stay distinct). Over 255 bytes, the name is cut
    and ends with ``~`` and a hash of the whole."""
    out = []
    last = len(name) - 1
    for i, c in enumerate(name):
        edge = i == 0 or i == last
        if c in _FILE_NAME_SAFE and not (edge and c in ". "):
            out.append(c)
        elif c.isalnum() or unicodedata.category(c).startswith("M"):
            out.append(c)  # letters and marks of any script are fine in every file system
        else:
            out.append("".join(f"%{b:02X}" for b in c.encode("utf-8")))
    result = "".join(out)
    if not result:
        return "%00"
    if _WINDOWS_RESERVED.fullmatch(result):
        result = f"%{ord(result[0]):02X}{result[1:]}"
    if len(result.encode("utf-8")) > MAX_FILE_NAME_BYTES:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        stem, dot, ext = result.rpartition(".")
        ext = f".{ext}" if dot and len(ext) <= 16 and "%" not in ext else ""
        room = MAX_FILE_NAME_BYTES - len(ext) - len(digest) - 1
        result = _cut_utf8(result, room) + "~" + digest + ext
    return result


def central_file_name(name: str) -> str:
    """A file name the way Central's ``sanitize-filename`` makes one: the characters file
    systems refuse are dropped, as are trailing dots and spaces; reserved names become
    ``_``; at most 255 bytes."""
    cleaned = _CENTRAL_UNSAFE.sub("", name)
    if cleaned in (".", ".."):
        cleaned = ""
    cleaned = cleaned.rstrip(". ")
    if _WINDOWS_RESERVED.fullmatch(cleaned):
        cleaned = ""
    return _cut_utf8(cleaned, MAX_FILE_NAME_BYTES) or "_"


def _cut_utf8(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    cut = encoded[:limit].decode("utf-8", "ignore")
    while cut.endswith("%") or (len(cut) >= 2 and cut[-2] == "%"):
        cut = cut[:-1]  # never leave half of a %XX escape
    return cut
