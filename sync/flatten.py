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

from dataclasses import dataclass, field

from lxml import etree

from forms.schema import Field, FormSchema
from sync.instance import (
    JR_TEMPLATE,
    Instance,
    InstanceInvalid,
    element_children,
    is_container,
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
    return _Flattener(schema, row_count_limit).run(instance.root, root_key)


def split_multiple(value: str | None) -> list[str]:
    """A ``select`` answer's choices: the value split on whitespace, empties dropped."""
    return value.split() if value else []


def split_points(value: str | None) -> list[str]:
    """A geotrace's or geoshape's points (``lat lon alt acc``), split on ``;`` with or without
    the space javarosa puts after it, empties dropped."""
    return [p.strip() for p in value.split(";") if p.strip()] if value else []


@dataclass
class _Item:
    """One element waiting to be placed."""

    el: etree._Element
    parent: str
    """Schema path of the element's parent (``""`` for the root)."""
    row: Row
    prefix: str
    """Group names between ``row`` and this element, each followed by ``/`` (for keys)."""
    nth: int
    """Position among the element's siblings of the same name."""


class _Flattener:
    """One walk over one instance, with an explicit stack (nesting never hits recursion)."""

    def __init__(self, schema: FormSchema, row_count_limit: int) -> None:
        self.schema = schema
        self.row_count_limit = row_count_limit
        self.rows: list[Row] = []
        self.leaves: dict[str | None, list[str]] = {}
        self.extra_count = 0

    def run(self, root: etree._Element, root_key: str) -> list[Row]:
        row = self._new_row(None, root_key, None, 1)
        stack = self._children_of(root, "", row, "")
        while stack:
            item = stack.pop()
            name = local_name(item.el)
            path = f"{item.parent}/{name}"
            found = self.schema.field(path)
            if found is None:
                if item.row.table is None and path in _PROTOCOL_META:
                    continue
                self._extra(item.row, path if item.nth == 1 else f"{path}[{item.nth}]", item.el)
            elif found.kind == "repeat" or found.type == "repeat":
                if len(self.rows) > self.row_count_limit:
                    raise InstanceInvalid(
                        "instance.too_many_rows",
                        f"The submission has more than {self.row_count_limit} repeat rows.")
                child = self._new_row(
                    path, f"{item.row.key}/{item.prefix}{name}[{item.nth}]", item.row.key,
                    item.nth)
                stack += self._children_of(item.el, path, child, "")
            elif item.nth > 1:
                self._extra(item.row, f"{path}[{item.nth}]", item.el)
            elif is_container(found):
                stack += self._children_of(item.el, path, item.row, f"{item.prefix}{name}/")
            else:
                item.row.values[path] = _value(item.el, found)
                for junk in self._children_of(item.el, path, item.row, ""):
                    step = local_name(junk.el) + (f"[{junk.nth}]" if junk.nth > 1 else "")
                    self._extra(item.row, f"{path}/{step}", junk.el)
        return self.rows

    def _new_row(self, table: str | None, key: str, parent_key: str | None,
                 position: int) -> Row:
        if table not in self.leaves:
            self.leaves[table] = [
                f.path for f in self.schema.fields_in(table) if not is_container(f)]
        row = Row(table, key, parent_key, position, dict.fromkeys(self.leaves[table]))
        self.rows.append(row)
        return row

    @staticmethod
    def _children_of(el: etree._Element, path: str, row: Row, prefix: str) -> list[_Item]:
        """The element's children (``jr:template`` copies skipped), reversed for the stack."""
        counts: dict[str, int] = {}
        items = []
        for child in element_children(el):
            if child.get(JR_TEMPLATE) is not None:
                continue
            name = local_name(child)
            counts[name] = counts.get(name, 0) + 1
            items.append(_Item(child, path, row, prefix, counts[name]))
        items.reverse()
        return items

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


def _value(el: etree._Element, f: Field) -> str | None:
    text = own_text(el)
    if f.type in _STRIPPED_TYPES:
        text = text.strip(_XML_WHITESPACE)
    return text or None
