"""Chassis (Ironic's /v1/chassis) and the node's ``chassis_uuid``.

A node names its chassis by UUID (a foreign key on ``chassis.uuid``, RESTRICT: a
chassis that still has nodes cannot be deleted); existing nodes have none.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chassis",
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chassis")),
        sa.UniqueConstraint("uuid", name=op.f("uq_chassis_uuid")),
    )
    with op.batch_alter_table("nodes") as batch_op:
        batch_op.add_column(sa.Column("chassis_uuid", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_nodes_chassis_uuid"), ["chassis_uuid"])
        batch_op.create_foreign_key(
            batch_op.f("fk_nodes_chassis_uuid_chassis"),
            "chassis",
            ["chassis_uuid"],
            ["uuid"],
            ondelete="RESTRICT",
        )


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_nodes_chassis_uuid_chassis"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_nodes_chassis_uuid"))
        batch_op.drop_column("chassis_uuid")
    op.drop_table("chassis")
