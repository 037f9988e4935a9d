"""Request-scoped access to the database session, the caller and the app's services.

The session opened here is committed once, at the end of a successful request
(``server.app``), or rolled back.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import time
from dataclasses import dataclass

from flask import Flask, current_app, g, request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from server.auth.actor import ANONYMOUS, Actor
from server.auth.passwords import Passwords
from server.errors import Problems
from server.logs import log, redact_path
from server.services import accounts
from server.settings import Settings
from server.storage import BlobStore

# Endpoints anyone may call; every other endpoint requires authentication up front.
PUBLIC_ENDPOINTS = {"sessions.Sessions", "system.Health", "api-docs.openapi_json",
                    "exports.ExportByToken"}
# Blueprints whose routes authenticate themselves (app-user keys in the URL, for Collect).
SELF_AUTHENTICATING_BLUEPRINTS: set[str] = set()


@dataclass
class Services:
    """Everything a request needs beyond itself, built once by ``create_app``."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blob_store: BlobStore
    passwords: Passwords


def services(app: Flask | None = None) -> Services:
    return (app or current_app).extensions["dodoso"]


def settings() -> Settings:
    return services().settings


def db() -> Session:
    if "db" not in g:
        g.db = services().sessions()
    return g.db


def is_secure_request() -> bool:
    return request.is_secure or settings().allow_insecure_http


def actor() -> Actor:
    """The caller, from ``Authorization: Bearer`` or ``Basic`` (HTTPS only); anonymous if none."""
    if "actor" not in g:
        g.actor = _authenticate()
    return g.actor


def _authenticate() -> Actor:
    header = request.headers.get("Authorization", "")
    if not header:
        return ANONYMOUS
    scheme, _, credentials = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return accounts.authenticate_bearer(db(), credentials.strip())
    if scheme == "basic":
        if not is_secure_request():
            raise Problems.https_only()
        email, password = _decode_basic(credentials.strip())
        user = accounts.verify_credentials(db(), settings(), services().passwords,
                                           email=email, password=password)
        return Actor(user=user)
    raise Problems.unauthenticated()


def _decode_basic(credentials: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Problems.unauthenticated() from None
    email, sep, password = decoded.partition(":")
    if not sep or not email:
        raise Problems.unauthenticated()
    return email, password


# -- the request boundary: its id, the headers every answer carries, its log line -----------

REQUEST_ID_HEADER = "X-Request-Id"

DEFAULT_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
)
"""Added to every answer that does not set them itself."""


def request_id_for(incoming: str | None) -> str:
    """The caller's ``X-Request-Id`` when it is a sane one (a proxy's, to follow a request
    across logs), else a new one."""
    if incoming and 8 <= len(incoming) <= 64 and incoming.isascii() and \
            incoming.replace("-", "").isalnum():
        return incoming
    return secrets.token_hex(16)


def log_request(method: str, path: str, status: int, started: float,
                user_id: int | None) -> None:
    """One line per request (at INFO), with the path's keys and tokens redacted."""
    if log.is_enabled_for(logging.INFO):
        log.info("request", method=method, path=redact_path(path), status=status,
                 ms=round((time.perf_counter() - started) * 1000, 1), user=user_id)
