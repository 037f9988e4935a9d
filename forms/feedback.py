"""Every common XLSForm mistake at once, with sheet, row and column.

pyxform stops at its first error. ``lint_workbook`` walks the same rows pyxform reads (its
own reader's output, so the numbering is pyxform's: the header is row 1, the first data row
is row 2) and reports every duplicate name, unknown type, bad ``${reference}``, missing
choice list, duplicate choice, unmatched group and missing label, using pyxform's own
tables (question types, aliases, header rules, reference parser) so it never disagrees with
pyxform about what is valid. It adds one rule pyxform lacks: a form needs a question.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyxform import aliases
from pyxform import constants as co
from pyxform.errors import PyXFormError
from pyxform.parsing.expression import is_xml_tag
from pyxform.parsing.sheet_headers import dealias_and_group_headers, process_header
from pyxform.question import MultipleChoiceQuestion, Option
from pyxform.question_type_dictionary import QUESTION_TYPE_DICT
from pyxform.validators.pyxform.pyxform_reference import parse_pyxform_references
from pyxform.validators.pyxform.sheet_misspellings import find_sheet_misspellings
from pyxform.xls2json import RE_BEGIN_CONTROL, RE_END_CONTROL, RE_OSM, RE_SELECT

from forms.issues import FormIssue

MISSING_SURVEY = "xlsform.missing_survey"
INVALID_HEADERS = "xlsform.invalid_headers"
MISSING_TYPE = "xlsform.missing_type"
UNKNOWN_TYPE = "xlsform.unknown_type"
MISSING_NAME = "xlsform.missing_name"
INVALID_NAME = "xlsform.invalid_name"
RESERVED_NAME = "xlsform.reserved_name"
DUPLICATE_NAME = "xlsform.duplicate_name"
UNCLOSED_GROUP = "xlsform.unclosed_group"
UNMATCHED_END = "xlsform.unmatched_end"
MISSING_CHOICE_LIST = "xlsform.missing_choice_list"
DUPLICATE_CHOICE = "xlsform.duplicate_choice"
MISSING_LABEL = "xlsform.missing_label"
MISSING_CALCULATION = "xlsform.missing_calculation"
BAD_REFERENCE = "xlsform.bad_reference"
UNKNOWN_REFERENCE = "xlsform.unknown_reference"
AMBIGUOUS_REFERENCE = "xlsform.ambiguous_reference"
NO_QUESTIONS = "form.no_questions"

FIRST_DATA_ROW = 2
# Body controls a respondent answers; a note is an input made read-only.
_ANSWERED_TAGS = frozenset({"input", "select1", "select", "odk:rank", "range", "upload",
                            "trigger"})
_SELECT_TAGS = frozenset({"select1", "select", "odk:rank"})
_SURVEY_COLUMNS = frozenset(MultipleChoiceQuestion.get_slot_names())
_CHOICE_COLUMNS = frozenset(Option.get_slot_names())
_NOT_REFERENCE_COLUMNS = frozenset({co.TYPE, co.NAME, "trigger"})
_SHEET_ORDER = {None: 0, co.SURVEY: 1, co.CHOICES: 2, co.SETTINGS: 3}


@dataclass
class _Frame:
    control_type: str | None
    name: str | None
    row: int | None
    names: dict[str, int] = field(default_factory=dict)


@dataclass
class _Lint:
    issues: list[FormIssue] = field(default_factory=list)

    def error(self, code: str, message: str, *, sheet: str | None = co.SURVEY,
              row: int | None = None, column: str | None = None) -> None:
        self.issues.append(FormIssue(level="error", code=code, message=message, sheet=sheet,
                                     row=row, column=column))


def lint_workbook(sheets: Mapping[str, Any]) -> list[FormIssue]:
    """Every error found in a workbook read by pyxform's reader (``xlsx_to_dict`` & co.).

    ``sheets`` maps lower-case sheet names to lists of row dicts keyed by the header text,
    with ``<sheet>_header`` and ``sheet_names`` entries as pyxform's readers produce them.
    """
    lint = _Lint()
    if not sheets.get(co.SURVEY) and not sheets.get(f"{co.SURVEY}_header"):
        similar = find_sheet_misspellings(key=co.SURVEY, keys=sheets.get("sheet_names") or ())
        lint.error(MISSING_SURVEY, "The workbook has no sheet named 'survey'. "
                   + (similar or "Add a 'survey' sheet with type, name and label columns."),
                   sheet=None)
        return lint.issues
    settings = _settings(sheets)
    language = str(settings.get(co.DEFAULT_LANGUAGE_KEY, co.DEFAULT_LANGUAGE_VALUE))
    choices = _lint_choices(lint, sheets, settings, language)
    survey = _dealias(lint, sheets, co.SURVEY, aliases.survey_header, _SURVEY_COLUMNS,
                      required={co.TYPE}, language=language,
                      strip=aliases.yes_no.get(settings.get("clean_text_values", "yes"), True))
    if survey is None:
        return lint.issues
    root_name = str(settings.get(co.NAME, co.DEFAULT_FORM_NAME))
    element_names = _lint_survey(lint, survey, choices, root_name)
    _lint_references(lint, sheets, element_names)
    return sorted(lint.issues, key=lambda i: (_SHEET_ORDER.get(i.sheet, 9), i.row or 0))


def _settings(sheets: Mapping[str, Any]) -> dict[str, Any]:
    rows = sheets.get(co.SETTINGS) or []
    return {str(k).strip().lower(): v for k, v in rows[0].items()} if rows else {}


def _dealias(lint: _Lint, sheets: Mapping[str, Any], sheet: str, header_aliases: dict,
             columns: frozenset[str], *, required: set[str], language: str,
             strip: bool = False, row_numbers: bool = False) -> Sequence[dict] | None:
    """pyxform's header processing (aliases, ``label::English``); None if the headers are bad."""
    try:
        return dealias_and_group_headers(
            sheet_name=sheet, sheet_data=sheets.get(sheet) or [],
            sheet_header=sheets.get(f"{sheet}_header") or [], header_aliases=header_aliases,
            header_columns=set(columns), headers_required=required, default_language=language,
            strip_whitespace=strip, add_row_number=row_numbers).data
    except PyXFormError as exc:
        lint.error(INVALID_HEADERS, str(exc), sheet=sheet, row=1)
        return None


