"""XLSForm → XForm with pyxform, every failure turned into located FormIssues.

The workbook is read once with pyxform's own reader, linted (forms.feedback: every common
mistake, not only the first), then converted by ``pyxform.xls2xform.convert``. Whatever
pyxform raises, and every warning it returns, becomes a FormIssue with a stable code and,
where pyxform's text says so, the sheet, row and column.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, fields
from io import BytesIO
from string import Formatter
from typing import Any
from urllib.parse import unquote

from pyxform.errors import ErrorCode, PyXFormError
from pyxform.parsing.expression import is_xml_tag
from pyxform.xls2json_backends import Definition, DefinitionData, SupportedFileTypes
from pyxform.xls2xform import convert

from forms import feedback as fb
from forms import guards
from forms.guards import DEFAULT_LIMITS, FileKind, UploadLimits
from forms.issues import FormInvalid, FormIssue
from forms.validate import odk_validate

INVALID = "xlsform.invalid"
WARNING = "xlsform.warning"
CORRUPT = "file.corrupt"
TOO_COMPLEX = "form.compile_too_large"
MAX_MESSAGE_CHARS = 1000
MAX_FORM_ID_CHARS = 64
_FORM_KINDS = ("xlsx", "xls", "csv", "md")
_DEFINITION_FIELDS = frozenset(f.name for f in fields(DefinitionData))


@dataclass(frozen=True)
class CompileResult:
    xform: bytes
    warnings: list[FormIssue]
    itemsets: str | None = None  # CSV of external_choices, for select_one_external


def fallback_form_id(value: str | None) -> str | None:
    """An X-XlsForm-FormId-Fallback value (usually the file name) made a usable form id.

    Like pyxform-http: percent-decoded and reduced to its base name; then the extension is
    dropped and anything not valid in an XML name becomes ``_``.
    """
    if not value:
        return None
    name = unquote(value).replace("\\", "/").rsplit("/", 1)[-1].strip()
    stem, dot, suffix = name.rpartition(".")
    if dot and suffix.lower() in ("xlsx", "xlsm", "xls", "csv", "md", "xml"):
        name = stem
    name = re.sub(r"[^\w.\-]", "_", name)[:MAX_FORM_ID_CHARS].strip("._-") or ""
    if name and not is_xml_tag(name[0]):
        name = f"_{name}"[:MAX_FORM_ID_CHARS]
    return name if name and is_xml_tag(name) else None


def compile_xlsform(data: bytes, *, kind: FileKind, form_id_fallback: str | None = None,
                    validate: bool = False, java: str | None = None,
                    limits: UploadLimits = DEFAULT_LIMITS) -> CompileResult:
    """Convert an XLSForm (bytes of ``kind``) to an XForm, or raise FormInvalid with all issues.

    The form id is the settings sheet's form_id; when there is none it is
    ``fallback_form_id(form_id_fallback)`` (Central's X-XlsForm-FormId-Fallback), else
    pyxform's default ``data``. The instance root stays pyxform's (``data`` unless the
    settings sheet sets ``name``).
    """
    if kind not in _FORM_KINDS:
        raise FormInvalid([FormIssue("error", "file.not_an_xlsform",
                                     f"A {kind} file is not an XLSForm.")])
    try:
        return _compile(data, kind, form_id_fallback, validate, java, limits)
    except (MemoryError, RecursionError):
        raise FormInvalid([FormIssue("error", TOO_COMPLEX, "The form is too large or too "
                                     "deeply nested to convert.")], too_large=True) from None


def _compile(data: bytes, kind: FileKind, form_id_fallback: str | None, validate: bool,
             java: str | None, limits: UploadLimits) -> CompileResult:
    guards.check_workbook(data, kind, limits)
    sheets = read_sheets(data, kind)
    try:
        lint = fb.lint_workbook(sheets)
    except Exception:  # the lint is a courtesy; pyxform still judges the form
        lint = []
    pyxform_warnings: list[str] = []
    result, failure = None, []
    try:
        # The sheets already read, as a dict: pyxform reads the workbook only once.
        result = convert(
            {**{k: v for k, v in sheets.items() if k in _DEFINITION_FIELDS},
             "fallback_form_name": fallback_form_id(form_id_fallback)},
            warnings=pyxform_warnings)
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:  # pyxform raises far more than PyXFormError on bad input
        failure = issues_from_exception(exc)
    warnings = [issue for text in pyxform_warnings for issue in issues_from_text(text, "warning")]
    errors = lint + _unreported(failure, lint)
    if errors or result is None:
        raise FormInvalid((errors or _generic_failure()) + warnings)
    compiled = CompileResult(xform=result.xform.encode("utf-8"), warnings=warnings,
                             itemsets=result.itemsets)
    return validated(compiled, java=java) if validate else compiled


def validated(result: CompileResult, *, java: str | None = None) -> CompileResult:
    """``result`` once ODK Validate accepts it (its warnings added); FormInvalid if not."""
    found = odk_validate(result.xform, java=java or "java")
    if any(issue.level == "error" for issue in found):
        raise FormInvalid(found + result.warnings)
    return CompileResult(xform=result.xform, warnings=result.warnings + found,
                         itemsets=result.itemsets)


def _generic_failure() -> list[FormIssue]:
    return [FormIssue("error", INVALID, "The form could not be converted.")]


def read_sheets(data: bytes, kind: FileKind) -> dict[str, Any]:
    """The workbook as pyxform's own reader sees it: lower-case sheet name → row dicts.

    Rows keep their position (an empty spreadsheet row is an empty dict; a Markdown table
    skips blank lines, as pyxform does), so row ``i`` of a sheet is row ``i + 2`` counting
    the header as row 1, the number pyxform prints as ``[row : N]``. Markdown and CSV are
    handed over as bytes, never as a str, which pyxform would first try as a file path.
    """
    file_type = SupportedFileTypes(f".{kind}")
    processor = SupportedFileTypes.get_processors()[file_type]
    try:
        if kind in ("md", "csv"):
            data = data.decode("utf-8-sig").encode("utf-8")
        return processor(Definition(data=BytesIO(data), file_type=file_type,
                                    file_path_stem=None))
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:
        raise FormInvalid(issues_from_exception(exc, reading=True)) from None


def _unreported(pyxform_issues: list[FormIssue], lint: list[FormIssue]) -> list[FormIssue]:
    """pyxform's issues that lint did not already report (same code, sheet and row)."""
    return [issue for issue in pyxform_issues if not any(_same(issue, seen) for seen in lint)]


def _same(issue: FormIssue, seen: FormIssue) -> bool:
    if issue.code != seen.code:
        return False
    if issue.row is not None:
        return issue.row == seen.row and (issue.sheet or seen.sheet) == (seen.sheet or issue.sheet)
    subject = _subject(issue.message)
    return subject is None or f"'{subject}'" in seen.message


def _subject(message: str) -> str | None:
    """The name a row-less pyxform message is about ('q1' in "…named 'q1' has no label")."""
    for pattern, _code, _column in _PATTERNS:
        match = pattern.search(message)
        if match:
            return match.groupdict().get("value")
    return None


# ----------------------------------------------------------------- pyxform's messages → issues

_ROW_PREFIX = re.compile(r"^\[row\s*:\s*(\d+)\]\s*")
_SHEET_COLUMN = re.compile(r"On the '([^']+)' sheet, the '([^']+)' value")
_SEMANTIC_CODES = {
    "NAMES_001": fb.DUPLICATE_NAME, "NAMES_002": "xlsform.duplicate_name_case",
    "NAMES_003": fb.RESERVED_NAME, "NAMES_004": fb.DUPLICATE_NAME,
    "NAMES_005": fb.RESERVED_NAME, "NAMES_006": fb.MISSING_NAME,
    "NAMES_007": fb.DUPLICATE_CHOICE, "NAMES_008": fb.INVALID_NAME,
    "NAMES_009": fb.INVALID_NAME, "NAMES_013": "xlsform.sheet_misspelled",
    "PYREF_001": fb.BAD_REFERENCE, "PYREF_002": fb.BAD_REFERENCE,
    "PYREF_003": fb.UNKNOWN_REFERENCE, "PYREF_004": fb.AMBIGUOUS_REFERENCE,
    "SURVEY_001": fb.UNMATCHED_END, "SURVEY_002": fb.UNCLOSED_GROUP,
    "LABEL_001": fb.MISSING_LABEL,
    "HEADER_001": fb.INVALID_HEADERS, "HEADER_002": fb.INVALID_HEADERS,
    "HEADER_003": fb.INVALID_HEADERS, "HEADER_004": fb.INVALID_HEADERS,
    "HEADER_005": fb.INVALID_HEADERS,
}
# Messages pyxform builds by hand (not from an ErrorCode): pattern → (code, column).
_PATTERNS: tuple[tuple[re.Pattern[str], str, str | None], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), code, column) for pattern, code, column in (
        (r"^Unknown question type '(?P<value>.*)'", fb.UNKNOWN_TYPE, "type"),
        (r"^List name not in (external )?choices sheet: (?P<value>\S+)",
         fb.MISSING_CHOICE_LIST, "type"),
        (r"^List name not in columns sheet: (?P<value>\S+)", fb.MISSING_CHOICE_LIST, "type"),
        (r"^Repeat loop without list name", fb.MISSING_CHOICE_LIST, "type"),
        (r"^There should be an? (external_)?choices sheet", fb.MISSING_CHOICE_LIST, None),
        (r"^Arguments 'itemset' and 'list_name' must not both be None",
         fb.MISSING_CHOICE_LIST, "type"),
        (r"^Please specify choices for this 'or other' question", fb.MISSING_CHOICE_LIST,
         "type"),
        (r"^Question with no type", fb.MISSING_TYPE, "type"),
        (r"^Question or group with no name", fb.MISSING_NAME, "name"),
        (r"^The survey element named '(?P<value>.*)' has no label or hint", fb.MISSING_LABEL,
         "label"),
        (r"^(Group|Repeat|Loop) has no label", fb.MISSING_LABEL, "label"),
        (r"^You must have a sheet named 'survey'", fb.MISSING_SURVEY, None),
        (r"^Missing calculation", fb.MISSING_CALCULATION, "calculation"),
        (r"^Duplicate column header: (?P<value>.*)", fb.INVALID_HEADERS, None),
        (r"^Choice names with spaces cannot be added", "xlsform.choice_name_spaces", None),
        (r"^Audits must always be named 'audit", fb.INVALID_NAME, "name"),
        (r"^Error reading \.\w+ file", CORRUPT, None),
        (r"^Argument 'definition' was not recognized", CORRUPT, None),
        (r"^The input data does not appear to be a valid XLSForm", CORRUPT, None),
        (r"^Row without name, text, or label is being skipped", "xlsform.skipped_row", None),
        (r"^The 'disabled' column header is not part of the current spec",
         "xlsform.deprecated_column", "disabled"),
        (r"is no longer supported on most devices", "xlsform.deprecated_type", "type"),
        (r"^Use the max-pixels parameter", "xlsform.photo_max_pixels", "parameters"),
        (r"^select one external is only meant for filtered selects",
         "xlsform.unfiltered_external_select", "choice_filter"),
        (r"^Language '.*' is missing the (survey|choices)", "xlsform.missing_translation",
         None),
        (r"^This form uses or_other and translations", "xlsform.or_other_translations", None),
        (r"^The following language declarations do not contain valid machine-readable codes",
         "xlsform.language_code", None),
        (r"^The form_id and id_string column headers are both specified",
         fb.INVALID_HEADERS, None),
    ))


