"""Tags on networks, ports and security groups; a port's allowed address pairs and
extra DHCP options.

Tags are Neutron's standard-attr tags: one table per kind of resource
(``network/tags.py`` has the table of kinds), a row per (resource, tag), deleted
with the resource.  A port's ``allowed_address_pairs`` and ``extra_dhcp_opts``
are Neutron's lists of dicts, stored as JSON on the port (every view shows
them, and a list reads them in its one query); existing ports get ``[]``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# (tag table, the table of the resources it tags)
TAG_TABLES = (
    ("network_tags", "networks"),
    ("network_port_tags", "network_ports"),
    ("security_group_tags", "security_groups"),
)


def upgrade() -> None:
    for table, parent in TAG_TABLES:
        op.create_table(
            table,
            sa.Column("resource_id", sa.String(length=36), nullable=False),
            sa.Column("tag", sa.String(length=255), nullable=False),
            sa.ForeignKeyConstraint(
                ["resource_id"],
                [f"{parent}.id"],
                name=op.f(f"fk_{table}_resource_id_{parent}"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("resource_id", "tag", name=op.f(f"pk_{table}")),
        )
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_index(batch_op.f(f"ix_{table}_tag"), ["tag"])
    with op.batch_alter_table("network_ports") as batch_op:
        for column in ("allowed_address_pairs", "extra_dhcp_opts"):
            batch_op.add_column(sa.Column(column, sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("network_ports") as batch_op:
        batch_op.drop_column("extra_dhcp_opts")
        batch_op.drop_column("allowed_address_pairs")
    for table, _parent in reversed(TAG_TABLES):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_tag"))
        op.drop_table(table)