def _lint_choices(lint: _Lint, sheets: Mapping[str, Any], settings: dict[str, Any],
                  language: str) -> dict[str, list[str]]:
    """Choice names by list name; duplicates and nameless choices are reported."""
    rows = _dealias(lint, sheets, co.CHOICES, aliases.list_header, _CHOICE_COLUMNS,
                    required={co.NAME}, language=language, row_numbers=True)
    allow_duplicates = aliases.yes_no.get(settings.get("allow_choice_duplicates", "no"), False)
    lists: dict[str, dict[str, int]] = {}
    for choice in rows or ():
        list_name = choice.get(co.LIST_NAME_S)
        if list_name is None:
            continue
        seen = lists.setdefault(str(list_name), {})
        row = choice["__row"]
        name = choice.get(co.NAME)
        if name is None:
            lint.error(MISSING_NAME, f"A choice in the list '{list_name}' has no name.",
                       sheet=co.CHOICES, row=row, column=co.NAME)
        elif name in seen and not allow_duplicates:
            lint.error(DUPLICATE_CHOICE, f"The choice name '{name}' appears twice in the list "
                       f"'{list_name}' (first on row {seen[name]}). Choice names must be unique "
                       "within a list.", sheet=co.CHOICES, row=row, column=co.NAME)
        else:
            seen.setdefault(str(name), row)
    return {name: list(seen) for name, seen in lists.items()}


