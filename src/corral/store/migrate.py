"""Schema migrations (Alembic), run against a live connection so they work inside a running loop."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from corral.store.db import Database

_SCRIPTS = Path(__file__).parent / "migrations"


def _config(connection: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


async def upgrade(db: Database, revision: str = "head") -> None:
    def run(sync_conn: sa.Connection) -> None:
        command.upgrade(_config(sync_conn), revision)

    async with db.write() as conn:
        await conn.run_sync(run)


async def current_revision(db: Database) -> str | None:
    def run(sync_conn: sa.Connection) -> str | None:
        return MigrationContext.configure(sync_conn).get_current_revision()

    async with db.read() as conn:
        return await conn.run_sync(run)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


async def revision(db: Database, message: str) -> None:
    """Autogenerate a new revision from the difference between tables.py and the database."""

    def run(sync_conn: sa.Connection) -> None:
        command.revision(_config(sync_conn), message=message, autogenerate=True)

    async with db.write() as conn:
        await conn.run_sync(run)
