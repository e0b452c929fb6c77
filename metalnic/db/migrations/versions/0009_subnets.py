"""Subnets and IP allocations (issue 13).

``ip_allocations`` has the primary key (subnet_id, ip_address): the database
refuses a second allocation of one address, whatever races.  Both tables
cascade from what they belong to (a subnet from its network; an allocation
from its subnet and its port).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subnets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("network_id", sa.String(length=36), nullable=False),
        sa.Column("ip_version", sa.Integer(), nullable=False),
        sa.Column("cidr", sa.String(length=64), nullable=False),
        sa.Column("gateway_ip", sa.String(length=64), nullable=True),
        sa.Column("enable_dhcp", sa.Boolean(), nullable=False),
        sa.Column("ipv6_ra_mode", sa.String(length=32), nullable=True),
        sa.Column("ipv6_address_mode", sa.String(length=32), nullable=True),
        sa.Column("allocation_pools", sa.JSON(), nullable=False),
        sa.Column("dns_nameservers", sa.JSON(), nullable=False),
        sa.Column("host_routes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision_number", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["network_id"],
            ["networks.id"],
            name=op.f("fk_subnets_network_id_networks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subnets")),
    )
    with op.batch_alter_table("subnets") as batch_op:
        batch_op.create_index(batch_op.f("ix_subnets_network_id"), ["network_id"])
        batch_op.create_index(batch_op.f("ix_subnets_project_id"), ["project_id"])
    op.create_table(
        "ip_allocations",
        sa.Column("subnet_id", sa.String(length=36), nullable=False),
        sa.Column("ip_address", sa.String(length=64), nullable=False),
        sa.Column("port_id", sa.String(length=36), nullable=False),
        sa.Column("network_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["port_id"],
            ["network_ports.id"],
            name=op.f("fk_ip_allocations_port_id_network_ports"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subnet_id"],
            ["subnets.id"],
            name=op.f("fk_ip_allocations_subnet_id_subnets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subnet_id", "ip_address", name=op.f("pk_ip_allocations")),
    )
    with op.batch_alter_table("ip_allocations") as batch_op:
        batch_op.create_index(batch_op.f("ix_ip_allocations_port_id"), ["port_id"])
        batch_op.create_index(batch_op.f("ix_ip_allocations_network_id"), ["network_id"])


def downgrade() -> None:
    with op.batch_alter_table("ip_allocations") as batch_op:
        batch_op.drop_index(batch_op.f("ix_ip_allocations_network_id"))
        batch_op.drop_index(batch_op.f("ix_ip_allocations_port_id"))
    op.drop_table("ip_allocations")
    with op.batch_alter_table("subnets") as batch_op:
        batch_op.drop_index(batch_op.f("ix_subnets_project_id"))
        batch_op.drop_index(batch_op.f("ix_subnets_network_id"))
    op.drop_table("subnets")