def _lint_survey(lint: _Lint, rows: Sequence[dict], choices: dict[str, list[str]],
                 root_name: str) -> Counter:
    """Walks the survey like pyxform's workbook_to_json; returns the element name counts."""
    stack = [_Frame(control_type=None, name=None, row=None)]
    element_names: Counter = Counter()
    repeat_names: dict[str, int] = {}
    answered = 0
    unrecognised = 0
    for row_number, row in enumerate(rows, start=FIRST_DATA_ROW):
        if not row or aliases.yes_no.get(row.get("disabled")):
            continue
        question_type = row.get(co.TYPE)
        if not question_type:
            if co.NAME in row or co.LABEL in row:
                unrecognised += 1
                lint.error(MISSING_TYPE, "This row has a name or label but no type.",
                           row=row_number, column=co.TYPE)
            continue
        question_type = aliases._type_alias_map.get(question_type, question_type)
        if question_type == "audit" or aliases.settings_header.get(question_type):
            continue
        if question_type == "calculate" and not (row.get(co.BIND, {}).get("calculate")
                                                 or row.get("default")):
            lint.error(MISSING_CALCULATION, "A calculate row needs a calculation.",
                       row=row_number, column="calculation")
        begin = RE_BEGIN_CONTROL.search(question_type)
        end = RE_END_CONTROL.search(question_type)
        if end:
            _close(lint, stack, aliases.control[end.group("type")], row_number)
            continue
        name = _check_name(lint, row, question_type, row_number, stack[-1])
        if name is None:
            continue
        element_names[name] += 1
        if begin:
            control_type = aliases.control[begin.group("type")]
            if control_type == co.REPEAT:
                _check_repeat_name(lint, name, root_name, repeat_names, row_number)
            if control_type == co.LOOP and begin.group(co.LIST_NAME_U) not in choices:
                _missing_list(lint, begin.group(co.LIST_NAME_U), choices, row_number)
            stack.append(_Frame(control_type=control_type, name=name, row=row_number))
            continue
        kind = _check_question_type(lint, row, question_type, choices, row_number)
        if kind == "unknown":
            unrecognised += 1
        answered += kind == "answered"
    for frame in reversed(stack[1:]):
        lint.error(UNCLOSED_GROUP, f"The {frame.control_type} '{frame.name}' is never closed: "
                   f"add an 'end_{frame.control_type}' row after its last question.",
                   row=frame.row, column=co.TYPE)
    if answered == 0 and unrecognised == 0:
        lint.error(NO_QUESTIONS, "The form has no questions to answer (only notes, "
                   "calculations or metadata, or nothing at all). Add at least one question "
                   "on the survey sheet.", row=None)
    element_names["instanceID"] += 1
    return element_names


def _close(lint: _Lint, stack: list[_Frame], control_type: str, row_number: int) -> None:
    if len(stack) > 1 and stack[-1].control_type == control_type:
        stack.pop()
        return
    open_ = (f" The innermost open block is the {stack[-1].control_type} '{stack[-1].name}'."
             if len(stack) > 1 else "")
    lint.error(UNMATCHED_END, f"This 'end_{control_type}' has no matching 'begin_"
               f"{control_type}'.{open_}", row=row_number, column=co.TYPE)


def _check_name(lint: _Lint, row: dict, question_type: str, row_number: int,
                frame: _Frame) -> str | None:
    name = row.get(co.NAME)
    if name is None:
        if question_type == "note":
            return f"generated_note_name_{row_number}"
        lint.error(MISSING_NAME, "This question or group has no name.", row=row_number,
                   column=co.NAME)
        return None
    name = str(name)
    if not is_xml_tag(name):
        lint.error(INVALID_NAME, f"The name '{name}' is not valid: names must begin with a "
                   "letter or underscore, then use only letters, digits, underscores, "
                   "hyphens or periods.", row=row_number, column=co.NAME)
    elif name in co.RESERVED_NAMES_SURVEY_SHEET:
        lint.error(RESERVED_NAME, f"The name '{name}' is reserved for form metadata.",
                   row=row_number, column=co.NAME)
    elif name in frame.names:
        where = f"the {frame.control_type} '{frame.name}'" if frame.name else "the survey"
        lint.error(DUPLICATE_NAME, f"The name '{name}' is already used on row "
                   f"{frame.names[name]}; names must be unique within {where}.",
                   row=row_number, column=co.NAME)
    else:
        frame.names[name] = row_number
    return name


def _check_repeat_name(lint: _Lint, name: str, root_name: str, repeat_names: dict[str, int],
                       row_number: int) -> None:
    if name == root_name:
        lint.error(RESERVED_NAME, f"A repeat cannot be named '{name}', the name of the form's "
                   "root element.", row=row_number, column=co.NAME)
    elif name in repeat_names:
        lint.error(DUPLICATE_NAME, f"The repeat name '{name}' is already used on row "
                   f"{repeat_names[name]}; repeat names must be unique in the whole form.",
                   row=row_number, column=co.NAME)
    else:
        repeat_names[name] = row_number


