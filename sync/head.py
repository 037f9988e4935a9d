"""Collect's ``HEAD …/submission``, answered before Flask sees it.

Collect sends a HEAD before every upload: half of all sync requests. For an app-user key
this process verified in the last few seconds (``HEAD_TRUST_SECONDS``), the answer is
known without the database and without any of Flask's request machinery: 204 with the
OpenRosa headers (``X-OpenRosa-Accept-Content-Length`` is read only from it) and the
headers every dodoso answer carries. That is what ``sync.routes.key_submission`` answers
for such a key too; this lane only skips the work around it. Every other request, and
every HEAD it cannot answer with certainty (an unknown or stale key, another project, a
missing ``X-OpenRosa-Version``, an unusual path), goes to Flask unchanged.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from server import web
from server.logs import bind_request_id
from server.services.app_users import recall_trusted
from sync.openrosa import OPENROSA_VERSION, openrosa_headers

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Flask's own rule (``/v1/key/<token>/projects/<int:project_id>/submission``), narrowed to
# what it can only ever mean: a token without a slash and a plain decimal project id.
_KEY_SUBMISSION = re.compile(r"/v1/key/([^/]+)/projects/([1-9][0-9]{0,17})/submission")


class SubmissionHead:
    """WSGI middleware in front of the Flask app."""

    def __init__(self, wsgi_app: WsgiApp, *, accept_content_length: int) -> None:
        self.wsgi_app = wsgi_app
        self.accept_content_length = accept_content_length

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "HEAD":
            started = time.perf_counter()
            match = _KEY_SUBMISSION.fullmatch(environ.get("PATH_INFO", ""))
            if (match is not None and environ.get("HTTP_X_OPENROSA_VERSION", "").strip()
                    == OPENROSA_VERSION):
                recalled = recall_trusted(match[1])
                if recalled is not None and recalled.project_id == int(match[2]):
                    return self._no_content(environ, start_response, started)
        return self.wsgi_app(environ, start_response)

    def _no_content(self, environ: dict[str, Any], start_response: Callable[..., Any],
                    started: float) -> Iterable[bytes]:
        request_id = web.request_id_for(environ.get("HTTP_X_REQUEST_ID"))
        headers = [*openrosa_headers(self.accept_content_length).items(),
                   (web.REQUEST_ID_HEADER, request_id), *web.DEFAULT_HEADERS]
        start_response("204 NO CONTENT", headers)
        bind_request_id(request_id)
        try:
            web.log_request("HEAD", environ.get("PATH_INFO", ""), 204, started, None)
        finally:
            bind_request_id(None)
        return []
