"""Forms, their versions (definitions) and expected media.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "forms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("xml_form_id", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('open', 'closing', 'closed')", name=op.f("ck_forms_state")),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_forms_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_forms_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forms")),
        sa.UniqueConstraint(
            "project_id", "xml_form_id", name=op.f("uq_forms_project_id_xml_form_id")
        ),
    )
    with op.batch_alter_table("forms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_forms_project_id"), ["project_id"], unique=False)

    op.create_table(
        "form_defs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("form_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(length=1000), nullable=False),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.Column("xml_md5", sa.String(length=32), nullable=False),
        sa.Column("xml_sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "schema", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("encryption_key", sa.Text(), nullable=True),
        sa.Column(
            "entities",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "warnings", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column(
            "xlsform_blob_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("xlsform_filename", sa.String(length=255), nullable=True),
        sa.Column("xlsform_content_type", sa.String(length=255), nullable=True),
        sa.Column("draft_token", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_form_defs_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["form_id"], ["forms.id"], name=op.f("fk_form_defs_form_id_forms"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["published_by_id"],
            ["users.id"],
            name=op.f("fk_form_defs_published_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["xlsform_blob_id"], ["blobs.id"], name=op.f("fk_form_defs_xlsform_blob_id_blobs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_defs")),
        sa.UniqueConstraint("draft_token", name=op.f("uq_form_defs_draft_token")),
    )
    with op.batch_alter_table("form_defs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_form_defs_form_id_published_at", ["form_id", "published_at"], unique=False
        )
        batch_op.create_index(
            "ix_form_defs_one_draft",
            ["form_id"],
            unique=True,
            sqlite_where=sa.text("published_at IS NULL"),
            postgresql_where=sa.text("published_at IS NULL"),
        )
        batch_op.create_index(
            "ix_form_defs_published_version",
            ["form_id", "version"],
            unique=True,
            sqlite_where=sa.text("published_at IS NOT NULL"),
            postgresql_where=sa.text("published_at IS NOT NULL"),
        )

    op.create_table(
        "form_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("form_def_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("blob_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["blob_id"], ["blobs.id"], name=op.f("fk_form_attachments_blob_id_blobs")
        ),
        sa.ForeignKeyConstraint(
            ["form_def_id"],
            ["form_defs.id"],
            name=op.f("fk_form_attachments_form_def_id_form_defs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_attachments")),
        sa.UniqueConstraint(
            "form_def_id", "name", name=op.f("uq_form_attachments_form_def_id_name")
        ),
    )


def downgrade() -> None:
    op.drop_table("form_attachments")
    with op.batch_alter_table("form_defs", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_form_defs_published_version",
            sqlite_where=sa.text("published_at IS NOT NULL"),
            postgresql_where=sa.text("published_at IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_form_defs_one_draft",
            sqlite_where=sa.text("published_at IS NULL"),
            postgresql_where=sa.text("published_at IS NULL"),
        )
        batch_op.drop_index("ix_form_defs_form_id_published_at")

    op.drop_table("form_defs")
    with op.batch_alter_table("forms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_forms_project_id"))

    op.drop_table("forms")
