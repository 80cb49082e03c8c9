"""SQLite's WAL is folded into the database by a background task, not inside commits."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import sqlalchemy as sa

from corral.store.db import Database

ROWS = sa.table("blobs", sa.column("data", sa.LargeBinary))


async def _write_rows(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(sa.text("CREATE TABLE IF NOT EXISTS blobs (data BLOB)"))
        await conn.execute(sa.insert(ROWS), [{"data": bytes(4096)} for _ in range(1000)])


def _size(path: Path) -> int:
    return os.stat(path).st_size


async def _database_pages_written(path: Path, timeout: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if _size(path) >= 2**21:  # the rows left the WAL for the database file
            return True
        await asyncio.sleep(0.02)
    return False


async def test_commits_leave_the_wal_to_the_checkpointer(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await _write_rows(db)  # >1,000 pages: past SQLite's default mark, under ours
        assert _size(path) < 2**21 and _size(tmp_path / "c.db-wal") >= 2**21
        assert not await _database_pages_written(path, 0.3)  # nobody checkpoints yet

        db.start_checkpoints(every=0.05)
        assert await _database_pages_written(path, 5.0)
        async with db.read() as conn:  # every row still there
            count = (await conn.execute(sa.select(sa.func.count()).select_from(ROWS))).scalar()
        assert count == 1000
    finally:
        await db.dispose()
    assert db._checkpointer is None  # stopped with the database
