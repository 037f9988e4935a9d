"""Project roles and the verbs each grants. Site administrators hold every verb everywhere."""

from __future__ import annotations

from server.models.projects import PROJECT_ROLES

# Verbs, by resource.
PROJECT_READ = "project.read"
PROJECT_UPDATE = "project.update"
PROJECT_DELETE = "project.delete"
PROJECT_CREATE = "project.create"
ASSIGNMENT_LIST = "assignment.list"
ASSIGNMENT_CREATE = "assignment.create"
ASSIGNMENT_DELETE = "assignment.delete"
APP_USER_LIST = "app_user.list"
APP_USER_CREATE = "app_user.create"
APP_USER_DELETE = "app_user.delete"
FORM_LIST = "form.list"
FORM_READ = "form.read"
FORM_CREATE = "form.create"
FORM_UPDATE = "form.update"
FORM_PUBLISH = "form.publish"
FORM_DELETE = "form.delete"
SUBMISSION_LIST = "submission.list"
SUBMISSION_READ = "submission.read"
SUBMISSION_UPDATE = "submission.update"
SUBMISSION_CREATE = "submission.create"
SUBMISSION_EXPORT = "submission.export"
SUBMISSION_DELETE = "submission.delete"
SUBMISSION_RESTORE = "submission.restore"
AUDIT_READ = "audit.read"
USER_LIST = "user.list"
USER_CREATE = "user.create"
USER_UPDATE = "user.update"
SITE_AUDIT_READ = "site.audit.read"

_READ = {PROJECT_READ, FORM_LIST, FORM_READ, SUBMISSION_LIST, SUBMISSION_READ,
         SUBMISSION_EXPORT}

ROLE_VERBS: dict[str, frozenset[str]] = {
    "viewer": frozenset(_READ),
    "data-manager": frozenset(_READ | {SUBMISSION_UPDATE, SUBMISSION_CREATE}),
    "designer": frozenset(_READ | {FORM_CREATE, FORM_UPDATE, FORM_PUBLISH, APP_USER_LIST}),
    "manager": frozenset(
        _READ
        | {PROJECT_UPDATE, ASSIGNMENT_LIST, ASSIGNMENT_CREATE, ASSIGNMENT_DELETE, APP_USER_LIST,
           APP_USER_CREATE, APP_USER_DELETE, FORM_CREATE, FORM_UPDATE, FORM_PUBLISH,
           FORM_DELETE,
           SUBMISSION_UPDATE, SUBMISSION_CREATE, SUBMISSION_DELETE, SUBMISSION_RESTORE,
           AUDIT_READ}
    ),
}

ROLE_NAMES = {
    "manager": "Project Manager",
    "designer": "Survey Designer",
    "data-manager": "Data Manager",
    "viewer": "Project Viewer",
}

SITE_ONLY_VERBS = frozenset({PROJECT_CREATE, PROJECT_DELETE, USER_LIST, USER_CREATE,
                             USER_UPDATE, SITE_AUDIT_READ})

ALL_VERBS = frozenset().union(*ROLE_VERBS.values()) | SITE_ONLY_VERBS

assert set(ROLE_VERBS) == set(PROJECT_ROLES), "roles.py and the project_roles check disagree"


def verbs_for(roles: set[str] | frozenset[str]) -> frozenset[str]:
    return frozenset().union(*(ROLE_VERBS[r] for r in roles)) if roles else frozenset()
