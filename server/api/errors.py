"""Turning every failure into a Problem, and a Problem into a JSON response.

Translation happens here, at the boundary, never in handlers. No response carries a stack
trace, SQL or a filesystem path.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, current_app, g, jsonify
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from server.errors import Problem, Problems
from server.logs import current_request_id, log
from server.storage import BlobStoreUnavailable, BlobTooLarge

Renderer = Callable[[Problem], Response]


def render_json(problem: Problem) -> Response:
    body = problem.to_json()
    errors = problem.details.get("errors") if problem.code == Problems.invalid_entity.code else None
    if errors is not None:
        body = {"code": problem.code, "message": problem.message, "errors": errors}
    response = jsonify(body)
    response.status_code = problem.status
    response.headers.update(problem.headers)
    return response


def render(problem: Problem) -> Response:
    """Render with the surface's renderer: JSON unless the route chose another
    (the OpenRosa routes set ``g.problem_renderer``)."""
    renderer: Renderer = g.get("problem_renderer", render_json)
    return renderer(problem)


def from_http_exception(error: HTTPException) -> Problem:
    data = getattr(error, "data", None) or {}
    code = error.code or 500
    headers = {k: v for k, v in error.get_headers() if k.lower() not in ("content-type",)}
    if code == 422:
        return Problems.invalid_entity(errors=data.get("messages") or data.get("errors") or {})
    if code == 400 and "json" in (data.get("messages") or {}):
        return Problems.unparseable(format="JSON")
    simple = {
        400: Problems.bad_request,
        401: Problems.auth_required,
        404: Problems.not_found,
        405: Problems.method_not_allowed,
        415: Problems.unsupported_media_type,
    }
    if code in simple:
        problem = simple[code]()
    elif code == 413:
        problem = too_large()
    else:
        problem = Problem(float(code), error.name)
    problem.headers.update(headers)
    return problem


def internal_error(error: BaseException) -> Problem:
    request_id = current_request_id() or "-"
    log.error("unhandled_exception", exc_info=error)
    return Problems.internal(request_id=request_id)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(Problem, render)
    app.register_error_handler(HTTPException, lambda e: render(from_http_exception(e)))
    app.register_error_handler(BlobStoreUnavailable,
                               lambda e: _logged(Problems.storage_unavailable(), e))
    app.register_error_handler(BlobTooLarge, lambda e: render(too_large()))
    for exc in (OperationalError, InterfaceError, PoolTimeout):
        app.register_error_handler(exc, lambda e: _logged(Problems.database_unavailable(), e))
    app.register_error_handler(IntegrityError, lambda e: _logged(Problems.write_conflict(), e))
    app.register_error_handler(Exception, lambda e: render(internal_error(e)))


def _logged(problem: Problem, error: BaseException) -> Response:
    log.warning("dependency_problem", code=problem.code, error=type(error).__name__)
    return render(problem)


def too_large() -> Problem:
    return Problems.too_large(limit=current_app.extensions["dodoso"].settings.max_submission_bytes)
