"""The typed models. Importing this package registers every table on ``Base.metadata``."""

from server.models.accounts import AuthToken, LoginFailure, User
from server.models.audit import AuditEvent
from server.models.blobs import Blob
from server.models.entities import Dataset, Entity, EntitySubmission, EntityVersion
from server.models.exports import Export
from server.models.forms import Form, FormAssignment, FormAttachment, FormDef
from server.models.jobs import Job
from server.models.projects import AppUser, Project, ProjectRole
from server.models.review import SubmissionComment
from server.models.submissions import (
    Submission,
    SubmissionAttachment,
    SubmissionDef,
    SubmissionRow,
)

__all__ = [
    "AppUser", "AuditEvent", "AuthToken", "Blob", "Dataset", "Entity", "EntitySubmission",
    "EntityVersion", "Export", "Form", "FormAssignment",
    "FormAttachment", "FormDef", "Job", "LoginFailure", "Project", "ProjectRole", "Submission",
    "SubmissionAttachment", "SubmissionComment", "SubmissionDef", "SubmissionRow", "User",
]