def _template_pattern(template: str) -> re.Pattern[str]:
    parts, seen = [], set()
    for literal, name, _spec, _conversion in Formatter().parse(template):
        parts.append(re.escape(literal))
        if name is not None:
            parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>.*?)")
            seen.add(name)
    return re.compile("".join(parts), re.DOTALL)


_TEMPLATES = tuple((code, _template_pattern(code.value.msg)) for code in ErrorCode)


def issues_from_exception(exc: BaseException, *, reading: bool = False) -> list[FormIssue]:
    """FormIssues for anything pyxform (or openpyxl, xlrd, lxml under it) raised."""
    if isinstance(exc, FormInvalid):
        return exc.issues
    if isinstance(exc, PyXFormError):
        issues = issues_from_text(str(exc), "error")
        if exc.code is not None:
            context = exc.context or {}
            issues = [_with_context(issue, exc.code, context) for issue in issues]
        return issues
    text = _clip(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, UnicodeDecodeError):
        return [FormIssue("error", "file.encoding", "The file is not valid UTF-8 text.",
                          original=text)]
    if reading or isinstance(exc, (zipfile.BadZipFile, *_reader_errors())):
        return [FormIssue("error", CORRUPT, "The file could not be read as a spreadsheet; it "
                          "may be damaged. Open it in Excel, save it again and re-upload.",
                          original=text)]
    return [FormIssue("error", INVALID, f"pyxform could not convert the form: {text}",
                      original=text)]


