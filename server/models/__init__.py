"""The typed models. Importing this package registers every table on ``Base.metadata``."""

from server.models.accounts import AuthToken, LoginFailure, User
from server.models.audit import AuditEvent
from server.models.blobs import Blob
from server.models.forms import Form, FormAssignment, FormAttachment, FormDef
from server.models.jobs import Job
from server.models.projects import AppUser, Project, ProjectRole
from server.models.submissions import (
    Submission,
    SubmissionAttachment,
    SubmissionDef,
    SubmissionRow,
)

__all__ = [
    "AppUser", "AuditEvent", "AuthToken", "Blob", "Form", "FormAssignment", "FormAttachment",
    "FormDef", "Job",
    "LoginFailure", "Project", "ProjectRole", "Submission", "SubmissionAttachment",
    "SubmissionDef", "SubmissionRow", "User",
]
