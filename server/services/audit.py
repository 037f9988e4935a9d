"""Recording writes in the audit log."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.orm import Session

from server import queries
from server.auth.actor import Actor
from server.logs import current_request_id

_SECRET_KEY = re.compile("password|token|secret|authorization|csrf", re.IGNORECASE)


def record(db: Session, actor: Actor, action: str, *, project_id: int | None = None,
           target: tuple[str, object] | None = None,
           details: dict[str, Any] | None = None) -> None:
    queries.audit.insert(db, event(actor, action, project_id=project_id, target=target,
                                   details=details))


def event(actor: Actor, action: str, *, project_id: int | None = None,
          target: tuple[str, object] | None = None,
          details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The audit row ``record`` writes, for a caller that writes it in its own statement."""
    target_type, target_id = target if target else (None, None)
    return {
        "actor_user_id": actor.user_id,
        "actor_app_user_id": actor.app_user.id if actor.app_user else None,
        "action": action,
        "project_id": project_id,
        "target_type": target_type,
        "target_id": None if target_id is None else str(target_id),
        "details": _redact(details) if details else None,
        "request_id": current_request_id(),
    }


def _redact(details: dict[str, Any]) -> dict[str, Any]:
    return {k: ("[redacted]" if _SECRET_KEY.search(k) else
                _redact(v) if isinstance(v, dict) else v)
            for k, v in details.items()}
