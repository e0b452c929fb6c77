"""Alembic, driven from code: upgrade to head and report the current revision.

``HEAD`` names the newest migration so that a server whose database is
already current can start without importing Alembic at all (start-up time);
a test checks it against Alembic's own idea of the head.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config

HEAD = "0011"
MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None  # no alembic_version table yet: an empty database


def upgrade(engine: Engine, revision: str = "head") -> None:
    if revision in ("head", HEAD) and current_revision(engine) == HEAD:
        return
    from alembic import command

    command.upgrade(alembic_config(engine), revision)