def _reader_errors() -> tuple[type[BaseException], ...]:
    from openpyxl.utils.exceptions import InvalidFileException
    from xlrd import XLRDError
    return InvalidFileException, XLRDError


def _our_code(code: ErrorCode) -> str:
    """A semantic code shared with the lint where one exists, else ``pyxform.<ENUM_NAME>``."""
    return _SEMANTIC_CODES.get(code.name, f"pyxform.{code.name}")


def _with_context(issue: FormIssue, code: ErrorCode, context: dict[str, Any]) -> FormIssue:
    row = context.get("row")
    return FormIssue(
        level=issue.level, code=_our_code(code),
        message=issue.message, sheet=context.get("sheet") or issue.sheet,
        row=row if isinstance(row, int) else issue.row,
        column=context.get("column") or issue.column, original=issue.original)


def issues_from_text(text: str, level: str) -> list[FormIssue]:
    """One pyxform message (which may hold several ``[row : N]`` lines) as FormIssues."""
    chunks: list[str] = []
    for line in text.strip().splitlines():
        if not chunks or _ROW_PREFIX.match(line):
            chunks.append(line)
        else:
            chunks[-1] += "\n" + line
    return [_issue_from_message(chunk, level) for chunk in chunks] or [
        FormIssue(level, INVALID if level == "error" else WARNING, "pyxform failed.")]


