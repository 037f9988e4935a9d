"""Flattened submission rows shaped into OData JSON entities, as ODK Central shapes them.

- Values are typed by the schema of the version the feed describes: ``int`` and
  ``decimal`` become JSON numbers (``null`` when the text is not a finite number),
  ``boolean`` true/false, ``dateTime`` keeps its text with a ``+hh`` offset made
  ``+hh:mm``, geo types become GeoJSON (``Point``, ``LineString``, ``Polygon``, accuracy
  in ``properties``) or, with ``$wkt=true``, Well-Known Text; everything else is text.
- Groups are nested objects; a repeat is a ``<name>@odata.navigationLink`` and, with
  ``$expand=*``, also an array of its rows.
- A submission's ``__id`` is its instanceID; a repeat row's is Central's: the SHA-1 of
  ``Submissions#<instanceID>`` and each step down to the row (``<group>#`` or
  ``<repeat>#<0-based position>``) joined by ``%%``. So ids (and the links and parent ids
  built from them) are the ones Central gives the same data.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from forms.schema import Field
from server.errors import Problems
from server.odata.model import ROOT_TABLE, Node, ODataModel, Table, identifier

JSON = dict[str, Any]
SYSTEM_FIELDS = ("submissionDate", "updatedAt", "submitterId", "submitterName",
                 "attachmentsPresent", "attachmentsExpected", "status", "reviewState",
                 "deviceId", "edits", "formVersion", "deletedAt")


# -- values ----------------------------------------------------------------------------------

def _finite(text: str) -> decimal.Decimal | None:
    try:
        value = decimal.Decimal(text.strip())
    except decimal.InvalidOperation:
        return None
    return value if value.is_finite() else None


def _int(text: str) -> int | None:
    try:
        return int(text.strip(), 10)
    except ValueError:
        value = _finite(text)
        return int(value) if value is not None else None


def _float(text: str) -> float | None:
    value = _finite(text)
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _coordinates(point: str) -> tuple[list[float], float | None] | None:
    """``lat lon [alt [acc]]`` → ``([lon, lat(, alt)], acc)``; ``None`` without lat/lon."""
    numbers = [_float(p) for p in point.split()]
    if len(numbers) < 2 or numbers[0] is None or numbers[1] is None:
        return None
    coords = [numbers[1], numbers[0]]
    if len(numbers) > 2 and numbers[2] is not None:
        coords.append(numbers[2])
    return coords, numbers[3] if len(numbers) > 3 else None


def _js(number: float) -> str:
    """A coordinate as JavaScript prints it (Central's WKT): ``1`` not ``1.0``."""
    return str(int(number)) if number.is_integer() and abs(number) < 1e16 else repr(number)


def _geo(type_: str, text: str, wkt: bool) -> object:
    if type_ == "geopoint":
        found = _coordinates(text)
        if found is None:
            return None
        coords, accuracy = found
        if wkt:
            return f"POINT ({' '.join(_js(c) for c in coords)})"
        point: JSON = {"type": "Point", "coordinates": coords}
        if accuracy is not None:
            point["properties"] = {"accuracy": accuracy}
        return point
    found_points = [_coordinates(p) for p in text.replace(";", "; ").split(";")]
    points = [p for p in found_points if p is not None]
    if not points:
        return None
    if wkt:
        body = ",".join(" ".join(_js(c) for c in coords) for coords, _ in points)
        return f"LINESTRING ({body})" if type_ == "geotrace" else f"POLYGON (({body}))"
    coordinates = [coords for coords, _ in points]
    shape: JSON = ({"type": "LineString", "coordinates": coordinates} if type_ == "geotrace"
                   else {"type": "Polygon", "coordinates": [coordinates]})
    accuracies = [acc for _, acc in points]
    if any(a is not None for a in accuracies):
        shape["properties"] = {"accuracies": accuracies}
    return shape


def typed(f: Field, text: str | None, *, wkt: bool = False) -> object:
    """One stored answer as the feed shows it."""
    if text is None:
        return None
    type_ = f.type
    if type_ == "int":
        return _int(text)
    if type_ == "decimal":
        return _float(text)
    if type_ == "boolean":
        value = text.strip().lower()
        return True if value in ("true", "1") else False if value in ("false", "0") else None
    if type_ in ("geopoint", "geotrace", "geoshape"):
        return _geo(type_, text, wkt)
    if type_ == "dateTime":
        value = text.strip()
        if len(value) > 3 and value[-3] in "+-" and value[-2:].isdigit():
            value += ":00"
        return value
    return text


def timestamp(value: dt.datetime | None) -> str | None:
    """``2026-11-28T10:00:00.000Z``, as JavaScript (and so Central) writes instants."""
    if value is None:
        return None
    utc = value.astimezone(dt.timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


# -- ids and links ---------------------------------------------------------------------------

def _steps(key: str, root_key: str) -> list[tuple[str, int | None]]:
    """A flattened row's key below the root: ``[("household", None), ("roster", 2)]``."""
    rest = key[len(root_key):]
    steps: list[tuple[str, int | None]] = []
    for step in rest.split("/")[1:]:
        name, bracket, position = step.partition("[")
        steps.append((name, int(position[:-1]) if bracket else None))
    return steps


def _central_id(instance_id: str, steps: list[tuple[str, int | None]]) -> str:
    if not steps:
        return instance_id
    parts = [f"{ROOT_TABLE}#{instance_id}"]
    parts += [f"{name}#" if n is None else f"{name}#{n - 1}" for name, n in steps]
    return hashlib.sha1("%%".join(parts).encode("utf-8")).hexdigest()


def _key_literal(value: str) -> str:
    """``'…'`` in a link, quoted the way JavaScript's ``encodeURIComponent`` does."""
    return "'" + quote(value.replace("'", "''"), safe="-_.!~*()") + "'"


@dataclass(slots=True)
class Row:
    """One flattened row of one submission's current version."""

    key: str
    parent_key: str | None
    table_path: str
    data: Mapping[str, str | None]


@dataclass(slots=True)
class SubmissionContext:
    """What every row of one submission needs to be shaped."""

    instance_id: str
    """The submission's (first) instanceID: Central's ``__id``."""
    root_key: str
    """The current version's instanceID: the root key its rows were flattened under."""
    children: Mapping[tuple[str, str], list[Row]] | None = None
    """``(table path, parent key)`` → rows, for ``$expand=*``."""
    _ids: dict[str, str] = field(default_factory=dict)

    def row_id(self, key: str) -> str:
        """Memoized: a parent's id is asked for by each of its rows."""
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = _central_id(self.instance_id, _steps(key, self.root_key))
        return found

    def steps(self, key: str) -> list[tuple[str, int | None]]:
        return _steps(key, self.root_key)

    def ancestor_id(self, key: str, repeats_deep: int) -> str | None:
        """The id of the row's ancestor that many repeats below the submission."""
        steps = self.steps(key)
        seen = 0
        for i, (_, n) in enumerate(steps):
            if n is not None:
                seen += 1
                if seen == repeats_deep:
                    return _central_id(self.instance_id, steps[:i + 1])
        return None


# -- $select ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Selection:
    paths: frozenset[str]
    """Schema paths shown (groups on the way to a selected field included)."""
    meta: frozenset[str]
    """``__id``, ``__system``, ``__system/<name>``, the parent id property."""


def selection(model: ODataModel, table: Table, select: tuple[str, ...]) -> Selection:
    """Central's rules: a property is a name or a ``group/name`` path relative to the
    table; a group brings everything in it; a field inside a nested repeat cannot be
    selected (400.32); anything unknown is 400.31."""
    nodes = [*table.walk(), *(n for t in model.descendants(table) for n in t.walk())]
    by_odata_path = {_odata_path(n.path): n for n in nodes}
    by_path = {n.path: n for n in nodes}
    meta = {"__id"} | ({table.parent_id_name} if table.parent_id_name else set())
    if table.is_root:
        meta |= {"__system"} | {f"__system/{name}" for name in SYSTEM_FIELDS}
    paths: set[str] = set()
    wanted_meta: set[str] = set()
    for prop in select:
        if prop in meta:
            wanted_meta.add(prop)
            continue
        node = by_odata_path.get(f"{_odata_path(table.path)}/{prop}")
        if node is None:
            raise Problems.odata_property_not_found(property=prop)
        if (node.field.repeat or "") != table.path:
            raise Problems.odata_select_unsupported(property=prop)
        paths.add(node.path)
        group = node.field.group
        while group is not None and group != table.path:
            paths.add(group)
            group = by_path[group].field.group
        stack = list(node.children)
        while stack:
            child = stack.pop()
            paths.add(child.path)
            stack.extend(child.children)
    return Selection(frozenset(paths), frozenset(wanted_meta))


def _odata_path(path: str) -> str:
    return "/".join(identifier(p) for p in path.split("/")) if path else ""


# -- entities --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shaper:
    """Shapes rows of one table; one per request."""

    model: ODataModel
    table: Table
    wkt: bool = False
    expand: bool = False
    select: Selection | None = None

    def submission(self, ctx: SubmissionContext, row: Row | None,
                   system: Mapping[str, object] | None) -> JSON:
        entity = self._object(self.table.nodes, row, ctx, ctx.root_key) if row else {}
        if self._meta("__id"):
            entity["__id"] = ctx.instance_id
        if system is not None:
            if self.select is None or "__system" in self.select.meta:
                entity["__system"] = dict(system)
            elif any(m.startswith("__system/") for m in self.select.meta):
                entity["__system"] = {k: v for k, v in system.items()
                                      if f"__system/{k}" in self.select.meta}
        return entity

    def repeat_row(self, ctx: SubmissionContext, row: Row) -> JSON:
        entity = self._object(self.table.nodes, row, ctx, row.key)
        if self._meta("__id"):
            entity["__id"] = ctx.row_id(row.key)
        parent_name = self.table.parent_id_name
        if parent_name and self._meta(parent_name) and row.parent_key is not None:
            entity[parent_name] = ctx.row_id(row.parent_key)
        return entity

    def _meta(self, name: str) -> bool:
        return self.select is None or name in self.select.meta

    def _shown(self, node: Node) -> bool:
        return self.select is None or node.path in self.select.paths

    def _object(self, nodes: list[Node], row: Row | None, ctx: SubmissionContext,
                row_key: str) -> JSON:
        out: JSON = {}
        links: JSON = {}
        for node in nodes:
            if not self._shown(node):
                continue
            if node.is_repeat:
                links[f"{node.name}@odata.navigationLink"] = self._link(ctx, row_key, node)
                if self.expand:
                    links[node.name] = [self._expanded(ctx, child) for child in
                                        (ctx.children or {}).get((node.path, row_key), [])]
            elif node.is_group:
                out[node.name] = self._object(node.children, row, ctx, row_key)
            else:
                text = row.data.get(node.path) if row is not None else None
                out[node.name] = typed(node.field, text, wkt=self.wkt)
        out.update(links)
        return out

    def _expanded(self, ctx: SubmissionContext, row: Row) -> JSON:
        table = self.model.by_path[row.table_path]
        entity = self._object(table.nodes, row, ctx, row.key)
        entity["__id"] = ctx.row_id(row.key)
        return entity

    def _link(self, ctx: SubmissionContext, row_key: str, node: Node) -> str:
        parts = [f"{ROOT_TABLE}({_key_literal(ctx.instance_id)})"]
        steps = ctx.steps(row_key)
        for i, (name, n) in enumerate(steps):
            if n is None:
                parts.append(identifier(name))
            else:
                row_id = _central_id(ctx.instance_id, steps[:i + 1])
                parts.append(f"{identifier(name)}('{row_id}')")
        inside = node.path[len(node.field.repeat or ""):].strip("/").split("/")
        parts += [identifier(p) for p in inside]
        return "/".join(parts)
