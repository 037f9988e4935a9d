"""A feed request: which table (and which submission or repeat row) it names, and its
query options, checked the way Central checks them.

Resource paths, after ``….svc/``: ``Submissions``, ``Submissions.roster`` (a repeat's whole
table), ``Submissions('uuid:…')`` (one submission), ``Submissions('uuid:…')/roster`` (that
submission's rows of a repeat, groups on the way named too: ``…/household/roster``) and
``Submissions('uuid:…')/roster('<row id>')/stays`` (the rows under one repeat row).

``$skiptoken`` is opaque to clients: URL-safe base64 of a small JSON object holding the sort
key of the last row sent (keyset paging), checked on the way back in.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from server.errors import Problems
from server.odata.filter import Expr, OrderKey, parse_datetime, parse_filter, parse_orderby
from server.odata.model import ROOT_TABLE, Node, ODataModel, Table

SUPPORTED = frozenset({"$format", "$count", "$skip", "$top", "$filter", "$wkt", "$expand",
                       "$select", "$skiptoken", "$orderby"})
JSON_FORMATS = frozenset({"json", "application/json"})
SKIPTOKEN_PREFIX = "01"
MAX_INT = 2 ** 63 - 1


@dataclass(frozen=True)
class QueryOptions:
    top: int | None = None
    skip: int = 0
    count: bool = False
    wkt: bool = False
    expand: bool = False
    select: tuple[str, ...] | None = None
    filter: Expr | None = None
    orderby: tuple[OrderKey, ...] = ()
    skiptoken: dict[str, Any] | None = None


def _boolean(args: Mapping[str, str], name: str) -> bool:
    value = args.get(name)
    if value is None:
        return False
    if value.lower() not in ("true", "false"):
        raise Problems.invalid_parameter(field=name)
    return value.lower() == "true"


def _integer(args: Mapping[str, str], name: str) -> int | None:
    value = args.get(name)
    if value is None:
        return None
    if not value.strip().isdigit() or int(value) > MAX_INT:
        raise Problems.invalid_parameter(field=name)
    return int(value)


def parse_options(args: Mapping[str, str]) -> QueryOptions:
    for name in args:
        if name not in SUPPORTED:
            raise Problems.not_implemented(feature=name)
    fmt = args.get("$format")
    if fmt is not None and fmt.lower() not in JSON_FORMATS:
        raise Problems.unacceptable_format(allowed="json", got=fmt)
    expand = args.get("$expand")
    if expand is not None and expand.strip() != "*":
        raise Problems.odata_unsupported_expand(text=expand)
    select = args.get("$select")
    if expand is not None and select is not None:
        raise Problems.odata_select_with_expand()
    selected = (tuple(p.strip() for p in select.split(","))
                if select is not None and select.strip() != "*" else None)
    filter_ = args.get("$filter")
    orderby = args.get("$orderby")
    token = args.get("$skiptoken")
    return QueryOptions(
        top=_integer(args, "$top"),
        skip=0 if token is not None else (_integer(args, "$skip") or 0),
        count=_boolean(args, "$count"),
        wkt=_boolean(args, "$wkt"),
        expand=expand is not None,
        select=selected,
        filter=parse_filter(filter_) if filter_ is not None else None,
        orderby=parse_orderby(orderby) if orderby is not None and orderby.strip() else (),
        skiptoken=decode_skiptoken(token) if token is not None else None,
    )


# -- skiptokens ------------------------------------------------------------------------------

def encode_skiptoken(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":"), default=_json_default).encode()
    return SKIPTOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _json_default(value: object) -> object:
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    raise TypeError(type(value).__name__)


def decode_skiptoken(token: str) -> dict[str, Any]:
    if not token.startswith(SKIPTOKEN_PREFIX) or len(token) > 4096:
        raise Problems.odata_invalid_skiptoken()
    body = token[len(SKIPTOKEN_PREFIX):]
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)),
                          object_hook=_json_hook)
    except (binascii.Error, ValueError):
        raise Problems.odata_invalid_skiptoken() from None
    if not isinstance(data, dict):
        raise Problems.odata_invalid_skiptoken()
    return data


def _json_hook(obj: dict[str, Any]) -> object:
    if set(obj) == {"$dt"}:
        value = parse_datetime(str(obj["$dt"]))
        if value is None:
            raise ValueError("bad date-time in skiptoken")
        return value
    return obj


# -- resource paths --------------------------------------------------------------------------

@dataclass(frozen=True)
class Resource:
    table: Table
    instance_id: str | None = None
    """``Submissions('…')``: only this submission."""
    ancestor_depth: int | None = None
    ancestor_id: str | None = None
    """``…/roster('<id>')/…``: only rows under that repeat row, ``ancestor_depth`` being how
    many repeats deep (1 for a repeat of the submission) the keyed segment is."""


def _segments(path: str) -> list[tuple[str, str | None]]:
    """``a('x')/b/c('y''z')`` → ``[("a", "x"), ("b", None), ("c", "y'z")]``."""
    out: list[tuple[str, str | None]] = []
    i, n = 0, len(path)
    while i < n:
        j = i
        while j < n and path[j] not in "/(":
            j += 1
        name, key = path[i:j], None
        if j < n and path[j] == "(":
            if path[j + 1:j + 2] != "'":
                raise Problems.not_found()
            k, chars = j + 2, []
            while True:
                if k >= n:
                    raise Problems.not_found()
                if path[k] == "'":
                    if path[k + 1:k + 2] == "'":
                        chars.append("'")
                        k += 2
                        continue
                    break
                chars.append(path[k])
                k += 1
            if path[k + 1:k + 2] != ")":
                raise Problems.not_found()
            key, j = "".join(chars), k + 2
        if not name or (j < n and path[j] != "/"):
            raise Problems.not_found()
        out.append((name, key))
        i = j + 1
        if j == n - 1:  # a trailing slash
            break
    return out


def parse_resource(model: ODataModel, path: str) -> Resource:
    """The table a path names (404.1 for anything else)."""
    segments = _segments(path)
    if not segments:
        raise Problems.not_found()
    first, instance_id = segments[0]
    if len(segments) == 1 and instance_id is None:
        table = model.table(first)
        if table is None:
            raise Problems.not_found()
        return Resource(table)
    if first != ROOT_TABLE or instance_id is None:
        raise Problems.not_found()
    nodes: list[Node] = model.root.nodes
    table, depth, ancestor, last = model.root, 0, None, None
    for name, key in segments[1:]:
        node = next((n for n in nodes if n.name == name), None)
        if node is not None and node.is_repeat:
            table = model.by_path[node.path]
            depth += 1
            if key is not None:
                ancestor = (depth, key)
            nodes = table.nodes
        elif node is not None and node.is_group and key is None:
            nodes = node.children
        else:
            raise Problems.not_found()
        last = node
    if last is not None and not last.is_repeat:
        raise Problems.not_found()
    if ancestor is not None and ancestor[0] == depth:
        raise Problems.not_found()  # one repeat row on its own is not a resource
    depth_, key_ = ancestor if ancestor is not None else (None, None)
    return Resource(table, instance_id, depth_, key_)
