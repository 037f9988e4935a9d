"""The OData feed of a form (or its draft): service document, ``$metadata`` and data, as
ODK Central serves them, so Excel, Power BI and pyodk read it unmodified.

Data is written as a stream of JSON text. With ``$top`` a request is one page: one keyset
query for ``$top`` + 1 rows, and ``@odata.nextLink`` carries an opaque ``$skiptoken`` (the
sort key of the page's last row) when there is more. Without ``$top`` the whole table is
streamed (as Central does), read in keyset batches, never held in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from forms.schema import FormSchema
from server import queries
from server.errors import Problems
from server.models import Form, FormDef
from server.odata import edmx
from server.odata.entities import Row, Selection, Shaper, SubmissionContext, selection, timestamp
from server.odata.model import ODataModel, Table
from server.odata.options import (
    QueryOptions,
    Resource,
    encode_skiptoken,
    parse_options,
    parse_resource,
)
from server.queries import odata as sql
from server.queries.odata import Scope, SortKey

BATCH = 1000
"""Rows per query when a whole table is streamed."""
MAX_FETCH = 10_000
"""Most rows one query fetches for a ``$top`` page (bigger pages take several)."""
CHUNK = 64 * 1024
"""Characters of JSON written at a time."""

_MODELS: dict[tuple[int, str], ODataModel] = {}
_MODEL_CACHE_SIZE = 128


@dataclass(frozen=True)
class Feed:
    form: Form
    definition: FormDef
    draft: bool
    model: ODataModel
    service_url: str
    """Absolute URL of the ``.svc`` root."""


def open_feed(db: Session, form: Form, *, draft: bool, service_url: str) -> Feed:
    """The published version's feed (the draft's with ``draft``); 404.1 without one."""
    definition = (queries.forms.draft_def(db, form.id) if draft
                  else queries.forms.current_def(db, form.id))
    if definition is None:
        raise Problems.not_found()
    return Feed(form, definition, draft, _model(form, definition), service_url)


def _model(form: Form, definition: FormDef) -> ODataModel:
    """A version's model never changes: kept per process (by id and XForm hash)."""
    key = (definition.id, definition.xml_sha256)
    model = _MODELS.get(key)
    if model is None:
        if len(_MODELS) >= _MODEL_CACHE_SIZE:
            _MODELS.pop(next(iter(_MODELS)), None)
        model = _MODELS[key] = ODataModel.from_schema(
            form.xml_form_id, FormSchema.from_json(definition.schema))
    return model


def service_document(feed: Feed) -> dict[str, Any]:
    return edmx.service_document(feed.model, f"{feed.service_url}/$metadata")


def metadata(feed: Feed) -> bytes:
    return edmx.metadata_document(feed.model)


# -- data ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """A data request, parsed and checked before the response starts."""

    feed: Feed
    resource: Resource
    options: QueryOptions
    select: Selection | None
    path: str
    """The request's path (for ``@odata.nextLink``), and its query arguments:"""
    args: Sequence[tuple[str, str]]


def parse_request(feed: Feed, resource_path: str, args: Sequence[tuple[str, str]],
                  path: str) -> Request:
    """Everything a client can get wrong is found here, so that it is a 4xx/501 and not a
    broken stream."""
    single: dict[str, str] = {}
    for name, value in args:
        if name in single:
            raise Problems.invalid_parameter(field=name)
        single[name] = value
    options = parse_options(single)
    resource = parse_resource(feed.model, resource_path)
    chosen = selection(feed.model, resource.table, options.select) \
        if options.select is not None else None
    request = Request(feed, resource, options, chosen, path, args)
    _check_skiptoken(request)
    return request


def _order_names(request: Request) -> list[str]:
    return [k.name for k in _keys(request)]


def _keys(request: Request) -> list[SortKey]:
    return sql.sort_keys(request.options.orderby, rows=not request.resource.table.is_root)


