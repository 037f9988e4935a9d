"""The columns of a form's export: one table for the submissions and one per repeat, laid out
the way ODK Central's CSV export lays them out (``lib/data/briefcase.js``).

Root table: ``SubmissionDate``, the form's fields, ``KEY``, ``SubmitterID``, ``SubmitterName``,
``AttachmentsPresent``, ``AttachmentsExpected``, ``Status``, ``ReviewState``, ``DeviceID``,
``Edits``, ``FormVersion``. A repeat table: its fields, then ``PARENT_KEY`` and ``KEY``. A
field's header is its path below its table joined with ``-`` (``household-age``,
``meta-instanceID``), or its bare name without group paths. A geopoint is four columns
(``-Latitude``, ``-Longitude``, ``-Altitude``, ``-Accuracy``); a select_multiple split into
choices adds one 0/1 column per choice (``langs/sw``) after its own column.

Fields come in form order: the latest published version's. With ``deleted_fields``, fields
that only older versions have are added too, each placed right after the sibling that
preceded it in the newest version that had it (first in its group when none did).

Pure code: no database, no I/O. The caller gives the published schemas and, for split
select_multiples, the values seen in the data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from forms.schema import DEFAULT_LANGUAGE, Field, FormSchema
from server.exports.safety import central_file_name

ROOT = ""
"""The root table's path (``submission_rows.table_path`` of the submission's own row)."""

CellKind = Literal["text", "int", "decimal", "geo", "count"]
"""How a column's cells are typed: free ``text``; ``int``/``decimal`` fields (numbers when
the text is one); ``geo`` (geotrace/geoshape text, coordinates when it is made of them);
``count`` cells are always Python ints (metadata counts, 0/1 flags)."""

GEO_PARTS = ("Latitude", "Longitude", "Altitude", "Accuracy")
GEO_TYPES = frozenset({"geopoint", "geotrace", "geoshape"})
MULTIPLE_SEPARATOR = "; "
"""Between the choice labels of a select_multiple answer, when labels are asked for."""
NOT_DECRYPTED = "not decrypted"
"""``Status`` of an encrypted submission (Central's wording; dodoso never decrypts)."""

ROOT_HEAD = ("SubmissionDate",)
ROOT_TAIL = ("KEY", "SubmitterID", "SubmitterName", "AttachmentsPresent",
             "AttachmentsExpected", "Status", "ReviewState", "DeviceID", "Edits", "FormVersion")
_ROOT_TAIL_KINDS: tuple[CellKind, ...] = (
    "text", "count", "text", "count", "count", "text", "text", "text", "count", "text")
REPEAT_TAIL = ("PARENT_KEY", "KEY")
ROOT_RECORD = ("created_at", "review_state", "device_id", "submitter_id", "submitter_name",
               "key", "encrypted", "attachments_present", "attachments_expected",
               "form_version", "edits")
"""What a root record holds before the field values (see ``queries.exports.stream_root``)."""

_TYPED_KINDS: dict[str, CellKind] = {"int": "int", "decimal": "decimal", "geotrace": "geo",
                                     "geoshape": "geo"}
_SELECT_TYPES = frozenset({"select1", "select", "rank"})


class OptionError(ValueError):
    """An option that cannot be honoured; ``option`` names it on the wire."""

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"{option}: {reason}")
        self.option = option
        self.reason = reason


@dataclass(frozen=True)
class Layout:
    """How columns are named and filled."""

    group_paths: bool = True
    split_select_multiples: bool = False
    deleted_fields: bool = False
    labels: bool = False
    language: str | None = None
    """A language of the form (its full name, ``English (en)``, or its code, ``en``)."""


@dataclass(frozen=True)
class Column:
    header: str
    kind: CellKind
    field: str | None = None
    """The path of the field the column shows; None for metadata columns."""


@dataclass(frozen=True)
class FormVersion:
    version: str
    schema: FormSchema


@dataclass
class _Op:
    """How one field turns into cells: ``code`` is one of the _PLAIN… constants."""

    code: int
    path: str
    choices: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


_PLAIN, _GEOPOINT, _SPLIT, _LABEL_ONE, _LABEL_MANY, _LABEL_SPLIT = range(6)


