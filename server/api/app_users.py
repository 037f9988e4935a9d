"""App users: ``/v1/projects/{id}/app-users`` (Central's field keys)."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from server import queries, web
from server.api.schemas import (
    AppUserCreateSchema,
    AppUserListArgs,
    AppUserQrSchema,
    AppUserSchema,
    NewAppUserSchema,
    SuccessSchema,
)
from server.auth import roles
from server.auth.access import load_project
from server.errors import Problems
from server.models import AppUser, Project
from server.services import app_users as svc
from server.services import collect_setup

blp = Blueprint("app_users", __name__, url_prefix="/v1/projects/<int:project_id>/app-users",
                description="Collect device credentials")


@blp.route("")
class AppUsers(MethodView):
    @blp.arguments(AppUserListArgs, location="query")
    @blp.response(200, AppUserSchema(many=True))
    def get(self, args, project_id):
        project = load_project(web.db(), web.actor(), project_id, roles.APP_USER_LIST)
        return queries.app_users.list_(web.db(), project.id,
                                       include_revoked=args["include_revoked"])

    @blp.arguments(AppUserCreateSchema)
    @blp.response(200, NewAppUserSchema)
    def post(self, body, project_id):
        """Create an app user. Its token is in this response only: set up Collect now."""
        actor = web.actor()
        project = load_project(web.db(), actor, project_id, roles.APP_USER_CREATE)
        return svc.create_app_user(web.db(), actor, project, display_name=body["display_name"])


def _app_user(project_id: int, app_user_id: int, verb: str) -> tuple[Project, AppUser]:
    """The project (checked for ``verb``) and one of its app users, or 404."""
    project = load_project(web.db(), web.actor(), project_id, verb)
    app_user = queries.app_users.get(web.db(), project.id, app_user_id)
    if app_user is None:
        raise Problems.not_found()
    return project, app_user


@blp.route("/<int:app_user_id>")
class AppUserById(MethodView):
    @blp.response(200, SuccessSchema)
    def delete(self, project_id, app_user_id):
        """Revoke an app user: its devices can no longer sync."""
        _, app_user = _app_user(project_id, app_user_id, roles.APP_USER_DELETE)
        svc.revoke_app_user(web.db(), web.actor(), app_user)
        return {"success": True}


@blp.route("/<int:app_user_id>/token")
class AppUserToken(MethodView):
    @blp.response(200, NewAppUserSchema)
    def post(self, project_id, app_user_id):
        """Issue a new token (for a lost QR code); the old one stops working at once."""
        _, app_user = _app_user(project_id, app_user_id, roles.APP_USER_CREATE)
        return svc.rotate_token(web.db(), web.actor(), app_user)


@blp.route("/<int:app_user_id>/qr")
class AppUserQr(MethodView):
    @blp.arguments(AppUserQrSchema)
    def post(self, body, project_id, app_user_id):
        """The QR code that sets up ODK Collect for this app user, as PNG or SVG. Only the
        token's hash is stored, so the token (from creation or rotation) is sent here."""
        project, app_user = _app_user(project_id, app_user_id, roles.APP_USER_CREATE)
        if app_user.revoked_at is not None:
            raise Problems.not_found()
        if not svc.holds_token(app_user, body["token"]):
            raise Problems.invalid_parameter(field="token", reason="not this app user's token")
        image = collect_setup.app_user_qr(web.settings(), project, body["token"],
                                          fmt=body["format"], managed=body["managed"])
        return Response(image, mimetype=collect_setup.QR_FORMATS[body["format"]])