def _check_skiptoken(request: Request) -> None:
    token = request.options.skiptoken
    if token is None:
        return
    resource = request.resource
    if resource.instance_id is not None:
        valid = (token.get("t") == resource.table.name and isinstance(token.get("o"), int)
                 and token["o"] >= 0)
    else:
        keys = token.get("k")
        valid = (token.get("t") == resource.table.name
                 and token.get("s") == _order_names(request)
                 and isinstance(keys, list) and len(keys) == len(token["s"]))
    if not valid:
        raise Problems.odata_invalid_skiptoken()


def read(db: Session, request: Request) -> Iterator[str]:
    """The response body, in pieces."""
    feed, resource, options = request.feed, request.resource, request.options
    table = resource.table
    head: dict[str, Any] = {"@odata.context": f"{feed.service_url}/$metadata#{table.name}"}
    scope = Scope(feed.form.id, feed.draft, options.filter if resource.instance_id is None
                  else None, resource.instance_id)
    if options.count and resource.instance_id is None:
        head["@odata.count"] = (sql.count_submissions(db, scope) if table.is_root
                                else sql.count_rows(db, scope, table.path))
    shaper = Shaper(feed.model, table, wkt=options.wkt, expand=options.expand,
                    select=request.select)
    if resource.instance_id is not None:
        entities, next_token, count = _one_submission(db, request, scope, shaper)
        if options.count:
            head["@odata.count"] = count
        yield from _document(head, iter(entities), lambda: next_token, request)
        return
    state: dict[str, str | None] = {"next": None}
    entities_iter = _table(db, request, scope, shaper, state)
    yield from _document(head, entities_iter, lambda: state["next"], request)


def _document(head: dict[str, Any], entities: Iterator[dict[str, Any]],
              next_token: Any, request: Request) -> Iterator[str]:
    pending = next(entities, None)  # the first query runs before anything is written
    yield json.dumps(head, ensure_ascii=False, separators=(",", ":"))[:-1] + ',"value":['
    if pending is not None:
        parts = [_dumps(pending)]
        size = len(parts[0])
        for entity in entities:
            text = _dumps(entity)
            parts.append(text)
            size += len(text)
            if size >= CHUNK:
                yield ",".join(parts)
                parts, size = [""], 0
        yield ",".join(parts)
    token = next_token()
    tail = "]"
    if token is not None:
        tail += ',"@odata.nextLink":' + json.dumps(_next_link(request, token))
    yield tail + "}"


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _next_link(request: Request, token: str) -> str:
    """The request's URL with ``$skiptoken`` (and without ``$skip``)."""
    args = [(k, v) for k, v in request.args if k not in ("$skip", "$skiptoken")]
    args.append(("$skiptoken", token))
    base = request.feed.service_url.split("/v1/", 1)[0]
    return f"{base}{request.path}?{urlencode(args, safe='$')}"


# -- whole tables, keyset-paged --------------------------------------------------------------

def _table(db: Session, request: Request, scope: Scope, shaper: Shaper,
           state: dict[str, str | None]) -> Iterator[dict[str, Any]]:
    options, table = request.options, request.resource.table
    keys = _keys(request)
    after = options.skiptoken["k"] if options.skiptoken else None
    offset = options.skip
    remaining = options.top
    while remaining is None or remaining > 0:
        want = BATCH if remaining is None else min(remaining, MAX_FETCH)
        records = _fetch(db, request, scope, keys, after, want + 1, offset)
        more = len(records) > want
        records = records[:want]
        yield from _shape(db, request.feed, table, shaper, records)
        if not records:
            return
        after = [getattr(records[-1], f"k{i}") for i in range(len(keys))]
        offset = 0
        if remaining is not None:
            remaining -= len(records)
            if more and remaining == 0:
                state["next"] = encode_skiptoken({"t": table.name, "s": [k.name for k in keys],
                                                  "k": after})
        if not more:
            return


