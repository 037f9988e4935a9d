"""marshmallow schemas of the JSON API. Field names are camelCase on the wire, as Central's."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from server.auth.passwords import MAX_PASSWORD_LENGTH
from server.models.forms import FORM_STATES
from server.models.projects import AppUser
from server.models.submissions import REVIEW_STATES
from server.queries.filters import SubmissionFilter


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


class ApiSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE
        ordered = True

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        field_obj.data_key = field_obj.data_key or _camel(field_name)


class RevealsToken:
    """For the one response that shows a new token: dump the wrapped record's columns plus
    the plain token (services return ``(record, token)`` pairs as small dataclasses)."""

    record_attribute: str

    @ma.pre_dump
    def _reveal(self, new: object, **_kw: object) -> dict:
        record = getattr(new, self.record_attribute)
        columns = {k: v for k, v in vars(record).items() if not k.startswith("_")}
        return {**columns, "token": new.token}  # type: ignore[attr-defined]


Name = fields.String(required=True, validate=validate.Length(min=1, max=200))
Password = fields.String(required=True, load_only=True,
                         validate=validate.Length(max=MAX_PASSWORD_LENGTH))


class SuccessSchema(ApiSchema):
    success = fields.Boolean(dump_default=True)


class PageArgs(ApiSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


# -- sessions and tokens --------------------------------------------------------------

class SessionCreateSchema(ApiSchema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=320))
    password = Password


class SessionSchema(ApiSchema):
    token = fields.String()
    created_at = fields.DateTime(attribute="record.created_at")
    expires_at = fields.DateTime(attribute="record.expires_at")


class ApiTokenCreateSchema(ApiSchema):
    label = Name
    expires_in_days = fields.Integer(load_default=None, allow_none=True,
                                     validate=validate.Range(min=1, max=3650))


class ApiTokenSchema(ApiSchema):
    id = fields.Integer()
    label = fields.String()
    created_at = fields.DateTime()
    expires_at = fields.DateTime()


class NewApiTokenSchema(RevealsToken, ApiTokenSchema):
    record_attribute = "record"
    token = fields.String()


# -- users ----------------------------------------------------------------------------

class UserSchema(ApiSchema):
    id = fields.Integer()
    type = fields.Constant("user")
    email = fields.String()
    display_name = fields.String()
    is_admin = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    deleted_at = fields.DateTime()


class UserCreateSchema(ApiSchema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    password = fields.String(load_only=True, validate=validate.Length(max=MAX_PASSWORD_LENGTH))
    display_name = fields.String(validate=validate.Length(min=1, max=200))


class UserUpdateSchema(ApiSchema):
    email = fields.Email(validate=validate.Length(max=320))
    display_name = fields.String(validate=validate.Length(min=1, max=200))


class PasswordChangeSchema(ApiSchema):
    old = fields.String(load_only=True, validate=validate.Length(max=MAX_PASSWORD_LENGTH))
    new = Password


# -- projects, roles, app users -------------------------------------------------------

class ProjectSchema(ApiSchema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String(allow_none=True)
    archived = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    deleted_at = fields.DateTime()


class ProjectCreateSchema(ApiSchema):
    name = Name
    description = fields.String(load_default=None, allow_none=True,
                                validate=validate.Length(max=10000))


class ProjectUpdateSchema(ApiSchema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=10000))
    archived = fields.Boolean()


class RoleSchema(ApiSchema):
    system = fields.String()
    name = fields.String()
    verbs = fields.List(fields.String())


class AssignmentSchema(ApiSchema):
    role = fields.String()
    actor_id = fields.Integer()
    actor = fields.Nested(UserSchema)
    granted_at = fields.DateTime()




class AppUserSchema(ApiSchema):
    id = fields.Integer()
    type = fields.Constant("field_key")
    project_id = fields.Integer()
    display_name = fields.String()
    created_at = fields.DateTime()
    created_by_id = fields.Integer(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)
    token = fields.Constant(None)  # shown once, at creation; only its hash is kept


class NewAppUserSchema(RevealsToken, AppUserSchema):
    record_attribute = "app_user"
    token = fields.String()


class AppUserCreateSchema(ApiSchema):
    display_name = Name


class AppUserQrSchema(ApiSchema):
    token = fields.String(required=True, load_only=True, validate=validate.Length(max=128))
    format = fields.String(load_default="png", validate=validate.OneOf(["png", "svg"]))
    managed = fields.Boolean(load_default=False)


class AppUserListArgs(ApiSchema):
    include_revoked = fields.Boolean(load_default=False)


# -- audit ----------------------------------------------------------------------------

class AuditArgs(PageArgs):
    action = fields.String(validate=validate.Length(max=64))
    start = fields.AwareDateTime(default_timezone=None)
    end = fields.AwareDateTime(default_timezone=None)


class AuditEventSchema(ApiSchema):
    id = fields.Integer()
    logged_at = fields.DateTime()
    actor_id = fields.Integer(attribute="actor_user_id", allow_none=True)
    actor_app_user_id = fields.Integer(allow_none=True)
    action = fields.String()
    project_id = fields.Integer(allow_none=True)
    target_type = fields.String(allow_none=True)
    target_id = fields.String(allow_none=True)
    details = fields.Dict(allow_none=True)
    request_id = fields.String(allow_none=True)


# -- forms ----------------------------------------------------------------------------

class FormCreateArgs(ApiSchema):
    publish = fields.Boolean(load_default=False)
    ignore_warnings = fields.Boolean(load_default=False)


class PublishArgs(ApiSchema):
    version = fields.String(validate=validate.Length(min=1, max=255))


class FormUpdateSchema(ApiSchema):
    state = fields.String(validate=validate.OneOf(FORM_STATES))


class FormSummarySchema(ApiSchema):
    """A form with one of its versions (Central's form shape)."""

    project_id = fields.Integer(attribute="form.project_id")
    xml_form_id = fields.String(attribute="form.xml_form_id")
    state = fields.String(attribute="form.state")
    name = fields.String(attribute="definition.title")
    version = fields.String(attribute="definition.version")
    hash = fields.String(attribute="definition.xml_md5")
    sha256 = fields.String(attribute="definition.xml_sha256")
    encrypted = fields.Function(lambda v: bool(v["definition"] and
                                               v["definition"].encryption_key))
    entity_related = fields.Function(lambda v: bool(v["definition"] and
                                                    v["definition"].entities))
    entities = fields.Function(lambda v: (v["definition"].entities or {}).get("entities", [])
                               if v["definition"] else [])
    published_at = fields.DateTime(attribute="definition.published_at")
    created_at = fields.DateTime(attribute="form.created_at")
    updated_at = fields.DateTime(attribute="form.updated_at")


class FormAttachmentSchema(ApiSchema):
    name = fields.String()
    type = fields.String()
    exists = fields.Boolean()
    hash = fields.String(allow_none=True)
    size = fields.Integer(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)


class IssueSchema(ApiSchema):
    level = fields.String()
    code = fields.String()
    message = fields.String()
    sheet = fields.String()
    row = fields.Integer()
    column = fields.String()
    original = fields.String()
    field = fields.String()


class DraftSchema(FormSummarySchema):
    draft_token = fields.String()
    warnings = fields.List(fields.Nested(IssueSchema))
    diff = fields.Dict(allow_none=True)
    attachments = fields.List(fields.Nested(FormAttachmentSchema))


class FieldSchema(ApiSchema):
    """One field of a form version (Central's ``/fields`` shape, plus nesting)."""

    class Meta(ApiSchema.Meta):
        unknown = ma.EXCLUDE

    path = fields.String()
    name = fields.String()
    type = fields.String()
    binary = fields.Boolean()
    select_multiple = fields.Function(lambda f: f.get("type") == "select")
    repeat = fields.String(allow_none=True)


class AssignedAppUserSchema(ApiSchema):
    actor_id = fields.Integer()
    role_system = fields.String()


class HealthSchema(ApiSchema):
    status = fields.String()
    database = fields.String()
    blob_store = fields.String()


# -- submissions ----------------------------------------------------------------------

def _submitter_id(record: object) -> int | None:
    """Central has one actor id; here a web user's id, else the app user's."""
    user_id = getattr(record, "submitter_user_id", None)
    return user_id if user_id is not None else getattr(record, "submitter_app_user_id", None)


class SubmitterSchema(ApiSchema):
    """The actor who sent a submission (Central's Actor, in extended metadata)."""

    id = fields.Integer()
    type = fields.Function(lambda a: "field_key" if isinstance(a, AppUser) else "user")
    display_name = fields.String()
    created_at = fields.DateTime()
    updated_at = fields.Function(lambda a: _iso(getattr(a, "updated_at", None)))
    deleted_at = fields.Function(lambda a: _iso(getattr(a, "deleted_at", None)))


def _iso(value: object) -> str | None:
    return value.isoformat() if value is not None else None  # type: ignore[attr-defined]


class SubmissionVersionSchema(ApiSchema):
    """One version of a submission: ``{"definition": SubmissionDef, "submitter": …}``."""

    instance_id = fields.String(attribute="definition.instance_id")
    instance_name = fields.String(attribute="definition.instance_name", allow_none=True)
    submitter_id = fields.Function(lambda v: _submitter_id(_get(v, "definition")))
    device_id = fields.String(attribute="definition.device_id", allow_none=True)
    user_agent = fields.String(attribute="definition.user_agent", allow_none=True)
    created_at = fields.DateTime(attribute="definition.created_at")
    current = fields.Boolean(attribute="definition.current")


def _get(value: object, key: str) -> object:
    return value[key] if isinstance(value, dict) else getattr(value, key)


class CurrentVersionExtendedSchema(SubmissionVersionSchema):
    submitter = fields.Nested(SubmitterSchema, allow_none=True)


class SubmissionVersionExtendedSchema(CurrentVersionExtendedSchema):
    form_version = fields.String()


class SubmissionSchema(ApiSchema):
    """A submission (Central's shape): the logical submission, with its first
    instanceID, its initial device and user agent, and its current version."""

    instance_id = fields.String(attribute="submission.instance_id")
    submitter_id = fields.Function(lambda s: _submitter_id(s.submission))
    device_id = fields.String(attribute="submission.device_id", allow_none=True)
    user_agent = fields.String(allow_none=True)
    # Central's reviewState is null until someone reviews the submission.
    review_state = fields.Function(lambda s: None if s.submission.review_state == "received"
                                   else s.submission.review_state)
    created_at = fields.DateTime(attribute="submission.created_at")
    updated_at = fields.DateTime(attribute="submission.updated_at", allow_none=True)
    deleted_at = fields.DateTime(attribute="submission.deleted_at", allow_none=True)
    current_version = fields.Function(
        lambda s: SubmissionVersionSchema().dump({"definition": s.current}))


class SubmissionExtendedSchema(SubmissionSchema):
    """``X-Extended-Metadata: true``: the submitters themselves, not only their ids."""

    submitter = fields.Nested(SubmitterSchema, allow_none=True)
    current_version = fields.Function(
        lambda s: CurrentVersionExtendedSchema().dump({"definition": s.current,
                                                       "submitter": s.current_submitter}))


class SubmissionAttachmentSchema(ApiSchema):
    name = fields.String()
    exists = fields.Boolean()


class SubmissionListArgs(ApiSchema):
    """Central's ``?limit=&offset=``; without ``limit``, every submission (as Central)."""

    limit = fields.Integer(load_default=None, validate=validate.Range(min=0))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


class SubmissionFilterArgs(ApiSchema):
    """Query arguments that select submissions, shared by exports, bulk review and feeds.
    Lists repeat the argument (``?reviewState=approved&reviewState=hasIssues``)."""

    class Meta(ApiSchema.Meta):
        unknown = ma.EXCLUDE  # the routes using it take their own arguments too

    submitted_from = fields.AwareDateTime(load_default=None)
    submitted_to = fields.AwareDateTime(load_default=None)
    submitter_id = fields.List(fields.Integer(strict=False), load_default=list)
    app_user_id = fields.List(fields.Integer(strict=False), load_default=list)
    device_id = fields.List(fields.String(validate=validate.Length(max=255)), load_default=list)
    review_state = fields.List(fields.String(validate=validate.OneOf(REVIEW_STATES)),
                               load_default=list)
    form_version = fields.List(fields.String(validate=validate.Length(max=255)),
                               load_default=list)
    include_history = fields.Boolean(load_default=False)

    @ma.post_load
    def _to_filter(self, data: dict, **_kw: object) -> SubmissionFilter:
        return SubmissionFilter(
            submitted_from=data["submitted_from"], submitted_to=data["submitted_to"],
            submitter_user_ids=tuple(data["submitter_id"]),
            submitter_app_user_ids=tuple(data["app_user_id"]),
            device_ids=tuple(data["device_id"]), review_states=tuple(data["review_state"]),
            form_versions=tuple(data["form_version"]),
            include_history=data["include_history"])


# -- entity lists (datasets) and entities -----------------------------------------------------

def _creator_id(record: object) -> int | None:
    """As ``_submitter_id``: a web user's id, else the app user's."""
    user_id = getattr(record, "creator_user_id", None)
    return user_id if user_id is not None else getattr(record, "creator_app_user_id", None)


class DatasetSchema(ApiSchema):
    """Central's Dataset; dumps ``{"dataset": Dataset, "stats": DatasetStats | None}``.
    Approval is never required and entity lists are never owner-only here."""

    name = fields.String(attribute="dataset.name")
    created_at = fields.DateTime(attribute="dataset.created_at")
    project_id = fields.Integer(attribute="dataset.project_id")
    approval_required = fields.Constant(False)
    owner_only = fields.Constant(False)


class DatasetExtendedSchema(DatasetSchema):
    """``X-Extended-Metadata: true``: how many entities, the newest, how many in conflict."""

    entities = fields.Integer(attribute="stats.entities")
    last_entity = fields.DateTime(attribute="stats.last_entity", allow_none=True)
    conflicts = fields.Integer(attribute="stats.conflicts")


class DatasetPropertySchema(ApiSchema):
    name = fields.String()
    published_at = fields.String(allow_none=True)
    odata_name = fields.String()
    forms = fields.List(fields.Dict())


class DatasetMetadataSchema(DatasetSchema):
    last_update = fields.DateTime(allow_none=True)
    properties = fields.List(fields.Nested(DatasetPropertySchema))
    source_forms = fields.List(fields.Dict())
    linked_forms = fields.List(fields.Dict())


class EntityVersionSchema(ApiSchema):
    """One version of an entity; dumps ``{"version": EntityVersion, "current": bool}``."""

    label = fields.String(attribute="version.label")
    current = fields.Boolean()
    creator_id = fields.Function(lambda v: _creator_id(v["version"]))
    user_agent = fields.String(attribute="version.user_agent", allow_none=True)
    version = fields.Integer(attribute="version.version")
    base_version = fields.Integer(attribute="version.base_version", allow_none=True)
    conflicting_properties = fields.List(fields.String(), allow_none=True,
                                         attribute="version.conflicting_properties")
    created_at = fields.DateTime(attribute="version.created_at")


class EntityVersionDataSchema(EntityVersionSchema):
    data = fields.Dict(attribute="version.data")
    data_received = fields.Dict(attribute="version.data_received")


class EntitySchema(ApiSchema):
    """Central's Entity; dumps ``{"entity": Entity, "version": its current EntityVersion}``.
    The list leaves the data out of ``currentVersion``, as Central's does."""

    uuid = fields.String(attribute="entity.uuid")
    creator_id = fields.Function(lambda v: _creator_id(v["entity"]))
    conflict = fields.String(attribute="entity.conflict", allow_none=True)
    created_at = fields.DateTime(attribute="entity.created_at")
    updated_at = fields.DateTime(attribute="entity.updated_at", allow_none=True)
    deleted_at = fields.DateTime(attribute="entity.deleted_at", allow_none=True)
    current_version = fields.Function(
        lambda v: EntityVersionSchema().dump({"version": v["version"], "current": True}))


class EntityDetailSchema(EntitySchema):
    current_version = fields.Function(
        lambda v: EntityVersionDataSchema().dump({"version": v["version"], "current": True}))
