"""Bearer tokens: 384 bits of randomness, stored only as sha256."""

from __future__ import annotations

import hashlib
import re
import secrets

TOKEN_BYTES = 48  # 64 URL-safe characters, as ODK Central's
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{20,128}")


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_token(value: str) -> bool:
    """Cheap shape check before touching the database."""
    return _TOKEN_SHAPE.fullmatch(value) is not None
