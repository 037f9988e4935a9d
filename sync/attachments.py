"""Adding one file to a submission version after the fact (the REST API's
``POST …/submissions/{instanceId}/attachments/{name}``), as Central does: only a name the
version expects, the bytes stored like any other submission file, the change audited."""

from __future__ import annotations

from typing import BinaryIO

from sqlalchemy.orm import Session

from server import queries
from server.auth.actor import Actor
from server.db import utcnow
from server.errors import Problems
from server.models import Form, SubmissionDef
from server.services import audit
from server.services.blobs import store_blob
from server.storage import BlobStore


def add_attachment(db: Session, store: BlobStore, actor: Actor, submission_def: SubmissionDef,
                   name: str, stream: BinaryIO, content_type: str | None,
                   max_bytes: int | None) -> None:
    """Store ``stream`` as the version's file ``name``, replacing any earlier upload of it.
    A name the version does not refer to is 404, before anything is stored."""
    found = queries.submissions.get_attachment(db, submission_def.id, name)
    if found is None:
        raise Problems.not_found()
    attachment, _ = found
    old_blob_id = attachment.blob_id
    blob = store_blob(db, store, stream, content_type=content_type, max_bytes=max_bytes)
    attachment.blob_id = blob.id
    attachment.updated_at = utcnow()
    if old_blob_id is None:
        submission_def.attachments_present += 1
    db.flush()
    form = db.get(Form, submission_def.form_id)
    audit.record(db, actor, "submission.attachment.update",
                 project_id=form.project_id if form is not None else None,
                 target=("submission", submission_def.submission_id),
                 details={"instanceId": submission_def.instance_id,
                          "submissionDefId": submission_def.id, "name": name,
                          "oldBlobId": old_blob_id, "newBlobId": blob.id})