@dataclass
class Table:
    """One export table: the root (``path`` ``""``) or a repeat."""

    path: str
    name: str
    """The repeat's name (the form ID for the root)."""
    file_name: str
    columns: list[Column]
    fields: list[Field]
    _ops: list[_Op] = field(default_factory=list, repr=False)

    @property
    def is_root(self) -> bool:
        return self.path == ROOT

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self.columns]

    @property
    def value_paths(self) -> list[str]:
        """The stored values the table's cells come from, in the order ``field_cells``
        takes them (one per field)."""
        return [op.path for op in self._ops]

    def field_cells(self, values: Sequence[Any]) -> list[Any]:
        """The cells of the fields, in column order, from the row's stored values (in
        ``value_paths`` order; None when absent)."""
        if len(values) != len(self._ops):
            raise ValueError(f"{len(values)} values for {len(self._ops)} fields")
        out: list[Any] = []
        append, extend = out.append, out.extend
        for start, stop, op in self._steps:
            if op is None:  # a run of plain fields: their values as they are
                extend(values[start:stop])
                continue
            value = values[start]
            code = op.code
            if code == _GEOPOINT:
                parts = value.split() if value else ()
                extend(parts[i] if i < len(parts) else None for i in range(4))
            elif code == _LABEL_ONE:
                append(op.labels.get(value, value) if value is not None else None)
            elif code == _LABEL_MANY:
                append(MULTIPLE_SEPARATOR.join(op.labels.get(v, v) for v in value.split())
                       if value is not None else None)
            else:  # _SPLIT, _LABEL_SPLIT
                chosen = set(value.split()) if value else ()
                if code == _SPLIT:
                    append(value)
                else:
                    append(MULTIPLE_SEPARATOR.join(op.labels.get(v, v) for v in value.split())
                           if value is not None else None)
                extend(1 if c in chosen else 0 for c in op.choices)
        return out

    @cached_property
    def _steps(self) -> list[tuple[int, int, _Op | None]]:
        """The ops grouped: ``(start, stop, None)`` for a run of plain fields (one slice),
        ``(i, i + 1, op)`` for any other."""
        steps: list[tuple[int, int, _Op | None]] = []
        for i, op in enumerate(self._ops):
            if op.code == _PLAIN and steps and steps[-1][2] is None and steps[-1][1] == i:
                steps[-1] = (steps[-1][0], i + 1, None)
            else:
                steps.append((i, i + 1, None if op.code == _PLAIN else op))
        return steps

    def root_cells(self, record: Sequence[Any]) -> list[Any]:
        """A root row from a record laid out as ``ROOT_RECORD`` then the values."""
        (created_at, review_state, device_id, submitter_id, submitter_name, key, encrypted,
         present, expected, form_version, edits) = record[:len(ROOT_RECORD)]
        return [submission_date(created_at), *self.field_cells(record[len(ROOT_RECORD):]),
                key, submitter_id, submitter_name, present, expected,
                NOT_DECRYPTED if encrypted else None,
                None if review_state == "received" else review_state,
                device_id, edits, form_version]

    def repeat_cells(self, values: Sequence[Any], parent_key: str | None,
                     key: str | None) -> list[Any]:
        return [*self.field_cells(values), parent_key, key]


@dataclass
class ExportColumns:
    """Every table of a form's export, root first, then repeats in form order."""

    xml_form_id: str
    tables: list[Table]
    language: str | None
    fields: dict[str, Field]

    @property
    def root(self) -> Table:
        return self.tables[0]

    def table(self, path: str) -> Table:
        return next(t for t in self.tables if t.path == path)

    def select_multiples(self) -> list[Field]:
        return [f for t in self.tables for f in t.fields if f.type == "select"]

    def geo_fields(self) -> list[Field]:
        return [f for t in self.tables for f in t.fields if f.type in GEO_TYPES]

    def geo_field(self, wanted: str | None) -> Field:
        """The field a GeoJSON export maps: ``wanted`` (a path, or a name that only one geo
        field has), else the first geo field in form order."""
        fields = self.geo_fields()
        if not fields:
            raise OptionError("geoField", "the form has no geopoint, geotrace or geoshape field")
        if wanted is None:
            return fields[0]
        by_path = [f for f in fields if f.path == wanted or f.path == "/" + wanted]
        by_name = [f for f in fields if f.name == wanted]
        found = by_path or (by_name if len(by_name) == 1 else [])
        if not found:
            raise OptionError("geoField", f"{wanted!r} is not one geo field of this form "
                                          f"(use its path: {', '.join(f.path for f in fields)})")
        return found[0]


