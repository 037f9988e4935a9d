"""Health and the audit log for administrators."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from server import queries, web
from server.api.schemas import AuditArgs, AuditEventSchema, HealthSchema
from server.auth import roles
from server.auth.access import require_site
from server.storage import BlobStoreError

blp = Blueprint("system", __name__, url_prefix="/v1", description="Health and audit")


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema)
    def get(self):
        """Is the service able to accept data? 503 when the database or blob store is down."""
        report = {"database": "ok", "blob_store": "ok"}
        try:
            web.db().execute(text("SELECT 1"))
        except SQLAlchemyError:
            report["database"] = "unavailable"
        try:
            web.services().blob_store.check()
        except BlobStoreError:
            report["blob_store"] = "unavailable"
        healthy = all(v == "ok" for v in report.values())
        report["status"] = "ok" if healthy else "unavailable"
        return report, 200 if healthy else 503, {} if healthy else {"Retry-After": "10"}


@blp.route("/audits")
class Audits(MethodView):
    @blp.arguments(AuditArgs, location="query")
    @blp.response(200, AuditEventSchema(many=True))
    def get(self, args):
        """The whole audit log, newest first (site administrators)."""
        require_site(web.actor(), roles.SITE_AUDIT_READ)
        return queries.audit.list_(web.db(), **args)
