"""marshmallow schemas of review, bulk review and comments (Central's shapes, camelCase)."""

from __future__ import annotations

from marshmallow import fields, validate

from server.api.schemas import ApiSchema, SubmitterSchema
from server.models.submissions import REVIEW_STATES

MAX_COMMENT_LENGTH = 10_000

ReviewState = fields.String(required=True, allow_none=True,
                            validate=validate.OneOf(REVIEW_STATES))
"""``null`` is Central's way of saying ``received``."""


class ReviewSchema(ApiSchema):
    review_state = ReviewState


class BulkReviewSchema(ApiSchema):
    review_state = ReviewState
    comment = fields.String(load_default=None, allow_none=True,
                            validate=validate.Length(min=1, max=MAX_COMMENT_LENGTH))
    expected_count = fields.Integer(load_default=None, allow_none=True, strict=True,
                                    validate=validate.Range(min=0))


class BulkReviewResultSchema(ApiSchema):
    count = fields.Integer()


class CommentCreateSchema(ApiSchema):
    body = fields.String(required=True,
                         validate=validate.Length(min=1, max=MAX_COMMENT_LENGTH))


class CommentSchema(ApiSchema):
    """An ``AuthoredComment``, as Central shows a comment."""

    body = fields.String(attribute="comment.body")
    actor_id = fields.Integer(attribute="comment.author_user_id", allow_none=True)
    created_at = fields.DateTime(attribute="comment.created_at")


class CommentExtendedSchema(CommentSchema):
    actor = fields.Nested(SubmitterSchema, attribute="author", allow_none=True)
