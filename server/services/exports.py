"""Exporting a form's submissions: planning an export (options checked, columns laid out),
streaming it in any format, and running it in the background into a stored file behind an
expiring download link.

Reads happen on a connection opened for reading only (``server.db.read_only``: on SQLite it
does not take the write lock, so submissions keep arriving during a long export); when the
caller's session is bound to a connection rather than an engine (tests, a caller's own
transaction), that connection is used as it is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import queue
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import Connection, Engine, Result
from sqlalchemy.orm import Session

from forms.schema import Field, FormSchema
from server.auth.actor import Actor
from server.db import read_only, utcnow
from server.errors import Problem, Problems
from server.exports import writers
from server.exports.columns import (
    ROOT,
    ROOT_RECORD,
    ExportColumns,
    FormVersion,
    Layout,
    OptionError,
    Table,
    build,
)
from server.models import Blob, Export, Form, Job
from server.queries import exports as q
from server.queries.filters import SubmissionFilter
from server.services import audit, jobs
from server.services.blobs import store_blob
from server.storage import BlobStore
from sync.flatten import split_multiple

FORMATS = ("csv.zip", "csv", "xlsx", "geojson", "attachments.zip")
CONTENT_TYPES = {
    "csv.zip": "application/zip",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "geojson": "application/geo+json",
    "attachments.zip": "application/zip",
}
EXPORT_TTL = dt.timedelta(days=7)
"""How long a background export's file and link live after the export finishes."""
EXPIRY_SWEEP_PERIOD = dt.timedelta(hours=1)
TOKEN_BYTES = 32
PROGRESS_INTERVAL_SECONDS = 1.0
EXPORT_JOB = "export"
EXPIRE_JOB = "export.expire"
EXPORT_ACTION = "form.submission.export"


