"""What the integration tests do over HTTP again and again, through Flask's test client: put
a form up (an XLSForm written as a markdown table), post a submission to Central's REST API,
and send one the way ODK Collect does. Each helper asserts the status it expects, so a
test's own assertions are about what it checks."""

from __future__ import annotations

import io

from flask.testing import FlaskClient

from server.models import Project
from tests.support.xlsx import XLSX, md_to_xlsx

OR = {"X-OpenRosa-Version": "1.0"}
"""The header Collect sends with every OpenRosa request."""
XML = "application/xml"


def _forms_url(project: Project, xml_form_id: str | None = None) -> str:
    base = f"/v1/projects/{project.id}/forms"
    return f"{base}/{xml_form_id}" if xml_form_id else base


def upload_form(client: FlaskClient, project: Project, headers: dict[str, str], md: str, *,
                publish: bool = True) -> dict:
    """A new form from an XLSForm, published unless ``publish`` is false; warnings ignored."""
    query = "publish=true&ignoreWarnings=true" if publish else "ignoreWarnings=true"
    r = client.post(f"{_forms_url(project)}?{query}", data=md_to_xlsx(md), content_type=XLSX,
                    headers=headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def create_draft(client: FlaskClient, project: Project, headers: dict[str, str],
                 xml_form_id: str, md: str | None = None) -> dict:
    """A draft of a form: from a new XLSForm, or (``md`` None) a copy of the published one."""
    url = f"{_forms_url(project, xml_form_id)}/draft"
    if md is None:
        r = client.post(url, headers=headers)
    else:
        r = client.post(f"{url}?ignoreWarnings=true", data=md_to_xlsx(md), content_type=XLSX,
                        headers=headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def publish_draft(client: FlaskClient, project: Project, headers: dict[str, str],
                  xml_form_id: str, *, version: str | None = None) -> dict:
    query = f"?version={version}" if version is not None else ""
    r = client.post(f"{_forms_url(project, xml_form_id)}/draft/publish{query}", headers=headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def publish_version(client: FlaskClient, project: Project, headers: dict[str, str],
                    xml_form_id: str, md: str) -> dict:
    """A form's next version: its XLSForm uploaded as the draft, then published."""
    create_draft(client, project, headers, xml_form_id, md)
    return publish_draft(client, project, headers, xml_form_id)


def submit_xml(client: FlaskClient, url: str, headers: dict[str, str], xml: bytes) -> dict:
    """An instance posted as raw XML to a form's REST ``…/submissions`` URL (a query string,
    such as ``?deviceID=…``, may follow it); answers the submission."""
    r = client.post(url, data=xml, content_type=XML, headers=headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def openrosa_submit(client: FlaskClient, url: str, xml: bytes,
                    files: dict[str, bytes] | None = None):
    """Collect's multipart POST of an instance and its attachments to an OpenRosa
    ``…/submission`` URL (an app user's ``/v1/key/…`` or a draft's ``/v1/test/…``)."""
    data = {"xml_submission_file": (io.BytesIO(xml), "submission.xml", "text/xml")}
    for name, content in (files or {}).items():
        data[name] = (io.BytesIO(content), name, "image/jpeg")
    r = client.post(url, data=data, content_type="multipart/form-data", headers=OR)
    assert r.status_code == 201, r.data
    return r
