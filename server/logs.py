"""structlog set-up: JSON in production, console in development, a request id per request.

Tokens travel in URLs (``/v1/key/<token>/…``): every logged path goes through ``redact_path``.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar

import structlog

from server.settings import Settings

_request_id: ContextVar[str | None] = ContextVar("dodoso_request_id", default=None)

_KEY_IN_PATH = re.compile(r"(/key/)[^/]+")
_TOKEN_IN_PATH = re.compile(r"(/sessions/|^/v1/exports/)(?!current\b)[^/?]+")
_SENSITIVE_QUERY = re.compile(r"((?:token|key|signature|sig)=)[^&]+", re.IGNORECASE)


def redact_path(path: str) -> str:
    path = _KEY_IN_PATH.sub(r"\1[redacted]", path)
    path = _TOKEN_IN_PATH.sub(r"\1[redacted]", path)
    return _SENSITIVE_QUERY.sub(r"\1[redacted]", path)


def current_request_id() -> str | None:
    return _request_id.get()


def bind_request_id(request_id: str | None) -> None:
    """Every log line until the next call carries ``request_id`` (``_add_request_id``)."""
    _request_id.set(request_id or None)


def _add_request_id(_logger: object, _method: str, event: dict) -> dict:
    request_id = _request_id.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def configure_logging(settings: Settings) -> None:
    level = logging.getLevelName(settings.log_level) if isinstance(settings.log_level, str) \
        else settings.log_level
    renderer = (structlog.processors.JSONRenderer() if settings.log_format == "json"
                else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_request_id,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Werkzeug's own request lines carry raw URLs (and so tokens): we log requests ourselves.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


log = structlog.get_logger("dodoso")