def submission_date(value: dt.datetime) -> str:
    """Central's ``SubmissionDate``: UTC, milliseconds, ``Z`` (JavaScript's toISOString)."""
    return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds")[:-6] + "Z"


# -- building ---------------------------------------------------------------------------------

def build(xml_form_id: str, versions: Sequence[FormVersion], layout: Layout,
          observed: Mapping[str, Iterable[str]] | None = None) -> ExportColumns:
    """The export's tables from the form's published versions (oldest first).

    ``observed`` gives, for split select_multiples, the values the data holds: each becomes
    a column after the field's own choices (a choice list filled from a file or from a
    repeat has none of its own). Raises :class:`OptionError` for an unknown language.
    """
    if not versions:
        raise ValueError("a form without a published version has no export")
    schemas = [v.schema for v in versions] if layout.deleted_fields else [versions[-1].schema]
    language = resolve_language(schemas, layout.language) if (
        layout.labels or layout.language) else None
    ordered = merged_fields(schemas)
    by_path = {f.path: f for f in ordered}
    choice_values = _choice_values(schemas, observed or {})
    label_of = _Labels(schemas, language)

    tables: list[Table] = [Table(ROOT, xml_form_id, f"{central_file_name(xml_form_id)}.csv",
                                 [Column(h, "text") for h in ROOT_HEAD], [])]
    for f in ordered:
        if f.kind == "repeat" or f.type == "repeat":
            tables.append(Table(f.path, f.name, "", [], []))
    index = {t.path: t for t in tables}
    for f in ordered:
        if _is_container(f):
            continue
        table = index.get(f.repeat or ROOT)
        if table is None:  # a field whose repeat is gone from every included version
            continue
        _add_field(table, f, layout, choice_values.get(f.path, ()), label_of)

    for table in tables:
        if table.is_root:
            table.columns += [Column(h, k) for h, k in zip(ROOT_TAIL, _ROOT_TAIL_KINDS,
                                                          strict=True)]
        else:
            table.columns += [Column(h, "text") for h in REPEAT_TAIL]
    _name_repeat_files(xml_form_id, tables[1:])
    return ExportColumns(xml_form_id, tables, language, by_path)


def merged_fields(schemas: Sequence[FormSchema]) -> list[Field]:
    """Every field of the schemas (oldest first) once, in the newest schema's order; a field
    only older schemas have follows the sibling that preceded it there. The Field kept is
    the newest version's."""
    newest = schemas[-1]
    fields: dict[str, Field] = {}
    children: dict[str, list[str]] = {}
    for f in newest.fields:
        fields[f.path] = f
        children.setdefault(f.group or ROOT, []).append(f.path)
    for schema in reversed(schemas[:-1]):
        siblings: dict[str, list[str]] = {}
        for f in schema.fields:
            siblings.setdefault(f.group or ROOT, []).append(f.path)
        for f in schema.fields:  # a group comes before its children, so it is placed first
            if f.path in fields:
                continue
            fields[f.path] = f
            parent = f.group or ROOT
            placed = children.setdefault(parent, [])
            before = siblings[parent][:siblings[parent].index(f.path)]
            position = next((placed.index(p) + 1 for p in reversed(before) if p in placed), 0)
            placed.insert(position, f.path)
    ordered: list[Field] = []
    stack = list(reversed(children.get(ROOT, [])))
    while stack:
        path = stack.pop()
        ordered.append(fields[path])
        stack += reversed(children.get(path, []))
    return ordered


def resolve_language(schemas: Sequence[FormSchema], wanted: str | None) -> str:
    """The form language ``wanted`` names (full name or code, any case), or the form's
    default language when None."""
    languages: list[str] = []
    for schema in reversed(schemas):
        languages += [lang for lang in schema.languages if lang not in languages]
    if wanted is None:
        newest = schemas[-1]
        return newest.default_language or (languages[0] if languages else DEFAULT_LANGUAGE)
    lowered = wanted.strip().lower()
    for lang in languages:
        code = lang[lang.rfind("(") + 1:-1] if lang.endswith(")") and "(" in lang else None
        if lowered in (lang.lower(), (code or "").lower()):
            return lang
    if not languages and lowered == DEFAULT_LANGUAGE:
        return DEFAULT_LANGUAGE
    known = ", ".join(languages) or "none: the form is not translated"
    raise OptionError("language", f"the form has no language {wanted!r} (languages: {known})")


