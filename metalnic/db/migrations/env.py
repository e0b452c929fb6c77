"""Alembic environment: runs migrations on the engine metalnic hands over."""

from __future__ import annotations

from alembic import context

import metalnic.baremetal.models  # noqa: F401  (registers the tables)
import metalnic.network.models  # noqa: F401
from metalnic.db.base import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
