"""Turn one plaintext submission into table rows: one for the submission, one per repeat
instance at any depth, keyed the way ODK Central's exports key them.

Keys (Central's ``lib/data/briefcase.js``, ``keyForStacks``): the root row's key is the
instanceID; a repeat row's key is its parent row's key, then ``/``, then the names of any
groups between the parent row and the repeat, each followed by ``/``, then the repeat's
name and its 1-based position among its siblings: ``uuid:abc/roster[2]/stays_abroad[1]``,
or ``uuid:abc/household/roster[1]`` for a repeat inside a group. ``parent_key`` is the
parent row's key (the instanceID for top-level repeats).

Values: every leaf field of the row's table (``schema.fields_in(table)`` minus groups and
repeats) maps to the element's own text, or ``None`` when the element is absent or empty.
Free text (``string``, ``barcode`` and types we do not know) is kept exactly as sent, outer
whitespace included. Typed values (numbers, dates and times, geo, selects, booleans, file
names) have their outer XML whitespace stripped, and are ``None`` if nothing is left; what is
inside is kept as sent (``select`` lists space-separated, geotraces with ``;`` or ``; ``).

Nothing sent is lost: elements the schema does not know (another version's fields, junk),
and second copies of a non-repeat element, go to the row's ``extra`` keyed by path, with
``[n]`` on a step that is the n-th sibling of that name (``/village[2]``). The OpenRosa
metadata ``parse_instance`` already read (``meta/instanceID``, ``deprecatedID``,
``instanceName``) is the exception. ``extra`` is capped (count and path length);
``extra_truncated`` says when something was dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from lxml import etree

from forms.schema import FormSchema
from sync.instance import (
    JR_TEMPLATE,
    Instance,
    InstanceInvalid,
    Layout,
    Slot,
    element_children,
    has_templates,
    layout_of,
    local_name,
    own_text,
)

ROW_COUNT_LIMIT = 10_000
"""Most repeat rows one submission may have."""
MAX_EXTRA_VALUES = 10_000
"""Most ``extra`` values kept per submission."""
MAX_EXTRA_PATH = 1_024
"""Longest ``extra`` path kept; deeper or longer-named junk is dropped."""

_XML_WHITESPACE = " \t\r\n"
_PROTOCOL_META = frozenset({"/meta/instanceID", "/meta/deprecatedID", "/meta/instanceName"})
"""Read by ``parse_instance`` into the :class:`Instance`; not ``extra`` when the form's
schema does not list them (an edit's deprecatedID never is)."""
_STRIPPED_TYPES = frozenset({
    "int", "decimal", "date", "time", "dateTime", "geopoint", "geotrace", "geoshape",
    "select1", "select", "rank", "boolean", "binary",
})


@dataclass
class Row:
    table: str | None
    """``None`` for the submission's own row, else the repeat's schema path."""
    key: str
    parent_key: str | None
    position: int
    """1-based among the instances of this repeat under the same parent (1 for the root)."""
    values: dict[str, str | None]
    extra: dict[str, str] = field(default_factory=dict)
    extra_truncated: bool = False


def flatten(
    instance: Instance,
    schema: FormSchema,
    *,
    key: str | None = None,
    row_count_limit: int = ROW_COUNT_LIMIT,
) -> list[Row]:
    """The submission's rows, in document order (root first).

    ``key`` is the root key when the submission has no instanceID of its own (the caller's
    server-generated one). Raises :class:`InstanceInvalid` ``instance.too_many_rows`` past
    ``row_count_limit`` repeat rows; ``ValueError`` for an encrypted envelope (decrypt first)
    or when there is no key at all.
    """
    if instance.encrypted:
        raise ValueError("an encrypted envelope has no rows; flatten the decrypted instance")
    root_key = key or instance.instance_id
    if not root_key:
        raise ValueError("the submission has no instanceID: pass the key to use")
    return _Flattener(layout_of(schema), row_count_limit).run(instance.root, root_key)


def split_multiple(value: str | None) -> list[str]:
    """A ``select`` answer's choices: the value split on whitespace, empties dropped."""
    return value.split() if value else []


def split_points(value: str | None) -> list[str]:
    """A geotrace's or geoshape's points (``lat lon alt acc``), split on ``;`` with or without
    the space javarosa puts after it, empties dropped."""
    return [p.strip() for p in value.split(";") if p.strip()] if value else []


@dataclass(slots=True)
class _Frame:
    """An element whose children are being placed."""

    children: Iterator[tuple[etree._Element, str, int]]
    """What is left of :func:`_numbered` children."""
    path: str
    """The element's schema path (``""`` for the root)."""
    slots: dict[str, Slot]
    row: Row
    prefix: str
    """Group names between ``row`` and the children, each followed by ``/`` (for keys)."""


class _Flattener:
    """One walk over one instance, with an explicit stack (nesting never hits recursion)."""

    def __init__(self, layout: Layout, row_count_limit: int) -> None:
        self.layout = layout
        self.row_count_limit = row_count_limit
        self.rows: list[Row] = []
        self.extra_count = 0
        self.templates = True

    def run(self, root: etree._Element, root_key: str) -> list[Row]:
        self.templates = has_templates(root)
        stack = [self._frame(root, "", self._new_row(None, root_key, None, 1), "")]
        while stack:
            frame = stack[-1]
            row = frame.row
            for el, name, nth in frame.children:
                slot = frame.slots.get(name)
                if slot is None:
                    path = f"{frame.path}/{name}"
                    if row.table is None and path in _PROTOCOL_META:
                        continue
                    self._extra(row, path if nth == 1 else f"{path}[{nth}]", el)
                elif slot.repeat:
                    if len(self.rows) > self.row_count_limit:
                        raise InstanceInvalid(
                            "instance.too_many_rows",
                            f"The submission has more than {self.row_count_limit} repeat rows.")
                    child = self._new_row(
                        slot.path, f"{row.key}/{frame.prefix}{name}[{nth}]", row.key, nth)
                    stack.append(self._frame(el, slot.path, child, ""))
                    break  # the child first; this loop resumes where it stopped
                elif nth > 1:
                    self._extra(row, f"{slot.path}[{nth}]", el)
                elif slot.container:
                    stack.append(self._frame(el, slot.path, row, f"{frame.prefix}{name}/"))
                    break
                else:
                    text = own_text(el)
                    if slot.field.type in _STRIPPED_TYPES:
                        text = text.strip(_XML_WHITESPACE)
                    row.values[slot.path] = text or None
                    if len(el):
                        self._junk_in_value(el, slot.path, row)
            else:
                stack.pop()
        return self.rows

    def _frame(self, el: etree._Element, path: str, row: Row, prefix: str) -> _Frame:
        return _Frame(_numbered(el, self.templates), path, self.layout.slots.get(path, {}),
                      row, prefix)

    def _new_row(self, table: str | None, key: str, parent_key: str | None,
                 position: int) -> Row:
        row = Row(table, key, parent_key, position,
                  dict.fromkeys(self.layout.leaves.get(table, ())))
        self.rows.append(row)
        return row

    def _junk_in_value(self, el: etree._Element, path: str, row: Row) -> None:
        """Elements inside a value's element are not part of the value: ``extra``. Recorded
        last first, as they always have been (this decides ``extra``'s order and, at the
        cap, which are kept)."""
        for junk, name, nth in reversed(list(_numbered(el, self.templates))):
            self._extra(row, f"{path}/{name}" + (f"[{nth}]" if nth > 1 else ""), junk)

    def _extra(self, row: Row, path: str, el: etree._Element) -> None:
        """Record an unknown subtree's leaves under ``path``, iteratively and within caps."""
        stack = [(el, path)]
        while stack:
            node, node_path = stack.pop()
            if len(node_path) > MAX_EXTRA_PATH or self.extra_count >= MAX_EXTRA_VALUES:
                row.extra_truncated = True
                continue
            children = element_children(node)
            if not children:
                if node_path not in row.extra:
                    row.extra[node_path] = own_text(node)
                    self.extra_count += 1
                continue
            counts: dict[str, int] = {}
            steps = []
            for child in children:
                name = local_name(child)
                counts[name] = counts.get(name, 0) + 1
                steps.append((child, f"{node_path}/{name}" + (
                    f"[{counts[name]}]" if counts[name] > 1 else "")))
            stack += reversed(steps)


def _numbered(
    el: etree._Element, templates: bool
) -> Iterator[tuple[etree._Element, str, int]]:
    """The element's children (``jr:template`` copies skipped, if the tree has any) with
    their local names and their positions among the siblings of the same name."""
    counts: dict[str, int] = {}
    for child in el.iterchildren(etree.Element):
        if templates and child.get(JR_TEMPLATE) is not None:
            continue
        name = child.tag
        if name[0] == "{":
            name = local_name(child)
        counts[name] = nth = counts.get(name, 0) + 1
        yield child, name, nth

