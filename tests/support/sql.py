"""Counting the statements a request runs, for tests that pin a page to a fixed number of
queries however long it is."""

from __future__ import annotations

from sqlalchemy import Engine, event


class QueryCounter:
    """The SELECT statements ``engine`` runs inside the ``with`` block, in ``statements``."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.statements = engine, []

    def __enter__(self) -> QueryCounter:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.statements.append(statement)
