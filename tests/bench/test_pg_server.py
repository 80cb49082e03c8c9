"""The benchmark's own PostgreSQL: starts with the documented settings, leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from bench.harness import Databases, database
from bench.pg_server import SETTINGS, PgServer, dedicated


async def test_a_dedicated_server_runs_with_the_settings_and_is_removed(tmp_path: Path) -> None:
    async with dedicated() as server:
        assert isinstance(server, PgServer), server
        conn = await asyncpg.connect(server.admin_url)
        try:
            for name in ("wal_compression", "checkpoint_timeout", "synchronous_commit", "fsync"):
                shown = await conn.fetchval(f"SHOW {name}")
                assert shown == {**SETTINGS, "synchronous_commit": "on", "fsync": "on"}[name]
            directory = Path(str(await conn.fetchval("SHOW data_directory"))).parent
        finally:
            await conn.close()
        dbs = Databases(tmp_path, server.admin_url)
        async with database(dbs, "postgres", "probe") as url:
            migrated = await asyncpg.connect(url)
            try:
                assert await migrated.fetchval("SELECT count(*) FROM sessions") == 0
            finally:
                await migrated.close()
        await dbs.aclose()
    assert not directory.exists()
