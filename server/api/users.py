"""Web users: ``/v1/users`` and site-wide role assignments ``/v1/assignments``."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from server import queries, web
from server.api.schemas import (
    PageArgs,
    PasswordChangeSchema,
    SuccessSchema,
    UserCreateSchema,
    UserSchema,
    UserUpdateSchema,
)
from server.auth import roles
from server.auth.access import require_authenticated, require_site
from server.auth.actor import Actor
from server.errors import Problems
from server.models import User
from server.services import accounts

blp = Blueprint("users", __name__, url_prefix="/v1", description="Web users")


def _self_or_admin(actor: Actor, user_id: int) -> User:
    require_authenticated(actor)
    if actor.user is None or (actor.user.id != user_id and not actor.is_admin):
        raise Problems.not_found() if actor.user is not None else Problems.forbidden()
    user = queries.users.get(web.db(), user_id)
    if user is None:
        raise Problems.not_found()
    return user


@blp.route("/users")
class Users(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, UserSchema(many=True))
    def get(self, page):
        """List users (site administrators)."""
        require_site(web.actor(), roles.USER_LIST)
        return queries.users.list_(web.db(), limit=page["limit"], offset=page["offset"])

    @blp.arguments(UserCreateSchema)
    @blp.response(200, UserSchema)
    def post(self, body):
        """Create a user (site administrators). Without a password the user cannot log in
        until one is set."""
        actor = web.actor()
        require_site(actor, roles.USER_CREATE)
        return accounts.create_user(web.db(), web.services().passwords, actor,
                                    email=body["email"], password=body.get("password"),
                                    display_name=body.get("display_name"))


@blp.route("/users/current")
class CurrentUser(MethodView):
    @blp.response(200, UserSchema)
    def get(self):
        """The signed-in user."""
        actor = web.actor()
        require_authenticated(actor)
        if actor.user is None:
            raise Problems.forbidden()
        return actor.user


@blp.route("/users/<int:user_id>")
class UserById(MethodView):
    @blp.response(200, UserSchema)
    def get(self, user_id):
        """One user: yourself, or anyone for site administrators."""
        return _self_or_admin(web.actor(), user_id)

    @blp.arguments(UserUpdateSchema)
    @blp.response(200, UserSchema)
    def patch(self, body, user_id):
        """Change a user's display name or email."""
        actor = web.actor()
        user = _self_or_admin(actor, user_id)
        return accounts.update_user(web.db(), actor, user, email=body.get("email"),
                                    display_name=body.get("display_name"))

    @blp.response(200, SuccessSchema)
    def delete(self, user_id):
        """Delete a user (site administrators); their sessions and tokens end."""
        actor = web.actor()
        require_site(actor, roles.USER_UPDATE)
        user = queries.users.get(web.db(), user_id)
        if user is None:
            raise Problems.not_found()
        accounts.delete_user(web.db(), actor, user)
        return {"success": True}


@blp.route("/users/<int:user_id>/password")
class UserPassword(MethodView):
    @blp.arguments(PasswordChangeSchema)
    @blp.response(200, SuccessSchema)
    def put(self, body, user_id):
        """Change a password. Your own needs the old one; every other session ends."""
        actor = web.actor()
        user = _self_or_admin(actor, user_id)
        own = actor.user is not None and actor.user.id == user.id
        if own and "old" not in body:
            raise Problems.invalid_parameter(field="old")
        accounts.set_password(web.db(), web.services().passwords, actor, user, body["new"],
                              old=body.get("old") if own else None,
                              keep_token_id=actor.token.id if own and actor.token else None)
        return {"success": True}


@blp.route("/assignments/admin")
class SiteAdmins(MethodView):
    @blp.response(200, UserSchema(many=True))
    def get(self):
        """The site administrators."""
        require_site(web.actor(), roles.USER_LIST)
        return queries.users.list_admins(web.db())


@blp.route("/assignments/admin/<int:user_id>")
class SiteAdminById(MethodView):
    @blp.response(200, SuccessSchema)
    def post(self, user_id):
        """Make a user a site administrator."""
        return self._set(user_id, True)

    @blp.response(200, SuccessSchema)
    def delete(self, user_id):
        """Remove a user's site administrator role (never the last one's)."""
        return self._set(user_id, False)

    @staticmethod
    def _set(user_id: int, is_admin: bool) -> dict:
        actor = web.actor()
        require_site(actor, roles.USER_UPDATE)
        user = queries.users.get(web.db(), user_id)
        if user is None:
            raise Problems.not_found()
        accounts.set_admin(web.db(), actor, user, is_admin)
        return {"success": True}
