"""An acknowledged file stored with one byte too many (found by the soak: 1 submission in
7,201, the same one in two runs, since the harness's submissions are seeded).

Werkzeug (3.1.9) reads a multipart body in 64 KiB chunks. When a chunk ends exactly one
byte into the closing delimiter (``\\r\\n--<boundary>-``), it releases the delimiter's CR
as data: the last part of the body (a photo, the audit log, an ``.enc`` file, or the XML
itself when it comes last) gets a stray ``\\r``, and dodoso answers 201 for bytes the
tablet never sent (pallets/werkzeug#3285, open). For an encrypted form, the submission can
no longer be decrypted; for the XML, a later identical resend would be refused as different.
Any upload over 64 KiB hits it with a chance of about 1 in 65,536.
"""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from server import queries
from server.auth.actor import SYSTEM
from server.models import SubmissionDef
from server.services.forms import assign_app_user
from tests.integration.test_openrosa import SURVEY, instance
from tests.integration.test_openrosa_hostile import BOUNDARY, multipart, part, send, xml_part
from tests.support.xlsx import XLSX, md_to_xlsx

pytestmark = pytest.mark.postgres_only

CHUNK = 64 * 1024  # werkzeug's form parser buffer size


def test_multipart__a_chunk_ending_inside_the_closing_delimiter_changes_no_byte(
        client, make, db, app):
    project = make.project("Chunk edge")
    designer = make.auth(make.member(project, "designer"))
    r = client.post(f"/v1/projects/{project.id}/forms?publish=true&ignoreWarnings=true",
                    data=md_to_xlsx(SURVEY), content_type=XLSX, headers=designer)
    assert r.status_code == 200, r.get_json()
    app_user, token = make.app_user(project)
    assign_app_user(db, SYSTEM, queries.forms.get(db, project.id, "hh"), app_user.id)
    db.commit()

    head = xml_part(instance("uuid:chunk-edge", photo="id.jpg"))
    photo_head = part("id.jpg", b"", content_type="image/jpeg")[:-2]  # without its CRLF
    # The CR before "--<boundary>--" lands 1 + len("\r\n--<boundary>") bytes before a
    # chunk's end, i.e. the chunk ends right after "\r\n--<boundary>-".
    cr_at = 2 * CHUNK - len(b"\r\n--" + BOUNDARY.encode()) - 1
    photo = b"\xff\xd8" + bytes(range(256)) * 600
    photo = photo[: cr_at - len(head) - len(photo_head) - 2] + b"\xff\xd9"
    body = multipart(head, photo_head + photo + b"\r\n")
    assert body.index(b"\r\n--" + BOUNDARY.encode() + b"--") == cr_at

    r = send(client, f"/v1/key/{token}/projects/{project.id}", body)
    assert r.status_code == 201, r.data
    definition = db.scalar(select(SubmissionDef).where(
        SubmissionDef.instance_id == "uuid:chunk-edge"))
    stored = {a.name: b for a, b in queries.submissions.attachments(db, definition.id)}
    assert stored["id.jpg"].sha256 == hashlib.sha256(photo).hexdigest(), (
        f"stored {stored['id.jpg'].size} bytes, sent {len(photo)}")
