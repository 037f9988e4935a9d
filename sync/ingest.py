"""Ingesting one submission: every acknowledged interview stored exactly once.

One transaction per request (committed by the request boundary, after which — and only
after which — the client is answered 201). Files go to the blob store before the attachment
rows that refer to them are written, so a committed row always has its bytes. The common
case (a new submission) reads once and writes one statement per table; edits and resends
take the ORM's slower, more general path.

- new instanceID → a new submission, its XML kept and flattened into rows;
- same instanceID, byte-identical XML → the attachments this request brings are added
  (Collect splits big submissions over several POSTs this way, and retries this way);
- same instanceID, other XML → 409; a deleted submission's instanceID → 409;
- ``meta/deprecatedID`` → a new version of that submission (unknown → 404, not current →
  409), the earlier versions kept;
- a submission without an instanceID gets ``sha256:<hash of its XML>``, so a resend of the
  same bytes is still recognised (an encrypted one without an instanceID is refused).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from forms.schema import FormSchema
from server import queries
from server.auth.actor import Actor
from server.caches import bounded_put
from server.db import utcnow
from server.errors import Problem, Problems
from server.models import Form, Submission, SubmissionDef
from server.models.submissions import ROOT_TABLE
from server.queries.ingest import FormRef, Target, VersionRef
from server.services import audit
from server.services.blobs import store_blob
from server.storage import BlobStore
from sync.flatten import flatten
from sync.instance import Instance, InstanceInvalid, parse_instance, referenced_files


@dataclass(frozen=True)
class IncomingFile:
    name: str
    stream: BinaryIO
    content_type: str | None = None


@dataclass(frozen=True)
class Envelope:
    """Who sent the submission, from where, and to what (a draft's test endpoint or not)."""

    actor: Actor
    device_id: str | None = None
    user_agent: str | None = None
    draft: bool = False
    key_hash: str | None = None
    """The hash of an app-user key recalled from the process's cache rather than checked by
    its own query: ingest checks it again in its first statement, before storing anything."""


@dataclass(frozen=True)
class StoredRef:
    id: int
    instance_id: str


@dataclass(frozen=True)
class IngestResult:
    submission: StoredRef
    """The logical submission (its instanceID is the first version's)."""
    definition: StoredRef
    """The version this request stored, or found already stored."""
    created: bool
    attachments_added: int


def ingest_submission(db: Session, store: BlobStore, *, project_id: int, xml: bytes,
                      files: Mapping[str, IncomingFile], envelope: Envelope,
                      form: Form | None = None, max_file_bytes: int | None = None,
                      authorize: Callable[[FormRef], None] | None = None) -> IngestResult:
    """``authorize`` is called with the form the submission names, before anything is
    stored (app users may only submit to forms assigned to them)."""
    instance = _parse(xml)
    if form is not None and instance.form_id != form.xml_form_id:
        raise Problems.form_id_mismatch(found=instance.form_id, expected=form.xml_form_id)
    xml_sha256 = hashlib.sha256(xml).hexdigest()
    instance_id = instance.instance_id or f"sha256:{xml_sha256}"
    known = _known_target(db, project_id, instance, envelope, form)
    if known is not None:
        created = _create_if_still_valid(db, store, known, instance, instance_id, xml,
                                         xml_sha256, files, envelope, max_file_bytes)
        if created is not None:
            return created
    found = queries.ingest.target(
        db, project_id=form.project_id if form is not None else project_id,
        xml_form_id=instance.form_id, version=instance.version, draft=envelope.draft,
        instance_id=instance_id,
        app_user_id=envelope.actor.app_user.id if envelope.actor.app_user else None,
        key_hash=envelope.key_hash)
    if found is None:
        raise Problems.not_found()
    if not found.key_valid:
        raise Problems.forbidden()
    if authorize is not None:
        authorize(found.form)
    form_def = _form_def(found, instance, envelope.draft)
    if form_def.encryption_key and not instance.encrypted:
        raise Problems.encryption_required()
    schema = schema_of(db, form_def)
    if not instance.instance_id:
        _check_derivable(instance)
    instance = dataclasses.replace(instance, instance_id=instance_id)

    if found.existing_def_id is not None:
        existing = db.get(SubmissionDef, found.existing_def_id)
        assert existing is not None
        return _resend(db, store, found.form, existing, xml_sha256, files, envelope,
                       max_file_bytes)
    if instance.deprecated_id:
        return _edit(db, store, found.form, form_def, instance, xml, xml_sha256, schema,
                     files, envelope, max_file_bytes)
    if not envelope.draft:
        _remember_target(project_id, instance.form_id, found)
    result = _create(db, store, found.form, form_def, instance, xml, xml_sha256,
                     _prepare_new(found.form, instance, schema), files, envelope,
                     max_file_bytes)
    assert result is not None
    return result


# -- new submissions to forms this process has taken them for --------------------------------
#
# Most uploads are new submissions to a form and version this process has stored
# submissions for already. For those, the lookup before the write (``target``) is folded
# into the write itself (``queries.ingest.Guard``), on PostgreSQL: one round trip less.
# When the guard does not hold (the form was closed, the key revoked, the instanceID is
# stored already…) nothing is written, and the full path below runs and answers exactly
# as it always does, its checks in their usual order.

@dataclass(frozen=True)
class _Known:
    form: FormRef
    version: VersionRef


_KNOWN: dict[tuple[int, str, str], _Known] = {}
_KNOWN_SIZE = 256


def _remember_target(project_id: int, xml_form_id: str, found: Target) -> None:
    """A published, unencrypted version that took a new submission by the full path."""
    version = found.version
    if version is None or version.encryption_key:
        return
    bounded_put(_KNOWN, (project_id, xml_form_id, version.version), _Known(found.form, version),
                 _KNOWN_SIZE)


def _known_target(db: Session, project_id: int, instance: Instance, envelope: Envelope,
                  form: Form | None) -> _Known | None:
    """Only for an app user's key recalled from the cache (whose route authorises by
    assignment, which the guard checks), a new plain submission, and a published form."""
    if (envelope.key_hash is None or envelope.actor.app_user is None or envelope.draft
            or form is not None or instance.deprecated_id or instance.encrypted):
        return None
    known = _KNOWN.get((project_id, instance.form_id, instance.version))
    if known is None or not queries.ingest.can_guard(db):
        return None
    return known


def _create_if_still_valid(db: Session, store: BlobStore, known: _Known, instance: Instance,
                           instance_id: str, xml: bytes, xml_sha256: str,
                           files: Mapping[str, IncomingFile], envelope: Envelope,
                           max_file_bytes: int | None) -> IngestResult | None:
    """None (nothing written) when the full path must decide."""
    assert envelope.actor.app_user is not None and envelope.key_hash is not None
    instance = dataclasses.replace(instance, instance_id=instance_id)
    try:
        prepared = _prepare_new(known.form, instance, schema_of(db, known.version))
    except Problem:
        return None  # the full path raises it, or a problem it checks first
    guard = queries.ingest.Guard(
        form_id=known.form.id, project_id=known.form.project_id,
        form_def_id=known.version.id, app_user_id=envelope.actor.app_user.id,
        key_hash=envelope.key_hash, instance_id=instance_id)
    return _create(db, store, known.form, known.version, instance, xml, xml_sha256,
                   prepared, files, envelope, max_file_bytes, guard=guard)


@dataclass(frozen=True)
class _NewParts:
    expected: list[str]
    """The attachments the submission names."""
    rows: list[dict]


def _prepare_new(form: FormRef, instance: Instance, schema: FormSchema) -> _NewParts:
    """What a new submission stores besides itself: checked (and refused) before anything
    is written."""
    return _NewParts(referenced_files(instance, schema),
                     [] if instance.encrypted else _rows(form, instance, schema))


def _create(db: Session, store: BlobStore, form: FormRef, form_def: VersionRef,
            instance: Instance, xml: bytes, xml_sha256: str, parts: _NewParts,
            files: Mapping[str, IncomingFile], envelope: Envelope,
            max_file_bytes: int | None,
            guard: queries.ingest.Guard | None = None) -> IngestResult | None:
    """A new submission. Its row, its first version, its flattened rows and its audit event
    are written first, in one statement on PostgreSQL: a request racing another with the
    same instanceID stops there (the unique key waits for the other transaction), before it
    has stored any bytes. The files are stored next, then the attachment rows that refer to
    them. With a ``guard``, None when it does not hold (nothing written)."""
    assert instance.instance_id is not None
    arriving = [name for name in parts.expected if name in files]
    app_user_id = envelope.actor.app_user.id if envelope.actor.app_user else None
    values: dict[str, Any] = dict(
        submission={"form_id": form.id, "draft": envelope.draft,
                    "instance_id": instance.instance_id,
                    "submitter_user_id": envelope.actor.user_id,
                    "submitter_app_user_id": app_user_id,
                    "device_id": _clip(envelope.device_id, 255)},
        definition={**_def_values(form, form_def, instance, xml, xml_sha256, envelope),
                    "attachments_expected": len(parts.expected),
                    "attachments_present": len(arriving)},
        rows=parts.rows,
        audit=_audit_event(envelope, "submission.create", form, form_def, None,
                           instance.instance_id))
    if guard is None:
        ids = queries.ingest.insert_new(db, **values)
    else:
        ids = queries.ingest.insert_new_postgresql(db, **values, guard=guard)
        if ids is None:
            return None
    submission_id, def_id = ids
    blobs = _store_files(db, store, arriving, files, max_file_bytes)
    queries.ingest.insert_attachments(db, [
        {"submission_def_id": def_id, "name": name, "blob_id": blobs.get(name),
         "updated_at": utcnow() if name in blobs else None} for name in parts.expected])
    ref = StoredRef(submission_id, instance.instance_id)
    return IngestResult(ref, ref, True, len(blobs))


def _edit(db: Session, store: BlobStore, form: FormRef, form_def: VersionRef,
          instance: Instance, xml: bytes, xml_sha256: str, schema: FormSchema,
          files: Mapping[str, IncomingFile], envelope: Envelope,
          max_file_bytes: int | None) -> IngestResult:
    """A new version of the submission whose current version it deprecates."""
    assert instance.instance_id is not None and instance.deprecated_id is not None
    previous = queries.submissions.get_def_by_instance_id(db, form.id, envelope.draft,
                                                          instance.deprecated_id)
    if previous is None:
        raise Problems.not_found()
    submission = queries.submissions.get(db, previous.submission_id)
    if submission is None or submission.deleted_at is not None:
        raise Problems.submission_deleted()
    if not previous.current:
        raise Problems.not_current_version()
    queries.submissions.retire_current(db, submission.id)
    submission.review_state = "edited"
    submission.updated_at = utcnow()
    definition = queries.submissions.insert_def(db, SubmissionDef(
        **_def_values(form, form_def, instance, xml, xml_sha256, envelope),
        submission_id=submission.id))
    queries.submissions.insert_attachments(db, definition.id,
                                           referenced_files(instance, schema))
    _carry_attachments(db, previous, definition)
    added = _attach(db, store, definition, files, max_file_bytes)
    if not instance.encrypted:
        queries.ingest.insert_rows(db, [{**row, "submission_def_id": definition.id}
                                        for row in _rows(form, instance, schema)])
    queries.audit.insert(db, _audit_event(envelope, "submission.update", form, form_def,
                                          submission.id, instance.instance_id))
    return IngestResult(StoredRef(submission.id, submission.instance_id),
                        StoredRef(definition.id, definition.instance_id), True, added)


def _def_values(form: FormRef, form_def: VersionRef, instance: Instance, xml: bytes,
                xml_sha256: str, envelope: Envelope) -> dict[str, Any]:
    return {
        "form_id": form.id, "draft": envelope.draft, "form_def_id": form_def.id,
        "instance_id": instance.instance_id, "deprecated_id": instance.deprecated_id,
        "instance_name": _clip(instance.instance_name, 1000), "xml": xml.decode("utf-8"),
        "xml_sha256": xml_sha256, "encrypted": instance.encrypted,
        "submitter_user_id": envelope.actor.user_id,
        "submitter_app_user_id": envelope.actor.app_user.id if envelope.actor.app_user
        else None,
        "device_id": _clip(envelope.device_id, 255),
        "user_agent": _clip(envelope.user_agent, 512),
    }


def _audit_event(envelope: Envelope, action: str, form: FormRef, form_def: VersionRef,
                 submission_id: int | None, instance_id: str) -> dict[str, Any]:
    """``submission_id`` is None when the statement that writes the event fills it in."""
    return audit.event(envelope.actor, action, project_id=form.project_id,
                       target=("submission", submission_id),
                       details={"instanceId": instance_id, "formId": form.xml_form_id,
                                "version": form_def.version, "deviceId": envelope.device_id,
                                "draft": envelope.draft})


# -- steps ----------------------------------------------------------------------------------

_SCHEMAS: dict[tuple[int, str], FormSchema] = {}
_SCHEMA_CACHE_SIZE = 256


def schema_of(db: Session, form_def: VersionRef) -> FormSchema:
    """The version's parsed schema, kept per process: a version's schema never changes (the
    key includes its XForm's hash), and reading and rebuilding a large form's schema costs
    milliseconds per submission."""
    key = (form_def.id, form_def.xml_sha256)
    schema = _SCHEMAS.get(key)
    if schema is None:
        schema = FormSchema.from_json(queries.ingest.version_schema(db, form_def.id))
        bounded_put(_SCHEMAS, key, schema, _SCHEMA_CACHE_SIZE)
    return schema


def _parse(xml: bytes) -> Instance:
    """The XML is kept as text and flattened from the parsed tree, so both must read the
    same: UTF-8 only (what Collect and Enketo send); another declared encoding only when
    the bytes are ASCII."""
    try:
        xml.decode("utf-8")
        instance = parse_instance(xml)
    except UnicodeDecodeError:
        raise _not_utf8() from None
    except InstanceInvalid as invalid:
        raise Problems.submission_unparseable(reason=invalid.message,
                                              issue=invalid.code) from None
    declared = (instance.root.getroottree().docinfo.encoding or "UTF-8").upper()
    if declared not in ("UTF-8", "UTF8") and not xml.isascii():
        raise _not_utf8()
    return instance


def _not_utf8() -> Problem:
    return Problems.submission_unparseable(reason="it is not UTF-8", issue="instance.not_utf8")


def _form_def(found: Target, instance: Instance, draft: bool) -> VersionRef:
    version = found.version
    if draft:
        if version is None or version.version != instance.version:
            raise Problems.version_unknown(version=instance.version)
        return version
    if found.form.state == "closed":
        raise Problems.not_accepting()
    if version is None:
        raise Problems.version_unknown(version=instance.version)
    return version


def _check_derivable(instance: Instance) -> None:
    """Without an instanceID, a submission is known by its XML's hash; an encrypted one
    cannot be (it could never be decrypted)."""
    if instance.encrypted:
        raise Problems.submission_unparseable(
            reason="an encrypted submission must carry meta/instanceID",
            issue="instance.encrypted_without_id")


def _resend(db: Session, store: BlobStore, form: FormRef, existing: SubmissionDef,
            xml_sha256: str, files: Mapping[str, IncomingFile], envelope: Envelope,
            max_file_bytes: int | None) -> IngestResult:
    submission = queries.submissions.get(db, existing.submission_id)
    assert submission is not None
    if submission.deleted_at is not None:
        _record_conflict(db, form, submission, envelope, "deleted")
        raise Problems.submission_deleted()
    if existing.xml_sha256 != xml_sha256:
        _record_conflict(db, form, submission, envelope, "different_xml")
        raise Problems.xml_conflict()
    added = _attach(db, store, existing, files, max_file_bytes)
    # A resend that brings files completes the submission; one that brings nothing new is
    # a retry (Collect lost the first answer): both are recorded, for flaky-link forensics.
    audit.record(db, envelope.actor,
                 "submission.attachment.update" if added else "submission.resend",
                 project_id=form.project_id, target=("submission", submission.id),
                 details={"instanceId": existing.instance_id, "added": added,
                          "deviceId": envelope.device_id})
    return IngestResult(StoredRef(submission.id, submission.instance_id),
                        StoredRef(existing.id, existing.instance_id), False, added)


def _record_conflict(db: Session, form: FormRef, submission: Submission, envelope: Envelope,
                     reason: str) -> None:
    """Conflicts are audited even though the request fails: committed on their own."""
    audit.record(db, envelope.actor, "submission.conflict", project_id=form.project_id,
                 target=("submission", submission.id),
                 details={"reason": reason, "deviceId": envelope.device_id})
    db.commit()


def _attach(db: Session, store: BlobStore, definition: SubmissionDef,
            files: Mapping[str, IncomingFile], max_file_bytes: int | None) -> int:
    """Store the files this version expects and still lacks; others are ignored."""
    added = 0
    expected = queries.submissions.attachments(db, definition.id)
    for attachment, blob in expected:
        incoming = files.get(attachment.name)
        if blob is not None or incoming is None:
            continue
        stored = store_blob(db, store, incoming.stream, content_type=incoming.content_type,
                            max_bytes=max_file_bytes)
        attachment.blob_id = stored.id
        attachment.updated_at = utcnow()
        added += 1
    if added:
        definition.attachments_present += added
    definition.attachments_expected = len(expected)
    db.flush()
    return added


def _store_files(db: Session, store: BlobStore, names: list[str],
                 files: Mapping[str, IncomingFile], max_file_bytes: int | None
                 ) -> dict[str, int]:
    """Store these files of the request: name → blob id."""
    return {name: store_blob(db, store, files[name].stream,
                             content_type=files[name].content_type,
                             max_bytes=max_file_bytes).id for name in names}


def _carry_attachments(db: Session, previous: SubmissionDef, definition: SubmissionDef) -> None:
    """An edit keeps the files it still refers to (Collect doesn't resend them)."""
    earlier = {a.name: a.blob_id for a, _ in queries.submissions.attachments(db, previous.id)
               if a.blob_id is not None}
    for attachment, _ in queries.submissions.attachments(db, definition.id):
        if attachment.name in earlier:
            attachment.blob_id = earlier[attachment.name]
            definition.attachments_present += 1
    db.flush()


def _rows(form: FormRef, instance: Instance, schema: FormSchema) -> list[dict]:
    """The flattened rows, without the version they belong to (not stored yet)."""
    try:
        rows = flatten(instance, schema)
    except InstanceInvalid as invalid:
        raise Problems.submission_unparseable(reason=invalid.message,
                                              issue=invalid.code) from None
    return [{
        "form_id": form.id,
        "table_path": row.table if row.table is not None else ROOT_TABLE,
        "row_key": row.key, "parent_key": row.parent_key, "position": row.position,
        "data": row.values, "extra": row.extra or None,
    } for row in rows]


def _clip(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else value
