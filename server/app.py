"""``create_app``: the one place that wires settings, database, blob store and routes."""

from __future__ import annotations

import time
from types import FunctionType
from typing import Any

from flask import Flask, Response, g, request
from flask.sessions import SessionInterface
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.middleware.proxy_fix import ProxyFix

from server import web
from server.api import init_api
from server.api.errors import register_error_handlers
from server.auth.access import require_authenticated
from server.auth.passwords import Passwords
from server.db import check_sqlite_durability, create_db_engine, make_session_factory
from server.logs import bind_request_id, configure_logging, log
from server.migrate import check_schema_current
from server.settings import Settings
from server.storage import BlobStore, open_blob_store
from sync import routes as openrosa_routes
from sync.head import SubmissionHead


class DodosoFlask(Flask):
    _synchronous: dict[Any, Any]

    def ensure_sync(self, func):  # type: ignore[no-untyped-def]
        """Flask asks ``inspect`` whether each hook and view is a coroutine, on every
        request: remember the answer for plain functions (bound methods, made anew per
        call, are asked each time)."""
        if type(func) is not FunctionType:
            return super().ensure_sync(func)
        try:
            return self._synchronous[func]
        except AttributeError:
            self._synchronous = {}
        except KeyError:
            pass
        sync = self._synchronous[func] = super().ensure_sync(func)
        return sync

    def dispatch_request(self):  # type: ignore[override]
        """Commit once, when the handler succeeded, so that a failing commit is answered
        like any other error (503 for a database outage) and nothing is acknowledged early."""
        response = self.make_response(super().dispatch_request())
        session = g.get("db")
        if session is not None:
            if response.status_code < 400:
                session.commit()
            else:
                session.rollback()
        return response


def create_app(settings: Settings | None = None, *, engine: Engine | None = None,
               blob_store: BlobStore | None = None) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(settings)
    engine = engine or create_db_engine(settings)
    check_sqlite_durability(engine)
    _check_schema(engine)

    app = DodosoFlask("dodoso", static_folder=None)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_submission_bytes,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.session_interface = _NoCookieSession()
    if settings.trust_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)  # type: ignore[method-assign]

    app.extensions["dodoso"] = web.Services(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        blob_store=blob_store or open_blob_store(settings),
        passwords=Passwords(settings),
    )
    register_error_handlers(app)
    init_api(app)
    app.register_blueprint(openrosa_routes.bp)
    app.wsgi_app = SubmissionHead(  # type: ignore[method-assign]
        app.wsgi_app, accept_content_length=settings.max_submission_bytes)
    app.before_request(_begin)
    app.before_request(_require_authentication)
    app.after_request(_finish)
    app.teardown_request(_close_session)
    return app


def _check_schema(engine: Engine) -> None:
    """Refuse to serve an old schema. An unreachable database is not fatal: the server
    starts, answers 503 and reports it in /v1/health until the database is back."""
    try:
        check_schema_current(engine)
    except (OperationalError, InterfaceError) as exc:
        log.warning("database_unreachable_at_start", error=type(exc).__name__)


def _begin() -> None:
    g.request_id = web.request_id_for(request.headers.get(web.REQUEST_ID_HEADER))
    g.started = time.perf_counter()
    bind_request_id(g.request_id)


def _require_authentication() -> None:
    """Every endpoint needs a signed-in caller unless it is declared public (or, like the
    OpenRosa routes, authenticates by itself): checked before the body is even parsed."""
    endpoint = request.endpoint
    if endpoint is None or endpoint in web.PUBLIC_ENDPOINTS:
        return
    if endpoint.partition(".")[0] in web.SELF_AUTHENTICATING_BLUEPRINTS:
        return
    require_authenticated(web.actor())


_REQUEST_ID_KEY = web.REQUEST_ID_HEADER.lower()


def _finish(response: Response) -> Response:
    headers = response.headers
    # Werkzeug's Headers is a list: look the names up once, not once per header.
    present = {name.lower() for name, _ in headers.items()}
    if _REQUEST_ID_KEY in present:
        headers[web.REQUEST_ID_HEADER] = g.get("request_id", "")
    else:
        headers.add(web.REQUEST_ID_HEADER, g.get("request_id", ""))
    for name, value in web.DEFAULT_HEADERS:
        if name.lower() not in present:
            headers.add(name, value)
    actor = g.get("actor")
    web.log_request(request.method, request.path, response.status_code,
                    g.get("started", time.perf_counter()), actor.user_id if actor else None)
    return response


class _NoCookieSession(SessionInterface):
    """dodoso keeps nothing in Flask's signed-cookie session (sign-in is a token looked up
    in the database), so no request pays to open or save one."""

    def open_session(self, app: Flask, request: Any) -> Any:
        return self.make_null_session(app)

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        return None


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()
    bind_request_id(None)
