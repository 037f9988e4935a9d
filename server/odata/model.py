"""A form version's schema as OData sees it, with ODK Central's names.

The submission table is the entity set ``Submissions``; every repeat, at any depth, is an
entity set named ``Submissions.`` plus the repeat's path with its steps joined by dots
(``Submissions.household.roster``), whose rows carry the parent row's id in a property named
after the parent table (``__Submissions-id``, or ``__Submissions-household-roster-id`` for a
repeat inside that repeat). Groups are complex types (properties nested in an object);
a repeat is a navigation property of the entity (or group) holding it. Names are made
OData identifiers the way Central makes them: a leading character that cannot start one is
prefixed with ``_`` and every run of other characters becomes one ``_``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from forms.schema import Field, FormSchema

ROOT_TABLE = "Submissions"
NAMESPACE_ROOT = "org.opendatakit.user"

_LEADING = re.compile(r"^([^A-Za-z_])")
_INNER = re.compile(r"[^A-Za-z0-9_]+")


def identifier(name: str) -> str:
    """Central's ``sanitizeOdataIdentifier``."""
    return _INNER.sub("_", _LEADING.sub(r"_\1", name))


def path_parts(path: str) -> list[str]:
    """``/household/roster`` → ``["household", "roster"]``, each made an identifier."""
    return [identifier(p) for p in path.strip("/").split("/")]


def is_repeat(f: Field) -> bool:
    return f.type == "repeat" or f.kind == "repeat"


def is_group(f: Field) -> bool:
    return not is_repeat(f) and (f.type == "structure" or f.kind == "group")


@dataclass(eq=False)
class Node:
    """A property: a value, a group (complex type) or a repeat (navigation property).
    Shaping reads these attributes for every row, so they are plain ones."""

    name: str
    field: Field
    children: list[Node] = field(default_factory=list)
    """A group's properties (in form order); empty for values and repeats."""
    path: str = field(init=False)
    is_group: bool = field(init=False)
    is_repeat: bool = field(init=False)

    def __post_init__(self) -> None:
        self.path = self.field.path
        self.is_repeat = is_repeat(self.field)
        self.is_group = is_group(self.field)


@dataclass(eq=False)
class Table:
    """An entity set: the submissions, or the rows of one repeat."""

    name: str
    path: str
    """The repeat's schema path; ``""`` for ``Submissions``."""
    parent: Table | None
    nodes: list[Node] = field(default_factory=list)

    @property
    def is_root(self) -> bool:
        return self.parent is None

    @cached_property
    def parent_id_name(self) -> str | None:
        """``__Submissions-id``, ``__Submissions-roster-id``…; ``None`` for Submissions."""
        if self.parent is None:
            return None
        parts = [ROOT_TABLE] + (path_parts(self.parent.path) if self.parent.path else [])
        return f"__{'-'.join(parts)}-id"

    def walk(self) -> list[Node]:
        """Every property of this table (groups' properties included, not other tables')."""
        out: list[Node] = []
        stack = list(reversed(self.nodes))
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.children))
        return out


@dataclass
class ODataModel:
    xml_form_id: str
    tables: dict[str, Table]
    """By entity set name, ``Submissions`` first, then repeats in form order."""

    @property
    def namespace(self) -> str:
        return f"{NAMESPACE_ROOT}.{identifier(self.xml_form_id)}"

    @property
    def root(self) -> Table:
        return self.tables[ROOT_TABLE]

    @cached_property
    def by_path(self) -> dict[str, Table]:
        return {t.path: t for t in self.tables.values()}

    def table(self, name: str) -> Table | None:
        return self.tables.get(name)

    def descendants(self, table: Table) -> list[Table]:
        """The repeat tables nested (at any depth) inside ``table``."""
        prefix = f"{table.path}/"
        return [t for t in self.tables.values() if t.path.startswith(prefix)]

    @classmethod
    def from_schema(cls, xml_form_id: str, schema: FormSchema) -> ODataModel:
        root = Table(ROOT_TABLE, "", None)
        tables = {ROOT_TABLE: root}
        containers: dict[str | None, list[Node]] = {None: root.nodes}
        table_of: dict[str | None, Table] = {None: root}
        for f in sorted(schema.fields, key=lambda f: f.order):
            siblings = containers.get(f.group)
            if siblings is None:  # a field whose container we could not place
                continue
            node = Node(identifier(f.name), f)
            siblings.append(node)
            if is_repeat(f):
                table = Table(f"{ROOT_TABLE}.{'.'.join(path_parts(f.path))}", f.path,
                              table_of[f.group])
                tables[table.name] = table
                containers[f.path] = table.nodes
                table_of[f.path] = table
            elif is_group(f):
                containers[f.path] = node.children
                table_of[f.path] = table_of[f.group]
        return cls(xml_form_id, tables)
