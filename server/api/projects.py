"""Projects, project role assignments and the role catalogue."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from server import queries, web
from server.api.schemas import (
    AssignmentSchema,
    AuditArgs,
    AuditEventSchema,
    ProjectCreateSchema,
    ProjectSchema,
    ProjectUpdateSchema,
    RoleSchema,
    SuccessSchema,
)
from server.auth import roles
from server.auth.access import load_project, require_authenticated, require_site
from server.errors import Problems
from server.models.projects import PROJECT_ROLES
from server.services import projects as svc

blp = Blueprint("projects", __name__, url_prefix="/v1", description="Projects and roles")


def _role(role: str) -> str:
    if role not in PROJECT_ROLES:
        raise Problems.not_found()
    return role


@blp.route("/roles")
class Roles(MethodView):
    @blp.response(200, RoleSchema(many=True))
    def get(self):
        """The project roles and the verbs each grants."""
        require_authenticated(web.actor())
        return [{"system": r, "name": roles.ROLE_NAMES[r], "verbs": sorted(roles.ROLE_VERBS[r])}
                for r in PROJECT_ROLES]


@blp.route("/projects")
class Projects(MethodView):
    @blp.response(200, ProjectSchema(many=True))
    def get(self):
        """The projects you hold a role in (all of them for site administrators)."""
        actor = web.actor()
        require_authenticated(actor)
        if actor.is_admin:
            return queries.projects.list_all(web.db())
        if actor.user is None:
            raise Problems.forbidden()
        return queries.projects.list_for_user(web.db(), actor.user.id)

    @blp.arguments(ProjectCreateSchema)
    @blp.response(200, ProjectSchema)
    def post(self, body):
        """Create a project (site administrators)."""
        actor = web.actor()
        require_site(actor, roles.PROJECT_CREATE)
        return svc.create_project(web.db(), actor, name=body["name"],
                                  description=body["description"])


@blp.route("/projects/<int:project_id>")
class ProjectById(MethodView):
    @blp.response(200, ProjectSchema)
    def get(self, project_id):
        return load_project(web.db(), web.actor(), project_id, roles.PROJECT_READ)

    @blp.arguments(ProjectUpdateSchema)
    @blp.response(200, ProjectSchema)
    def patch(self, body, project_id):
        actor = web.actor()
        project = load_project(web.db(), actor, project_id, roles.PROJECT_UPDATE)
        return svc.update_project(web.db(), actor, project, **body)

    @blp.response(200, SuccessSchema)
    def delete(self, project_id):
        """Delete a project (site administrators). Its data is kept, hidden."""
        actor = web.actor()
        project = load_project(web.db(), actor, project_id, roles.PROJECT_DELETE)
        svc.delete_project(web.db(), actor, project)
        return {"success": True}


@blp.route("/projects/<int:project_id>/assignments")
class Assignments(MethodView):
    @blp.response(200, AssignmentSchema(many=True))
    def get(self, project_id):
        """Who holds which role in the project."""
        project = load_project(web.db(), web.actor(), project_id, roles.ASSIGNMENT_LIST)
        return [{"role": grant.role, "actor_id": user.id, "actor": user,
                 "granted_at": grant.granted_at}
                for grant, user in queries.projects.list_roles(web.db(), project.id)]


@blp.route("/projects/<int:project_id>/assignments/<role>/<int:user_id>")
class AssignmentByRole(MethodView):
    @blp.response(200, SuccessSchema)
    def post(self, project_id, role, user_id):
        """Give a user a role in the project."""
        actor = web.actor()
        project = load_project(web.db(), actor, project_id, roles.ASSIGNMENT_CREATE)
        user = queries.users.get(web.db(), user_id)
        if user is None:
            raise Problems.not_found()
        svc.assign_role(web.db(), actor, project, user, _role(role))
        return {"success": True}

    @blp.response(200, SuccessSchema)
    def delete(self, project_id, role, user_id):
        """Take a role away."""
        actor = web.actor()
        project = load_project(web.db(), actor, project_id, roles.ASSIGNMENT_DELETE)
        svc.unassign_role(web.db(), actor, project, user_id, _role(role))
        return {"success": True}


@blp.route("/projects/<int:project_id>/audits")
class ProjectAudits(MethodView):
    @blp.arguments(AuditArgs, location="query")
    @blp.response(200, AuditEventSchema(many=True))
    def get(self, args, project_id):
        """The project's audit log, newest first."""
        project = load_project(web.db(), web.actor(), project_id, roles.AUDIT_READ)
        return queries.audit.list_(web.db(), project_id=project.id, **args)
