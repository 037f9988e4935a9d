"""All SQL lives here: get_… (one or None), list_…, stream_…, count_…, insert_…/update_…."""

from server.queries import (
    app_users,
    audit,
    blobs,
    filters,
    forms,
    ingest,
    jobs,
    projects,
    submissions,
    tokens,
    users,
)

__all__ = ["app_users", "audit", "blobs", "filters", "forms", "ingest", "jobs", "projects",
           "submissions", "tokens", "users"]
