"""Node history (event log) and the conductors that hold node locks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conductors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conductors")),
        sa.UniqueConstraint("name", name=op.f("uq_conductors_name")),
    )
    with op.batch_alter_table("conductors", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conductors_heartbeat_at"), ["heartbeat_at"], unique=False
        )

    op.create_table(
        "node_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("conductor", sa.String(length=255), nullable=True),
        sa.Column("user", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["nodes.id"],
            name=op.f("fk_node_history_node_id_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_history")),
        sa.UniqueConstraint("uuid", name=op.f("uq_node_history_uuid")),
    )
    with op.batch_alter_table("node_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_node_history_node_id"), ["node_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("node_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_node_history_node_id"))

    op.drop_table("node_history")
    with op.batch_alter_table("conductors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conductors_heartbeat_at"))

    op.drop_table("conductors")
