"""Log in and out: ``/v1/sessions`` (ODK Central's shape), plus personal API tokens."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from server import queries, web
from server.api.schemas import (
    ApiTokenCreateSchema,
    ApiTokenSchema,
    NewApiTokenSchema,
    SessionCreateSchema,
    SessionSchema,
    SuccessSchema,
)
from server.auth.access import require_authenticated
from server.errors import Problems
from server.services import accounts

blp = Blueprint("sessions", __name__, url_prefix="/v1", description="Log-in sessions and tokens")


@blp.route("/sessions")
class Sessions(MethodView):
    @blp.arguments(SessionCreateSchema)
    @blp.response(200, SessionSchema)
    def post(self, body):
        """Log in with email and password; returns a bearer token."""
        s = web.services()
        return accounts.log_in(web.db(), s.settings, s.passwords, email=body["email"],
                               password=body["password"])


@blp.route("/sessions/<token>")
class SessionByToken(MethodView):
    @blp.response(200, SuccessSchema)
    def delete(self, token):
        """Log out. ``current`` ends the session making the request."""
        actor = web.actor()
        require_authenticated(actor)
        if token == "current":
            if actor.token is None:
                raise Problems.not_found()
            accounts.end_token(web.db(), actor, actor.token)
        else:
            accounts.log_out(web.db(), actor, token)
        return {"success": True}


@blp.route("/users/current/tokens")
class ApiTokens(MethodView):
    @blp.response(200, ApiTokenSchema(many=True))
    def get(self):
        """List your long-lived API tokens (never their values)."""
        actor = web.actor()
        require_authenticated(actor)
        if actor.user is None:
            raise Problems.forbidden()
        return queries.tokens.list_api_tokens(web.db(), actor.user.id)

    @blp.arguments(ApiTokenCreateSchema)
    @blp.response(200, NewApiTokenSchema)
    def post(self, body):
        """Create an API token for scripts; its value is shown only in this response."""
        actor = web.actor()
        require_authenticated(actor)
        if actor.user is None:
            raise Problems.forbidden()
        return accounts.create_api_token(web.db(), actor, label=body["label"],
                                         expires_in_days=body["expires_in_days"])


@blp.route("/users/current/tokens/<int:token_id>")
class ApiTokenById(MethodView):
    @blp.response(200, SuccessSchema)
    def delete(self, token_id):
        """Revoke one of your API tokens."""
        actor = web.actor()
        require_authenticated(actor)
        record = actor.user and queries.tokens.get_api_token(web.db(), actor.user.id, token_id)
        if not record or record.revoked_at is not None:
            raise Problems.not_found()
        accounts.end_token(web.db(), actor, record)
        return {"success": True}