@dataclass(frozen=True)
class ExportRequest:
    """What to export and how: everything a background export needs to run later."""

    format: str
    layout: Layout = Layout()
    filter: SubmissionFilter = SubmissionFilter()
    attachments: bool = True
    """csv.zip only: include the submissions' files under ``media/`` (Central's default)."""
    geo_field: str | None = None
    """geojson only: the geo field to map (path or unique name); the first one if None."""

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise OptionError("format", f"must be one of {', '.join(FORMATS)}")

    def to_json(self) -> dict[str, Any]:
        f, layout = self.filter, self.layout
        return {
            "groupPaths": layout.group_paths, "deletedFields": layout.deleted_fields,
            "splitSelectMultiples": layout.split_select_multiples, "labels": layout.labels,
            "language": layout.language, "attachments": self.attachments,
            "geoField": self.geo_field,
            "filter": {
                "submittedFrom": _iso(f.submitted_from), "submittedTo": _iso(f.submitted_to),
                "submitterId": list(f.submitter_user_ids),
                "appUserId": list(f.submitter_app_user_ids), "deviceId": list(f.device_ids),
                "reviewState": list(f.review_states), "formVersion": list(f.form_versions),
                "includeHistory": f.include_history,
            },
        }

    @classmethod
    def from_json(cls, fmt: str, data: dict[str, Any]) -> ExportRequest:
        f = data.get("filter") or {}
        return cls(
            format=fmt,
            layout=Layout(group_paths=data["groupPaths"], deleted_fields=data["deletedFields"],
                          split_select_multiples=data["splitSelectMultiples"],
                          labels=data["labels"], language=data["language"]),
            filter=SubmissionFilter(
                submitted_from=_from_iso(f.get("submittedFrom")),
                submitted_to=_from_iso(f.get("submittedTo")),
                submitter_user_ids=tuple(f.get("submitterId", ())),
                submitter_app_user_ids=tuple(f.get("appUserId", ())),
                device_ids=tuple(f.get("deviceId", ())),
                review_states=tuple(f.get("reviewState", ())),
                form_versions=tuple(f.get("formVersion", ())),
                include_history=bool(f.get("includeHistory", False))),
            attachments=data["attachments"], geo_field=data["geoField"])


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _from_iso(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class ExportPlan:
    """A checked request with its columns: ready to stream."""

    form_id: int
    xml_form_id: str
    request: ExportRequest
    columns: ExportColumns
    geo: Field | None = None

    @property
    def filter(self) -> SubmissionFilter:
        return self.request.filter

    @property
    def format(self) -> str:
        return self.request.format

    @property
    def filename(self) -> str:
        """Central's names: ``{id}.zip`` with media, ``{id}.csv.zip`` without, ``{id}.csv``."""
        stem = self.columns.root.file_name[:-len(".csv")]
        if self.format == "csv.zip":
            return f"{stem}.zip" if self.request.attachments else f"{stem}.csv.zip"
        if self.format == "attachments.zip":
            return f"{stem}-attachments.zip"
        return f"{stem}.{self.format}"

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def request_problem(error: OptionError) -> Problem:
    return Problems.export_option_invalid(option=error.option, reason=error.reason)


def plan_export(db: Session, form: Form, request: ExportRequest) -> ExportPlan:
    """Check the request against the form and lay out its columns. A form never published
    has nothing to export (404); a bad option is 400.41."""
    rows = q.list_published_schemas(db, form.id)
    if not rows:
        raise Problems.not_found()
    versions = [FormVersion(version, FormSchema.from_json(schema)) for version, schema in rows]
    try:
        observed = (_observed_choices(db, form.id, versions, request)
                    if request.layout.split_select_multiples else None)
        columns = build(form.xml_form_id, versions, request.layout, observed)
        geo = columns.geo_field(request.geo_field) if request.format == "geojson" else None
    except OptionError as error:
        raise request_problem(error) from None
    return ExportPlan(form.id, form.xml_form_id, request, columns, geo)


def _observed_choices(db: Session, form_id: int, versions: list[FormVersion],
                      request: ExportRequest) -> dict[str, set[str]]:
    """The values each select_multiple's answers hold (one DISTINCT query per field)."""
    provisional = build("_", versions, dataclasses.replace(request.layout, labels=False,
                                                           language=None))
    out: dict[str, set[str]] = {}
    conn = db.connection()
    for f in provisional.select_multiples():
        seen = out.setdefault(f.path, set())
        for answer in q.list_values(conn, form_id, f.repeat or ROOT, f.path, request.filter):
            seen.update(split_multiple(answer))
    return out


# -- streaming ----------------------------------------------------------------------------------

@contextmanager
def reading(bind: Engine | Connection) -> Iterator[Connection]:
    """A connection to read an export with: a new read-only one from an engine, or the
    given connection (already in its caller's transaction)."""
    if isinstance(bind, Connection):
        yield bind
        return
    with read_only(bind) as conn, conn.begin():
        q.tune_for_export(conn)
        yield conn


class Progress:
    """Counts the units an export has written (table rows, files) and reports the fraction
    done at most every ``interval`` seconds."""

    def __init__(self, total: int, report: Callable[[float], None],
                 interval: float = PROGRESS_INTERVAL_SECONDS) -> None:
        self.total, self.report, self.interval = max(total, 1), report, interval
        self.done = 0
        self._last = time.monotonic()

    def count(self, items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            yield item
            self.done += 1
            now = time.monotonic()
            if now - self._last >= self.interval:
                self._last = now
                self.report(min(self.done / self.total, 0.99))


def _tick(items: Iterable[Any], progress: Progress | None) -> Iterable[Any]:
    return items if progress is None else progress.count(items)


def _rekey(key: str | None, version_id: str, submission_id: str) -> str | None:
    """A key stored with the version's instanceID, given the submission's instead (Central
    keys every version of a submission by its first instanceID)."""
    if key is None or version_id == submission_id or not key.startswith(version_id):
        return key
    return submission_id + key[len(version_id):]


def table_rows(conn: Connection, plan: ExportPlan, table: Table) -> Iterator[list[Any]]:
    """One table's rows, as cells in column order. The query runs now; rows are read as
    they are taken."""
    f, paths = plan.filter, table.value_paths
    if table.is_root:
        return map(table.root_cells, _rows(q.stream_root(conn, plan.form_id, f, paths)))
    skip = len(q.REPEAT_RECORD)
    return (table.repeat_cells(r[skip:], *_keys(r, f))
            for r in _rows(q.stream_repeat(conn, plan.form_id, table.path, f, paths)))


READ_AHEAD_BATCHES = 2


def _rows(result: Result) -> Iterator[Any]:
    """A query's rows; on PostgreSQL read ahead by a thread (see ``read_ahead``)."""
    if result.context.dialect.name != "postgresql":
        return iter(result)
    return read_ahead(result)


def read_ahead(result: Result, batches: int = READ_AHEAD_BATCHES) -> Iterator[Any]:
    """The rows of ``result``, fetched by a thread up to ``batches`` batches ahead of the
    caller: the database computes and sends the next batch while the caller writes this one
    (psycopg lets go of the GIL while it waits), which takes a third off a large export.
    Only that thread touches the result. It is stopped and joined before this generator
    ends, however it ends, so the connection is free for the next query."""
    ahead: queue.Queue[Any] = queue.Queue(maxsize=batches)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        try:
            for batch in result.partitions():
                if not put(batch):
                    return
            put(done)
        except BaseException as exc:  # handed to the caller, raised there
            put(exc)

    thread = threading.Thread(target=fetch, name="export-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := ahead.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield from item
    finally:
        stop.set()
        thread.join()
        result.close()


def _keys(r: Any, f: SubmissionFilter) -> tuple[str | None, str | None]:
    """``(PARENT_KEY, KEY)`` of a stored repeat row (laid out as ``REPEAT_RECORD``)."""
    row_key, parent_key, version, submission = r[0], r[1], r[2], r[3]
    if f.include_history or version == submission:
        return parent_key, row_key
    return _rekey(parent_key, version, submission), _rekey(row_key, version, submission)


def table_sources(conn: Connection, plan: ExportPlan, *, root_only: bool = False,
                  progress: Progress | None = None) -> Iterator[tuple[Table, Iterable[Any]]]:
    """Each table with its rows; a table's query runs when its turn comes."""
    for table in plan.columns.tables[:1] if root_only else plan.columns.tables:
        yield table, _tick(table_rows(conn, plan, table), progress)


def stored_files(conn: Connection, store: BlobStore, plan: ExportPlan, *,
                 progress: Progress | None = None) -> Iterator[writers.StoredFile]:
    """The files of an attachments zip: ``<instanceID>/<name>`` for every stored file."""
    result = _rows(q.stream_files(conn, plan.form_id, plan.filter))
    return (writers.StoredFile(writers.submission_arcname(r.name, r.key), r.key, r.name,
                               r.size, _opener(store, r.sha256))
            for r in _tick(result, progress))


def media_files(conn: Connection, store: BlobStore, plan: ExportPlan, *,
                progress: Progress | None = None) -> Iterator[writers.StoredFile]:
    """The files of a csv.zip: ``media/<name>`` (Central), each content once; names that
    stand for several contents go under their submission, ``media/<instanceID>/<name>``."""
    result = _rows(q.stream_media(conn, plan.form_id, plan.filter))
    return (writers.StoredFile(writers.media_arcname(r.name, r.key, shared=bool(r.shared)),
                               r.key, r.name, r.size, _opener(store, r.sha256))
            for r in _tick(result, progress))


def _opener(store: BlobStore, sha256: str) -> Callable[[], Iterator[bytes]]:
    return lambda: store.iter_chunks(sha256)


def geo_rows(conn: Connection, plan: ExportPlan, table: Table,
             progress: Progress | None = None) -> Iterator[tuple[list[Any], str | None]]:
    """The rows of the geo field's table with the field's answer beside each."""
    assert plan.geo is not None
    f, paths = plan.filter, table.value_paths
    at = paths.index(plan.geo.path)
    if table.is_root:
        skip = len(ROOT_RECORD)
        return ((table.root_cells(r), r[skip + at])
                for r in _tick(_rows(q.stream_root(conn, plan.form_id, f, paths)),
                               progress))
    skip = len(q.REPEAT_RECORD)
    return ((table.repeat_cells(r[skip:], *_keys(r, f)), r[skip + at])
            for r in _tick(_rows(q.stream_repeat(conn, plan.form_id, table.path, f,
                                                 paths)),
                           progress))


def export_chunks(conn: Connection, store: BlobStore, plan: ExportPlan, *,
                  progress: Progress | None = None) -> Iterator[bytes]:
    """The export's bytes, produced as they are consumed."""
    fmt = plan.format
    if fmt == "csv":
        table, rows = next(table_sources(conn, plan, root_only=True, progress=progress))
        yield from writers.csv_bytes(table.columns, rows)
    elif fmt == "csv.zip":
        media = (_later(lambda: media_files(conn, store, plan, progress=progress))
                 if plan.request.attachments else ())
        yield from writers.csv_zip(table_sources(conn, plan, progress=progress), media)
    elif fmt == "attachments.zip":
        yield from writers.files_zip(stored_files(conn, store, plan, progress=progress))
    elif fmt == "geojson":
        assert plan.geo is not None
        table = plan.columns.table(plan.geo.repeat or ROOT)
        yield from writers.geojson(table, plan.geo.path, plan.geo.type,
                                   geo_rows(conn, plan, table, progress))
    else:
        yield from writers.xlsx(table_sources(conn, plan, progress=progress))


def _later(make: Callable[[], Iterable[Any]]) -> Iterator[Any]:
    """``make()``'s items, with ``make`` called when the first is asked for."""
    yield from make()


def stream_export(bind: Engine | Connection, store: BlobStore,
                  plan: ExportPlan) -> Iterator[bytes]:
    """The export's bytes for a response, on a connection of its own (opened when the
    first chunk is asked for, closed when the last is taken or the consumer stops)."""
    with reading(bind) as conn:
        yield from export_chunks(conn, store, plan)


def primed(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Run ``chunks`` up to its first non-empty chunk now, so that what fails early (the
    database is down, a blob store outage) fails before a response has started."""
    for chunk in chunks:
        if chunk:
            return _chain(chunk, chunks)
    return iter(())


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield first
        yield from rest
    finally:
        close = getattr(rest, "close", None)
        if close is not None:
            close()


def record_export(db: Session, actor: Actor, form: Form, plan: ExportPlan,
                  export_id: int | None = None) -> None:
    audit.record(db, actor, EXPORT_ACTION, project_id=form.project_id,
                 target=("form", form.id),
                 details={"xmlFormId": form.xml_form_id, "format": plan.format,
                          "exportId": export_id, **plan.request.to_json()})


# -- background exports -------------------------------------------------------------------------

@dataclass(frozen=True)
class NewExport:
    export: Export
    token: str
    """The download link's secret; shown once, only its sha256 is stored."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def request_export(db: Session, actor: Actor, form: Form, request: ExportRequest) -> NewExport:
    """Queue a background export (checked now, so a bad option is refused at once)."""
    plan = plan_export(db, form, request)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    export = q.insert(db, Export(
        project_id=form.project_id, form_id=form.id, format=request.format,
        options=request.to_json(), status="queued", filename=plan.filename,
        token_sha256=token_digest(token), created_by_id=actor.user_id))
    job = jobs.enqueue(db, actor, EXPORT_JOB, {"exportId": export.id},
                       project_id=form.project_id)
    export.job_id = job.id
    db.flush()
    record_export(db, actor, form, plan, export.id)
    return NewExport(export, token)


def reissue_token(db: Session, actor: Actor, form: Form, export: Export) -> NewExport:
    """A new download link for an export; the previous link stops working."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    export.token_sha256 = token_digest(token)
    db.flush()
    audit.record(db, actor, "export.link", project_id=form.project_id,
                 target=("export", export.id), details={"xmlFormId": form.xml_form_id})
    return NewExport(export, token)


def is_expired(export: Export, now: dt.datetime | None = None) -> bool:
    return export.status == "expired" or (
        export.expires_at is not None and export.expires_at <= (now or utcnow()))


def downloadable(db: Session, export: Export) -> Blob:
    """The file of a finished export, or the problem that says why there is none."""
    if is_expired(export):
        raise Problems.export_expired()
    if export.status != "succeeded" or export.blob_id is None:
        raise Problems.export_unavailable(status=export.status)
    blob = q.get_blob(db, export.blob_id)
    if blob is None:
        raise Problems.export_expired()
    return blob


def by_token(db: Session, token: str) -> tuple[Export, Blob]:
    """The export a download link names (404 when none does)."""
    found = q.get_by_token(db, token_digest(token)) if 0 < len(token) <= 256 else None
    if found is None:
        raise Problems.not_found()
    return found[0], downloadable(db, found[0])


# -- the worker's side ---------------------------------------------------------------------------

STORE_KEY = "dodoso.blob_store"
"""``Session.info`` key under which a caller may hand the export job its blob store (tests
do); the worker otherwise opens the one its settings name."""


def _job_store(db: Session) -> BlobStore:
    store = db.info.get(STORE_KEY)
    if store is None:
        from server.settings import Settings
        from server.storage import open_blob_store

        store = db.info[STORE_KEY] = open_blob_store(Settings.from_env())
    return store


@jobs.handler(EXPORT_JOB)
def run_export(db: Session, job: Job) -> dict[str, Any]:
    """Write the export to a temporary file, store it as a blob, and mark the export done
    with its counts and expiry. A failure is recorded on the export (queued again while the
    job has attempts left)."""
    export = q.get(db, int(job.payload["exportId"]))
    if export is None or export.status not in ("queued", "running"):
        return {"skipped": True}
    export.status, export.error = "running", None
    db.commit()
    try:
        result = _write_export(db, job, export, _job_store(db))
    except Exception as exc:
        db.rollback()
        export = q.get(db, int(job.payload["exportId"]))
        if export is not None:
            export.status = "failed" if job.attempts >= job.max_attempts else "queued"
            export.error = f"{type(exc).__name__}: {exc}"[:2000]
            db.commit()
        raise
    expire_exports(db)
    return result


def _write_export(db: Session, job: Job, export: Export, store: BlobStore) -> dict[str, Any]:
    form = db.get(Form, export.form_id)
    if form is None or form.deleted_at is not None:
        raise ValueError("the form was deleted")
    plan = plan_export(db, form, ExportRequest.from_json(export.format, export.options))
    db.commit()  # the long read runs on its own connection: hold nothing here meanwhile

    def report(fraction: float) -> None:
        job.progress = fraction
        db.commit()

    with tempfile.TemporaryFile() as spool:
        with reading(db.get_bind()) as conn:
            counts = q.count_rows(conn, plan.form_id, plan.filter)
            progress = Progress(_units(conn, plan, counts), report)
            for chunk in export_chunks(conn, store, plan, progress=progress):
                spool.write(chunk)
        spool.seek(0)
        blob = store_blob(db, store, spool, content_type=plan.content_type)
    now = utcnow()
    export.status, export.blob_id = "succeeded", blob.id
    export.row_count = counts.get(ROOT, 0)
    export.byte_count = blob.size
    export.filename = plan.filename
    export.finished_at, export.expires_at = now, now + EXPORT_TTL
    db.flush()
    return {"exportId": export.id, "rows": export.row_count, "bytes": blob.size}


def _units(conn: Connection, plan: ExportPlan, counts: dict[str, int]) -> int:
    fmt = plan.format
    if fmt == "attachments.zip":
        return q.count_files(conn, plan.form_id, plan.filter)
    if fmt == "csv" or fmt == "geojson":
        geo_table = plan.geo.repeat if plan.geo is not None else None
        return counts.get(geo_table or ROOT, 0)
    total = sum(counts.get(t.path, 0) for t in plan.columns.tables)
    if fmt == "csv.zip" and plan.request.attachments:
        total += q.count_files(conn, plan.form_id, plan.filter)
    return total


def expire_exports(db: Session, now: dt.datetime | None = None) -> int:
    """Mark finished exports past their expiry as expired and let go of their files."""
    return q.expire_due(db, now or utcnow())


@jobs.handler(EXPIRE_JOB)
def run_expiry(db: Session, job: Job) -> dict[str, Any]:
    return {"expired": expire_exports(db)}


jobs.run_every(EXPIRE_JOB, EXPIRY_SWEEP_PERIOD)


def write_file(bind: Engine | Connection, store: BlobStore, plan: ExportPlan,
               out: IO[bytes]) -> int:
    """Write the export to ``out`` (the CLI); returns the bytes written."""
    written = 0
    with reading(bind) as conn:
        for chunk in export_chunks(conn, store, plan):
            out.write(chunk)
            written += len(chunk)
    return written

