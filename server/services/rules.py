"""Input rules every entry point shares (API, CLI, jobs): the services enforce them."""

from __future__ import annotations

import re

from server.errors import Problems

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 320


def email(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL.match(value):
        raise Problems.invalid_parameter(field="email", reason="must be an email address")
    return value


def name(field: str, value: str) -> str:
    value = value.strip()
    if not 1 <= len(value) <= MAX_NAME_LENGTH:
        raise Problems.invalid_parameter(
            field=field, reason=f"must be 1 to {MAX_NAME_LENGTH} characters long")
    return value
