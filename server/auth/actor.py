"""The caller of a request, as services see it."""

from __future__ import annotations

from dataclasses import dataclass

from server.models import AppUser, AuthToken, User


@dataclass(frozen=True)
class Actor:
    user: User | None = None
    app_user: AppUser | None = None
    token: AuthToken | None = None

    @property
    def authenticated(self) -> bool:
        return self.user is not None or self.app_user is not None

    @property
    def is_admin(self) -> bool:
        return self.user is not None and self.user.is_admin

    @property
    def user_id(self) -> int | None:
        return self.user.id if self.user else None


ANONYMOUS = Actor()
SYSTEM = Actor()  # the CLI and background jobs act as nobody in particular
