"""The fault harness's short run (bench/faults): CI's PostgreSQL pass runs it.

Every test here is marked ``postgres_only`` and skipped when the suite targets SQLite: the
harness runs dodoso on PostgreSQL (a cluster of its own, or a scratch database behind a
proxy when no server binaries are installed; see bench/faults/harness.py).
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import TEST_DATABASE_URL_VAR


@pytest.fixture(autouse=True)
def _postgres_only(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("postgres_only") is None:
        return
    if not os.environ.get(TEST_DATABASE_URL_VAR, "").startswith("postgresql"):
        pytest.skip(f"PostgreSQL pass only (set {TEST_DATABASE_URL_VAR}=postgresql://…)")
