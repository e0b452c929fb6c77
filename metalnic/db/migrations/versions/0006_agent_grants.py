"""NIC host ownership: one claim per NIC host, and admins' grants to agent users.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nic_host_claims",
        sa.Column("nic_host", sa.String(length=255), nullable=False),
        sa.Column("agent_id", sa.String(length=36), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_nic_host_claims_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("nic_host", name=op.f("pk_nic_host_claims")),
    )
    with op.batch_alter_table("nic_host_claims") as batch_op:
        batch_op.create_index(batch_op.f("ix_nic_host_claims_agent_id"), ["agent_id"])
    op.create_table(
        "agent_grants",
        sa.Column("user_name", sa.String(length=255), nullable=False),
        sa.Column("nic_host", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_name", "nic_host", name=op.f("pk_agent_grants")),
    )


def downgrade() -> None:
    op.drop_table("agent_grants")
    with op.batch_alter_table("nic_host_claims") as batch_op:
        batch_op.drop_index(batch_op.f("ix_nic_host_claims_agent_id"))
    op.drop_table("nic_host_claims")
