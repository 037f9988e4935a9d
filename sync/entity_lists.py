"""Entity lists on the OpenRosa surface.

As in Central, a form attachment named ``<dataset>.csv`` (a data file, ``jr://file-csv/`` or
``jr://file/``) that has no file uploaded is backed by the project's dataset of that name:
the manifest lists it with the MD5 of the CSV Collect would download now, and the media
route serves that CSV. An uploaded file always wins over the dataset. The dataset is caught
up with its submissions (``sync_entities``) first, so a tablet always gets every entity the
server has received.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flask import Request, Response
from sqlalchemy.orm import Session

from server.models import Blob, FormAttachment
from server.queries import entities as q
from server.services import entities as svc
from server.services.entities import EntityListCsv

CSV_SUFFIX = ".csv"


def _dataset_name(attachment: FormAttachment) -> str | None:
    if (attachment.blob_id is None and attachment.kind in q.ENTITY_LIST_KINDS
            and attachment.name.endswith(CSV_SUFFIX) and len(attachment.name) > len(CSV_SUFFIX)):
        return attachment.name[:-len(CSV_SUFFIX)]
    return None


def linked_lists(db: Session, project_id: int,
                 attachments: Sequence[tuple[FormAttachment, Blob | None]]
                 ) -> dict[str, EntityListCsv]:
    """Attachment name → its entity list, for the attachments a dataset backs."""
    wanted = {n: a.name for a, b in attachments
              if b is None and (n := _dataset_name(a)) is not None}
    if not wanted:
        return {}
    svc.sync_entities(db, project_id, wanted)
    found = {}
    for name, attachment_name in wanted.items():
        dataset = q.get_dataset(db, project_id, name)
        if dataset is not None:
            found[attachment_name] = svc.entity_list_csv(db, dataset)
    return found


def linked_list(db: Session, project_id: int,
                attachment: FormAttachment | None) -> EntityListCsv | None:
    """The entity list behind one attachment, if a dataset backs it."""
    if attachment is None:
        return None
    return linked_lists(db, project_id, [(attachment, None)]).get(attachment.name)


def csv_response(listed: EntityListCsv, request: Request,
                 headers: Mapping[str, str]) -> Response:
    """The CSV with a strong ETag (its MD5, as the manifest's hash): 304 when unchanged."""
    response = Response(listed.data, mimetype=svc.CSV_CONTENT_TYPE)
    response.headers.update(headers)
    response.set_etag(listed.md5)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = "attachment"
    return response.make_conditional(request, accept_ranges=True,
                                     complete_length=len(listed.data))