class _Labels:
    """Field and choice labels in one language, from the newest version that has them."""

    def __init__(self, schemas: Sequence[FormSchema], language: str | None) -> None:
        self.schemas = list(reversed(schemas))
        self.language = language

    def _pick(self, labels: Mapping[str, str]) -> str | None:
        if self.language is None:
            return None
        text = labels.get(self.language) or labels.get(DEFAULT_LANGUAGE)
        return text.strip() if text and text.strip() else None

    def field(self, f: Field) -> str | None:
        return self._pick(f.labels)

    def choices(self, f: Field) -> dict[str, str]:
        out: dict[str, str] = {}
        for schema in self.schemas:
            mine = schema.field(f.path)
            if mine is None or mine.choice_list is None:
                continue
            choice_list = schema.choice_lists.get(mine.choice_list)
            for choice in choice_list.choices if choice_list else ():
                label = self._pick(choice.labels)
                if label is not None:
                    out.setdefault(choice.value, label)
        return out


def _choice_values(schemas: Sequence[FormSchema],
                   observed: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    """For each select_multiple: its choices (newest version's list first, then choices
    only older lists had), then the values seen in the data that are not choices, sorted."""
    out: dict[str, list[str]] = {}
    for schema in reversed(schemas):
        for f in schema.fields:
            if f.type != "select" or f.choice_list is None:
                continue
            values = out.setdefault(f.path, [])
            choice_list = schema.choice_lists.get(f.choice_list)
            for value in choice_list.values() if choice_list else ():
                if value not in values:
                    values.append(value)
    for path, seen in observed.items():
        values = out.setdefault(path, [])
        values += sorted(set(seen) - set(values))
    return {path: tuple(values) for path, values in out.items()}


def _is_container(f: Field) -> bool:
    return f.kind in ("group", "repeat") or f.type in ("structure", "repeat")


def _add_field(table: Table, f: Field, layout: Layout, choices: tuple[str, ...],
               labels: _Labels) -> None:
    base = _base_header(table, f, layout)
    label = labels.field(f) if layout.labels else None
    header = label or base
    kind: CellKind = "text" if layout.labels and f.type in _SELECT_TYPES else \
        _TYPED_KINDS.get(f.type, "text")
    table.fields.append(f)
    if f.type == "geopoint":
        table.columns += [Column(f"{header}-{part}", "decimal", f.path) for part in GEO_PARTS]
        table._ops.append(_Op(_GEOPOINT, f.path))
        return
    table.columns.append(Column(header, kind, f.path))
    choice_labels = labels.choices(f) if layout.labels and f.type in _SELECT_TYPES else {}
    if f.type == "select" and layout.split_select_multiples:
        table.columns += [Column(f"{header}/{choice_labels.get(c, c)}", "count", f.path)
                          for c in choices]
        table._ops.append(_Op(_LABEL_SPLIT if layout.labels else _SPLIT, f.path, choices,
                              choice_labels))
    elif layout.labels and f.type == "select1":
        table._ops.append(_Op(_LABEL_ONE, f.path, labels=choice_labels))
    elif layout.labels and f.type in ("select", "rank"):
        table._ops.append(_Op(_LABEL_MANY, f.path, labels=choice_labels))
    else:
        table._ops.append(_Op(_PLAIN, f.path))


def _base_header(table: Table, f: Field, layout: Layout) -> str:
    if not layout.group_paths:
        return f.name
    return f.path[len(table.path) + 1:].replace("/", "-")


def _name_repeat_files(xml_form_id: str, repeats: list[Table]) -> None:
    """``{xmlFormId}-{repeat}.csv``; repeats sharing a name are numbered ``~1``, ``~2`` … in
    form order (Central's gh#145)."""
    totals: dict[str, int] = {}
    for t in repeats:
        totals[t.name] = totals.get(t.name, 0) + 1
    seen: dict[str, int] = {}
    for t in repeats:
        if totals[t.name] > 1:
            seen[t.name] = seen.get(t.name, 0) + 1
            t.file_name = central_file_name(f"{xml_form_id}-{t.name}~{seen[t.name]}.csv")
        else:
            t.file_name = central_file_name(f"{xml_form_id}-{t.name}.csv")
