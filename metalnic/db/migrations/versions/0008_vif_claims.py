"""VIF claims: one row per attached tenant VIF, keyed on the VIF id.

Before this, a VIF was recorded only in its link's ``internal_info`` and two
concurrent attaches of one network port (to two nodes, or twice to one node)
could both pass the "not attached elsewhere" check and both be stored.  The
primary key makes the second one fail in the database.  Existing attachments
are copied from ``internal_info`` (the first link found keeps a VIF recorded
twice).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

VIF_KEY = "tenant_vif_port_id"


def upgrade() -> None:
    op.create_table(
        "vif_claims",
        sa.Column("vif_id", sa.String(length=255), nullable=False),
        sa.Column("port_id", sa.Integer(), nullable=True),
        sa.Column("portgroup_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["port_id"], ["ports.id"], name=op.f("fk_vif_claims_port_id_ports"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["portgroup_id"],
            ["portgroups.id"],
            name=op.f("fk_vif_claims_portgroup_id_portgroups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("vif_id", name=op.f("pk_vif_claims")),
    )
    with op.batch_alter_table("vif_claims") as batch_op:
        batch_op.create_index(batch_op.f("ix_vif_claims_port_id"), ["port_id"])
        batch_op.create_index(batch_op.f("ix_vif_claims_portgroup_id"), ["portgroup_id"])
    _copy_existing()


def _copy_existing() -> None:
    conn = op.get_bind()
    claims: dict[str, dict[str, str | int | None]] = {}
    for table, column in (("portgroups", "portgroup_id"), ("ports", "port_id")):
        rows = conn.execute(sa.text(f"SELECT id, internal_info FROM {table} ORDER BY id"))
        for row_id, info in rows:
            if isinstance(info, str):
                info = json.loads(info)
            vif = info.get(VIF_KEY) if isinstance(info, dict) else None
            if isinstance(vif, str) and vif and vif not in claims:
                claims[vif] = {"vif_id": vif, "port_id": None, "portgroup_id": None, column: row_id}
    if claims:
        conn.execute(
            sa.text(
                "INSERT INTO vif_claims (vif_id, port_id, portgroup_id) "
                "VALUES (:vif_id, :port_id, :portgroup_id)"
            ),
            list(claims.values()),
        )


def downgrade() -> None:
    with op.batch_alter_table("vif_claims") as batch_op:
        batch_op.drop_index(batch_op.f("ix_vif_claims_portgroup_id"))
        batch_op.drop_index(batch_op.f("ix_vif_claims_port_id"))
    op.drop_table("vif_claims")