def _issue_from_message(text: str, level: str) -> FormIssue:
    original = _clip(text)
    first_line = text.split("\n", 1)[0]
    for error_code, pattern in _TEMPLATES:
        match = pattern.fullmatch(first_line)
        if match:
            found = match.groupdict()
            row = found.get("row")
            return FormIssue(
                level=level, code=_our_code(error_code),
                message=_clip(_ROW_PREFIX.sub("", first_line)),
                sheet=found.get("sheet") or _sheet_of(first_line, row),
                row=int(row) if row and row.isdigit() else None,
                column=found.get("column") or _column_of(first_line), original=original)
    row_match = _ROW_PREFIX.match(first_line)
    message = _ROW_PREFIX.sub("", first_line)
    row = int(row_match.group(1)) if row_match else None
    code, column = (INVALID if level == "error" else WARNING), _column_of(first_line)
    for pattern, pattern_code, pattern_column in _PATTERNS:
        if pattern.search(message):
            code, column = pattern_code, column or pattern_column
            break
    return FormIssue(level=level, code=code, message=_clip(message),
                     sheet=_sheet_of(first_line, row), row=row, column=column,
                     original=original)


def _sheet_of(line: str, row: Any) -> str | None:
    match = _SHEET_COLUMN.search(line)
    if match:
        return match.group(1)
    return "survey" if row is not None else None


def _column_of(line: str) -> str | None:
    match = _SHEET_COLUMN.search(line)
    return match.group(2) if match else None


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "…"