def _fetch(db: Session, request: Request, scope: Scope, keys: Sequence[SortKey],
           after: Sequence[Any] | None, limit: int, offset: int) -> list[Any]:
    table = request.resource.table
    if table.is_root:
        return sql.submissions_page(db, scope, keys, after, limit=limit, offset=offset)
    return sql.rows_page(db, scope, table.path, keys, after, limit=limit, offset=offset)


def _shape(db: Session, feed: Feed, table: Table, shaper: Shaper,
           records: Sequence[Any]) -> Iterator[dict[str, Any]]:
    children = _children(db, feed, table, records) if shaper.expand else None
    contexts: dict[int, SubmissionContext] = {}
    for record in records:
        ctx = contexts.get(record.def_id)
        if ctx is None:
            ctx = contexts[record.def_id] = SubmissionContext(
                record.instance_id, record.def_instance_id, (children or {}).get(record.def_id))
        if table.is_root:
            row = (Row(record.def_instance_id, None, "", record.data)
                   if record.data is not None else None)
            yield shaper.submission(ctx, row, _system(record))
        else:
            yield shaper.repeat_row(ctx, Row(record.row_key, record.parent_key,
                                             record.table_path, record.data))


def _children(db: Session, feed: Feed, table: Table, records: Sequence[Any]
              ) -> dict[int, dict[tuple[str, str], list[Row]]]:
    """For ``$expand=*``: the nested repeats' rows of these records' versions, in one
    query, by version then ``(table path, parent key)``."""
    paths = [t.path for t in feed.model.descendants(table)]
    found: dict[int, dict[tuple[str, str], list[Row]]] = {}
    for row in sql.rows_under(db, feed.form.id, sorted({r.def_id for r in records}), paths):
        found.setdefault(row.submission_def_id, {}).setdefault(
            (row.table_path, row.parent_key), []).append(
            Row(row.row_key, row.parent_key, row.table_path, row.data))
    return found


def _system(record: Any) -> dict[str, object]:
    status = None
    if record.encrypted:
        status = "notDecrypted" if record.has_data else "missingEncryptedFormData"
    return {
        "submissionDate": timestamp(record.created_at),
        "updatedAt": timestamp(record.updated_at),
        "submitterId": str(record.submitter_id) if record.submitter_id is not None else None,
        "submitterName": record.submitter_name,
        "attachmentsPresent": record.attachments_present or 0,
        "attachmentsExpected": record.attachments_expected or 0,
        "status": status,
        "reviewState": None if record.review_state == "received" else record.review_state,
        "deviceId": record.device_id,
        "edits": record.edits,
        "formVersion": record.form_version,
        "deletedAt": timestamp(record.deleted_at),
    }


# -- one submission --------------------------------------------------------------------------

def _one_submission(db: Session, request: Request, scope: Scope, shaper: Shaper
                    ) -> tuple[list[dict[str, Any]], str | None, int]:
    """``Submissions('…')`` or a repeat table under it: a submission's rows are few (at
    most ingest's row limit), so they are read at once and paged by position."""
    resource, options, feed = request.resource, request.options, request.feed
    table = resource.table
    keys = sql.sort_keys(())
    records = sql.submissions_page(db, scope, keys, limit=1)
    if not records:
        raise Problems.not_found()
    record = records[0]
    if table.is_root:
        return list(_shape(db, feed, table, shaper, records)), None, 1
    rows = sql.rows_page(db, scope, table.path, sql.sort_keys((), rows=True))
    if resource.ancestor_depth is not None:
        ctx = SubmissionContext(record.instance_id, record.def_instance_id)
        rows = [r for r in rows
                if ctx.ancestor_id(r.row_key, resource.ancestor_depth) == resource.ancestor_id]
    start = options.skiptoken["o"] if options.skiptoken else options.skip
    end = len(rows) if options.top is None else start + options.top
    page = rows[start:end]
    token = (encode_skiptoken({"t": table.name, "o": end})
             if options.top is not None and end < len(rows) else None)
    return list(_shape(db, feed, table, shaper, page)), token, len(rows)

