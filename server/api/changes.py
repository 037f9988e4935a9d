"""The change feed of a form (dodoso's own): ``GET
/v1/projects/{id}/forms/{xmlFormId}/changes?cursor=…&limit=…`` — the submissions created,
edited, reviewed, deleted or restored since the cursor, and the cursor to ask with next."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from server import web
from server.api.schemas import ApiSchema
from server.auth import roles
from server.auth.access import load_form
from server.services import changes

blp = Blueprint("changes", __name__,
                url_prefix="/v1/projects/<int:project_id>/forms/<xml_form_id>/changes",
                description="Change feed: what changed since a cursor")


class ChangesArgs(ApiSchema):
    cursor = fields.String(load_default=None, validate=validate.Length(min=1, max=200_000))
    limit = fields.Integer(load_default=changes.DEFAULT_LIMIT,
                           validate=validate.Range(min=1, max=changes.MAX_LIMIT))


class ChangeSchema(ApiSchema):
    instance_id = fields.String()
    kind = fields.String()
    review_state = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime(allow_none=True)
    deleted_at = fields.DateTime(allow_none=True)
    current_version = fields.Function(lambda c: {
        "instanceId": c.current_version["instanceId"],
        "createdAt": c.current_version["createdAt"].isoformat()})


class ChangePageSchema(ApiSchema):
    changes = fields.List(fields.Nested(ChangeSchema))
    cursor = fields.String()
    has_more = fields.Boolean()


@blp.route("")
class Changes(MethodView):
    @blp.arguments(ChangesArgs, location="query")
    @blp.response(200, ChangePageSchema)
    def get(self, args, project_id, xml_form_id):
        """Changes since ``cursor`` (everything without one), oldest first; ask again with
        the ``cursor`` returned, straight away while ``hasMore``, later otherwise."""
        form = load_form(web.db(), web.actor(), project_id, xml_form_id, roles.SUBMISSION_LIST)
        return changes.changes_since(web.db(), form, args["cursor"], args["limit"])
