"""The bare baseline for ``bench.ingest``: the least a server can do to accept a submission.

    python -c 'from bench.ingest_baseline import create_table; create_table("postgresql://…")'
    gunicorn --worker-class gthread --workers 2 --threads 8 \\
        'bench.ingest_baseline:create_app("postgresql://…")'

One Flask route on dodoso's OpenRosa URL (``/v1/key/<token>/projects/<id>/submission``):
HEAD answers 204; POST takes the same multipart body Collect sends, parses the
``xml_submission_file`` part with a hardened lxml parser (no DTD, no entities, no network),
reads ``meta/instanceID`` and does one INSERT of (instance_id, xml) with psycopg 3, commits
and answers 201. Attachment parts are parsed by Werkzeug like any multipart body, then
dropped. No authentication, no form lookup, no audit, no flattening, no blob store: the
difference between this and dodoso is the price of all of those.
"""

from __future__ import annotations

import threading

import psycopg
from flask import Flask, Response, request
from lxml import etree

XML_SUBMISSION_FILE = "xml_submission_file"
OPENROSA_HEADERS = {"X-OpenRosa-Version": "1.0",
                    "X-OpenRosa-Accept-Content-Length": "100000000"}
TABLE_DDL = """CREATE TABLE IF NOT EXISTS baseline_submissions (
    id bigserial PRIMARY KEY,
    instance_id text NOT NULL UNIQUE,
    xml text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now())"""
INSERT = "INSERT INTO baseline_submissions (instance_id, xml) VALUES (%s, %s)"
SUCCESS = (b'<OpenRosaResponse xmlns="http://openrosa.org/http/response">'
           b'<message nature="submit_success">full submission upload was successful!'
           b"</message></OpenRosaResponse>")


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, dtd_validation=False,
                           load_dtd=False, huge_tree=False)


def _instance_id(xml: bytes) -> str | None:
    root = etree.fromstring(xml, _parser())
    if root.getroottree().docinfo.doctype:
        return None
    found = root.find("meta/instanceID")
    return found.text.strip() if found is not None and found.text else None


class _Connections:
    """One connection per server thread, opened on first use (after gunicorn forks)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.local = threading.local()

    def get(self) -> psycopg.Connection:
        conn = getattr(self.local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self.local.conn = psycopg.connect(self.url, application_name="baseline")
        return conn


def create_table(url: str) -> None:
    """Once, before the server starts: workers creating it at once would race."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(TABLE_DDL)


def create_app(database_url: str) -> Flask:
    connections = _Connections(database_url)
    app = Flask("ingest_baseline")
    app.config["MAX_CONTENT_LENGTH"] = 100_000_000

    @app.route("/v1/key/<token>/projects/<int:project_id>/submission",
               methods=["HEAD", "POST"])
    def submission(token: str, project_id: int) -> Response:
        if request.method == "HEAD":
            return Response(status=204, headers=OPENROSA_HEADERS)
        part = request.files.get(XML_SUBMISSION_FILE)
        if part is None:
            return Response(status=400, headers=OPENROSA_HEADERS)
        xml = part.stream.read()
        try:
            instance_id = _instance_id(xml)
        except etree.XMLSyntaxError:
            instance_id = None
        if instance_id is None:
            return Response(status=400, headers=OPENROSA_HEADERS)
        conn = connections.get()
        try:
            conn.execute(INSERT, (instance_id, xml.decode("utf-8")))
            conn.commit()
        except psycopg.errors.UniqueViolation:
            conn.rollback()
            return Response(status=409, headers=OPENROSA_HEADERS)
        except BaseException:
            conn.rollback()
            raise
        return Response(SUCCESS, status=201, content_type="text/xml; charset=utf-8",
                        headers=OPENROSA_HEADERS)

    return app
