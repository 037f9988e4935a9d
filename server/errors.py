"""The one registry of problems dodoso answers with, and their stable codes.

A code is never reused for a different meaning. The JSON surface renders a Problem as
``{"code": 404.1, "message": "...", "details": {...}}`` (ODK Central's shape); the OpenRosa
surface renders the same Problem as an OpenRosaResponse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Problem(Exception):
    """A client-visible error: a stable code, a message, optional details and headers."""

    def __init__(
        self,
        code: float,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})

    @property
    def status(self) -> int:
        return int(self.code)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body

    def __repr__(self) -> str:
        return f"Problem({self.code}, {self.message!r})"


class _ProblemType:
    """A template: calling it fills the message and returns a raisable Problem."""

    def __init__(self, code: float, template: str, headers: Mapping[str, str] | None = None):
        self.code = code
        self.template = template
        self.headers = dict(headers or {})

    def __call__(self, details: Mapping[str, Any] | None = None, *,
                 headers: Mapping[str, str] | None = None, **fields: Any) -> Problem:
        values = {**(details or {}), **fields}
        message = self.template.format_map(_Defaulting(values))
        return Problem(self.code, message, values or None, {**self.headers, **(headers or {})})


class _Defaulting(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


_p = _ProblemType
_CHALLENGE = 'Bearer realm="dodoso"'


class Problems:
    """Every problem dodoso can answer with. Tests assert on ``code``, never on wording.

    Codes are floats (Central's shape), so a sub-code never ends in 0: 400.10 would be
    400.1."""

    # 400: the request could not be understood
    unparseable = _p(400.1, "Could not parse the given data as {format}.")
    missing_header = _p(400.2, "An expected header field ({field}) did not match the expected "
                               "format.")
    invalid_parameter = _p(400.3, "The value given for {field} is not valid.")
    missing_multipart = _p(400.7, "Required multipart POST field {field} missing.")
    bad_request = _p(400.8, "The request could not be understood.")
    form_id_mismatch = _p(400.9, "The form ID in the uploaded form ({found}) does not match the "
                                 "form being updated ({expected}).")
    expected_deprecation = _p(400.19, "This edit must carry meta/deprecatedID naming the "
                                      "current version's instanceID.")
    submission_unparseable = _p(400.21, "The submission's XML could not be parsed: {reason}.")
    ambiguous_submission = _p(400.22, "The request carried more than one "
                                      "xml_submission_file; send exactly one.")
    multipart_unparseable = _p(400.23, "The multipart body could not be parsed (no boundary, "
                                       "empty or truncated).")
    duplicate_attachment = _p(400.24, "Two different files named {name} were sent.")
    encryption_required = _p(400.25, "This form is encrypted: plaintext submissions are "
                                     "refused.")
    form_invalid = _p(400.15, "The given form is not valid. See details.errors for each "
                              "problem, where it is and how to fix it.")
    form_warnings = _p(400.16, "The form is valid, but with warnings (details.warnings). "
                               "Resubmit with ?ignoreWarnings=true to accept them.")
    attachment_invalid = _p(400.17, "The file {name} cannot be used by this form. See "
                                    "details.errors.")
    odata_filter_unparseable = _p(400.18, "The OData expression you provided could not be "
                                          "parsed: {reason}")
    odata_property_not_found = _p(400.31, "Could not find a property named '{property}'.")
    odata_select_unsupported = _p(400.32, "The OData $select property '{property}' uses "
                                          "features not supported by this server.")
    odata_invalid_skiptoken = _p(400.35, "Invalid $skiptoken.")
    invalid_cursor = _p(400.36, "The cursor is not valid here; start again without one or use "
                                "the cursor the last response gave.")
    export_option_invalid = _p(400.41, "The export option {option} is not valid: {reason}.")

    # 401/403: who you are and what you may do
    unauthenticated = _p(401.1, "Could not authenticate with the provided credentials.",
                         headers={"WWW-Authenticate": _CHALLENGE + ', error="invalid_token"'})
    auth_required = _p(401.2, "This resource requires authentication.",
                       headers={"WWW-Authenticate": _CHALLENGE})
    https_only = _p(401.3, "This authentication method is only available over HTTPS.",
                    headers={"WWW-Authenticate": _CHALLENGE})
    forbidden = _p(403.1, "The authentication you provided does not have rights to perform "
                          "that action.")
    wrong_password = _p(403.2, "The current password given was not correct.")

    # 404/405
    not_found = _p(404.1, "Could not find the resource you were looking for.")
    version_unknown = _p(404.7, "The form version specified in this submission '{version}' "
                                "does not exist.")
    method_not_allowed = _p(405.1, "This resource does not support the method you used.")
    unacceptable_format = _p(406.1, "Requested format not acceptable; this resource allows: "
                                    "{allowed}.")

    # 409: conflicts with what is stored
    xml_conflict = _p(409.1, "A submission already exists with this ID, but with different "
                             "XML. Resubmissions to attach additional multimedia must "
                             "resubmit an identical xml_submission_file.")
    not_accepting = _p(409.2, "This form is not currently accepting submissions. Please talk "
                              "to your program staff if this is unexpected.")
    unique_conflict = _p(409.3, "A resource already exists with {fields} value(s) of {values}.")
    already_revoked = _p(409.4, "This {resource} has already been revoked.")
    last_admin = _p(409.5, "The last site administrator cannot be removed.")
    write_conflict = _p(409.6, "The change conflicts with data stored meanwhile. Please retry.")
    version_exists = _p(409.7, "Version '{version}' of this form is already published. Give "
                               "the new version another version string (?version=…).")
    field_retyped = _p(409.8, "This version changes the data type of fields already collected "
                              "({fields}). See details.errors.")
    submission_deleted = _p(409.12, "This submission has been deleted and may not be "
                                    "resubmitted or edited.")
    not_current_version = _p(409.11, "The submission this edit replaces is not its current "
                                     "version; fetch the latest and edit that.")
    media_invalid = _p(409.9, "The draft's media files are not ready to publish. See "
                              "details.errors.")
    review_count_mismatch = _p(409.13, "The filter selects {count} submissions, not the "
                                       "{expected} expected; nothing was changed.")
    export_unavailable = _p(409.41, "This export has no file to download (status: {status}).")

    # 410: was here, is no more
    export_expired = _p(410.1, "This export has expired and its file is gone; request a new "
                               "export.")

    # 413/415/422/429
    too_large = _p(413.1, "The request is larger than the {limit} bytes this server accepts.")
    form_too_large = _p(413.2, "The form file is too large or expands too much. See "
                               "details.errors.")
    unsupported_media_type = _p(415.1, "The request body must be {expected}.")
    invalid_entity = _p(422.1, "The request did not validate.")
    too_many_login_attempts = _p(429.1, "Too many failed log-in attempts for this account. "
                                        "Try again later.")

    # 5xx: ours, or a dependency's
    internal = _p(500.1, "An internal error occurred. Quote request id {request_id} when "
                         "reporting it.")
    not_implemented = _p(501.1, "The requested feature {feature} is not supported by this "
                                "server.")
    odata_unsupported_expression = _p(501.4, "The OData expression uses features not "
                                             "supported by this server: {type} at {at} "
                                             "(\"{text}\").")
    odata_unsupported_field = _p(501.5, "The OData expression references fields not "
                                        "supported by this server: {text}.")
    odata_unsupported_expand = _p(501.6, "The OData expand expression \"{text}\" is not "
                                         "supported by this server; only $expand=* is.")
    odata_select_with_expand = _p(501.11, "This server doesn't support $select with $expand.")
    storage_unavailable = _p(503.1, "Storage is temporarily unavailable. Please retry.",
                             headers={"Retry-After": "30"})
    database_unavailable = _p(503.2, "The database is temporarily unavailable. Please retry.",
                              headers={"Retry-After": "10"})

    # entity lists: why a submission made no entity (recorded per submission, as Central's
    # entity.error), on Central's codes where dodoso had not used them
    entity_invalid = _p(400.28, "The entity in the submission is invalid: {reason}.")
    entity_action_not_permitted = _p(403.3, "The submission attempts an entity {action}, but "
                                            "the form does not permit that action.")
    entity_not_found = _p(404.8, "The entity with UUID ({uuid}) specified in the submission "
                                 "does not exist in the dataset ({dataset}).")
    entity_version_not_found = _p(404.9, "Base version ({base_version}) does not exist for "
                                         "entity UUID ({uuid}) in dataset ({dataset}).")
    entity_deleted = _p(404.11, "The entity with UUID ({uuid}) has been deleted.")


def all_problem_types() -> dict[str, _ProblemType]:
    return {k: v for k, v in vars(Problems).items() if isinstance(v, _ProblemType)}
