"""Bearer tokens: 384 bits of randomness, stored only as sha256."""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 48  # 64 URL-safe characters, as ODK Central's


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_token(value: str) -> bool:
    """Cheap shape check before touching the database."""
    return 20 <= len(value) <= 128 and all(c.isalnum() or c in "-_" for c in value)
