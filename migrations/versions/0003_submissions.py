"""Submissions (logical, versions, attachments, flattened rows) and app-user form
assignments.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "form_assignments",
        sa.Column("form_id", sa.Integer(), nullable=False),
        sa.Column("app_user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_user_id"],
            ["app_users.id"],
            name=op.f("fk_form_assignments_app_user_id_app_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["form_id"],
            ["forms.id"],
            name=op.f("fk_form_assignments_form_id_forms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("form_id", "app_user_id", name=op.f("pk_form_assignments")),
    )
    with op.batch_alter_table("form_assignments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_form_assignments_app_user_id"), ["app_user_id"], unique=False
        )

    op.create_table(
        "submissions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("form_id", sa.Integer(), nullable=False),
        sa.Column("draft", sa.Boolean(), nullable=False),
        sa.Column("instance_id", sa.String(length=255), nullable=False),
        sa.Column("review_state", sa.String(length=16), nullable=False),
        sa.Column("submitter_user_id", sa.Integer(), nullable=True),
        sa.Column("submitter_app_user_id", sa.Integer(), nullable=True),
        sa.Column("device_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "review_state IN ('received', 'hasIssues', 'edited', 'approved', 'rejected')",
            name=op.f("ck_submissions_review_state"),
        ),
        sa.ForeignKeyConstraint(
            ["form_id"], ["forms.id"], name=op.f("fk_submissions_form_id_forms"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["submitter_app_user_id"],
            ["app_users.id"],
            name=op.f("fk_submissions_submitter_app_user_id_app_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["submitter_user_id"],
            ["users.id"],
            name=op.f("fk_submissions_submitter_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
        sa.UniqueConstraint(
            "form_id", "draft", "instance_id", name=op.f("uq_submissions_form_id_draft_instance_id")
        ),
    )
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_submissions_form_id_created_at", ["form_id", "created_at"], unique=False
        )

    op.create_table(
        "submission_defs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "submission_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("form_id", sa.Integer(), nullable=False),
        sa.Column("draft", sa.Boolean(), nullable=False),
        sa.Column("form_def_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=255), nullable=False),
        sa.Column("deprecated_id", sa.String(length=255), nullable=True),
        sa.Column("instance_name", sa.String(length=1000), nullable=True),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.Column("xml_sha256", sa.String(length=64), nullable=False),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("submitter_user_id", sa.Integer(), nullable=True),
        sa.Column("submitter_app_user_id", sa.Integer(), nullable=True),
        sa.Column("device_id", sa.String(length=255), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("attachments_expected", sa.Integer(), nullable=False),
        sa.Column("attachments_present", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["form_def_id"], ["form_defs.id"], name=op.f("fk_submission_defs_form_def_id_form_defs")
        ),
        sa.ForeignKeyConstraint(
            ["form_id"],
            ["forms.id"],
            name=op.f("fk_submission_defs_form_id_forms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_submission_defs_submission_id_submissions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["submitter_app_user_id"],
            ["app_users.id"],
            name=op.f("fk_submission_defs_submitter_app_user_id_app_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["submitter_user_id"],
            ["users.id"],
            name=op.f("fk_submission_defs_submitter_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submission_defs")),
        sa.UniqueConstraint(
            "form_id",
            "draft",
            "instance_id",
            name=op.f("uq_submission_defs_form_id_draft_instance_id"),
        ),
    )
    with op.batch_alter_table("submission_defs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_submission_defs_form_def_id"), ["form_def_id"], unique=False
        )
        batch_op.create_index(
            "ix_submission_defs_submission_id_current", ["submission_id", "current"], unique=False
        )

    op.create_table(
        "submission_attachments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "submission_def_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("blob_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["blob_id"], ["blobs.id"], name=op.f("fk_submission_attachments_blob_id_blobs")
        ),
        sa.ForeignKeyConstraint(
            ["submission_def_id"],
            ["submission_defs.id"],
            name=op.f("fk_submission_attachments_submission_def_id_submission_defs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submission_attachments")),
        sa.UniqueConstraint(
            "submission_def_id",
            "name",
            name=op.f("uq_submission_attachments_submission_def_id_name"),
        ),
    )
    with op.batch_alter_table("submission_attachments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_submission_attachments_blob_id"), ["blob_id"], unique=False
        )

    op.create_table(
        "submission_rows",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "submission_def_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("form_id", sa.Integer(), nullable=False),
        sa.Column("table_path", sa.String(length=1000), nullable=False),
        sa.Column("row_key", sa.Text(), nullable=False),
        sa.Column("parent_key", sa.Text(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("extra", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True),
        sa.ForeignKeyConstraint(
            ["form_id"],
            ["forms.id"],
            name=op.f("fk_submission_rows_form_id_forms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["submission_def_id"],
            ["submission_defs.id"],
            name=op.f("fk_submission_rows_submission_def_id_submission_defs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submission_rows")),
    )
    with op.batch_alter_table("submission_rows", schema=None) as batch_op:
        batch_op.create_index(
            "ix_submission_rows_form_id_table_path",
            ["form_id", "table_path", "submission_def_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_submission_rows_submission_def_id"), ["submission_def_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("submission_rows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submission_rows_submission_def_id"))
        batch_op.drop_index("ix_submission_rows_form_id_table_path")

    op.drop_table("submission_rows")
    with op.batch_alter_table("submission_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submission_attachments_blob_id"))

    op.drop_table("submission_attachments")
    with op.batch_alter_table("submission_defs", schema=None) as batch_op:
        batch_op.drop_index("ix_submission_defs_submission_id_current")
        batch_op.drop_index(batch_op.f("ix_submission_defs_form_def_id"))

    op.drop_table("submission_defs")
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_index("ix_submissions_form_id_created_at")

    op.drop_table("submissions")
    with op.batch_alter_table("form_assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_form_assignments_app_user_id"))

    op.drop_table("form_assignments")