def _check_question_type(lint: _Lint, row: dict, question_type: str,
                         choices: dict[str, list[str]], row_number: int) -> str:
    """'answered', 'other' (note, calculate, metadata) or 'unknown'."""
    select = RE_SELECT.search(question_type)
    if select:
        list_name = select.group(co.LIST_NAME_U)
        command = aliases.select[select.group("select_command")]
        from_file = select.group("select_command") in aliases.select_from_file
        if (command != co.SELECT_ONE_EXTERNAL and not from_file
                and "${" not in list_name and list_name not in choices):
            _missing_list(lint, list_name, choices, row_number)
        _check_label(lint, row, row_number)
        return "answered"
    if RE_OSM.search(question_type):
        _check_label(lint, row, row_number)
        return "answered"
    template = QUESTION_TYPE_DICT.get(question_type)
    if template is None:
        lint.error(UNKNOWN_TYPE, f"Unknown question type '{question_type}'. Check the spelling "
                   "against https://xlsform.org/en/#question-types (types are lower-case).",
                   row=row_number, column=co.TYPE)
        return "unknown"
    tag = template.get(co.CONTROL, {}).get("tag")
    if tag in _SELECT_TAGS:
        lint.error(MISSING_CHOICE_LIST, f"The type '{question_type}' needs the name of a "
                   "choice list after it, like 'select_one yes_no'.", row=row_number,
                   column=co.TYPE)
    if (tag not in _ANSWERED_TAGS or question_type.startswith("background-")
            or co.HINT in template):
        return "other"
    _check_label(lint, row, row_number)
    readonly = template.get(co.BIND, {}).get("readonly") == "true()"
    return "other" if readonly else "answered"


def _check_label(lint: _Lint, row: dict, row_number: int) -> None:
    if not (row.get(co.LABEL) or row.get(co.MEDIA) or row.get(co.HINT)):
        lint.error(MISSING_LABEL, f"The question '{row.get(co.NAME)}' has no label (or hint).",
                   row=row_number, column=co.LABEL)


def _missing_list(lint: _Lint, list_name: str, choices: dict[str, list[str]],
                  row_number: int) -> None:
    hint = (" The workbook has no choices sheet." if not choices
            else f" Lists on the choices sheet: {', '.join(sorted(choices)[:10])}.")
    lint.error(MISSING_CHOICE_LIST, f"The choice list '{list_name}' is not on the choices "
               f"sheet.{hint}", row=row_number, column=co.TYPE)


def _lint_references(lint: _Lint, sheets: Mapping[str, Any], element_names: Counter) -> None:
    """``${name}`` in any cell pyxform expands (survey, choices labels, settings)."""
    survey_skip = _columns_where(sheets, co.SURVEY, aliases.survey_header, _SURVEY_COLUMNS,
                                 lambda token: token in _NOT_REFERENCE_COLUMNS)
    choice_only = _columns_where(sheets, co.CHOICES, aliases.list_header, _CHOICE_COLUMNS,
                                 lambda token: token in aliases.TRANSLATABLE_CHOICES_COLUMNS)
    _check_refs(lint, co.SETTINGS, sheets.get(co.SETTINGS), element_names, lambda c: True)
    _check_refs(lint, co.SURVEY, sheets.get(co.SURVEY), element_names,
                lambda c: c not in survey_skip)
    _check_refs(lint, co.CHOICES, sheets.get(co.CHOICES), element_names,
                lambda c: c in choice_only)


def _columns_where(sheets: Mapping[str, Any], sheet: str, header_aliases: dict,
                   columns: frozenset[str], keep) -> set[str]:
    headers = list((sheets.get(f"{sheet}_header") or [{}])[0])
    double_colon = any("::" in h for h in headers)
    selected = set()
    for header in headers:
        _, tokens = process_header(header=header, use_double_colon=double_colon,
                                   header_aliases=header_aliases, header_columns=columns)
        if keep(tokens[0]):
            selected.add(header)
    return selected


def _check_refs(lint: _Lint, sheet: str, rows: Iterable[dict] | None, element_names: Counter,
                wanted) -> None:
    for row_number, row in enumerate(rows or (), start=FIRST_DATA_ROW):
        for column, value in row.items():
            if not isinstance(value, str) or "${" not in value or not wanted(column):
                continue
            try:
                refs = parse_pyxform_references(value=value)
            except PyXFormError:
                lint.error(BAD_REFERENCE, "A reference is malformed: write ${name} with the "
                           "name of a question.", sheet=sheet, row=row_number, column=column)
                continue
            for ref in refs:
                count = element_names.get(ref.name, 0)
                if count == 0:
                    lint.error(UNKNOWN_REFERENCE, f"${{{ref.name}}} refers to '{ref.name}', "
                               "which is not a name on the survey sheet.", sheet=sheet,
                               row=row_number, column=column)
                elif count > 1:
                    lint.error(AMBIGUOUS_REFERENCE, f"${{{ref.name}}} is ambiguous: the name "
                               f"'{ref.name}' is used {count} times in the form.", sheet=sheet,
                               row=row_number, column=column)
