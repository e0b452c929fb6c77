"""Port groups (bonds) and the port → port group link.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portgroups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("address", sa.String(length=18), nullable=True),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("standalone_ports_supported", sa.Boolean(), nullable=False),
        sa.Column("mode", sa.String(length=255), nullable=True),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("internal_info", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.id"], name=op.f("fk_portgroups_node_id_nodes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portgroups")),
        sa.UniqueConstraint("address", name=op.f("uq_portgroups_address")),
        sa.UniqueConstraint("name", name=op.f("uq_portgroups_name")),
        sa.UniqueConstraint("uuid", name=op.f("uq_portgroups_uuid")),
    )
    with op.batch_alter_table("portgroups") as batch_op:
        batch_op.create_index(batch_op.f("ix_portgroups_node_id"), ["node_id"], unique=False)
    with op.batch_alter_table("ports") as batch_op:
        batch_op.add_column(sa.Column("portgroup_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_ports_portgroup_id"), ["portgroup_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_ports_portgroup_id_portgroups"),
            "portgroups",
            ["portgroup_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("ports") as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_ports_portgroup_id_portgroups"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_ports_portgroup_id"))
        batch_op.drop_column("portgroup_id")
    with op.batch_alter_table("portgroups") as batch_op:
        batch_op.drop_index(batch_op.f("ix_portgroups_node_id"))
    op.drop_table("portgroups")
