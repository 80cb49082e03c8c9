"""The Alembic-free schema check agrees with Alembic."""

from __future__ import annotations

from pathlib import Path

from corral.store import migrate, schema_version
from corral.store.db import Database
from tests.support.databases import sqlite_url


async def test_head_and_current_match_alembic(tmp_path: Path) -> None:
    assert schema_version.head_revision() == migrate.head_revision()
    db = Database(sqlite_url(tmp_path))
    try:
        assert await schema_version.current_revision(db) is None
        await migrate.upgrade(db)
        assert await schema_version.current_revision(db) == migrate.head_revision()
    finally:
        await db.dispose()
