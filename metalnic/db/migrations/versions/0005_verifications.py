"""Boot-gate verifications: questions to a NIC's agent, answered from OVS.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verifications",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("ports", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verifications")),
    )
    with op.batch_alter_table("verifications") as batch_op:
        batch_op.create_index(batch_op.f("ix_verifications_host"), ["host"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("verifications") as batch_op:
        batch_op.drop_index(batch_op.f("ix_verifications_host"))
    op.drop_table("verifications")
