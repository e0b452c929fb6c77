"""Row revisions of nodes, ports and port groups (lost-update protection).

Every ORM write checks the revision it read and bumps it (SQLAlchemy's
``version_id_col``); networks, network ports and security groups use their
existing ``revision_number`` the same way, so they need no new column.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = ("nodes", "ports", "portgroups")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(
                sa.Column("version", sa.Integer(), nullable=False, server_default="1")
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("version")
