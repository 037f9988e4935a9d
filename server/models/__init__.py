"""The typed models. Importing this package registers every table on ``Base.metadata``."""

from server.models.accounts import AuthToken, LoginFailure, User
from server.models.audit import AuditEvent
from server.models.blobs import Blob
from server.models.forms import Form, FormAttachment, FormDef
from server.models.jobs import Job
from server.models.projects import AppUser, Project, ProjectRole

__all__ = [
    "AppUser", "AuditEvent", "AuthToken", "Blob", "Form", "FormAttachment", "FormDef", "Job",
    "LoginFailure", "Project", "ProjectRole", "User",
]
