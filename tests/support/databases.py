"""Fresh databases for tests: a SQLite file, or a PostgreSQL database cloned from a template.

PostgreSQL comes from ``CORRAL_TEST_DATABASE_URL`` (default: the role and database ``.ci/run``
creates on loopback). The schema is migrated once into a template database; each test then gets
``CREATE DATABASE ... TEMPLATE`` (fast), and every database made here is dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from corral.store import migrate
from corral.store.db import Database

DEFAULT_PG = "postgresql://corral:corral@127.0.0.1:5432/corral_test"


def pg_admin_url() -> str:
    return os.environ.get("CORRAL_TEST_DATABASE_URL", DEFAULT_PG)


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


class PostgresFactory:
    def __init__(self) -> None:
        self.admin = pg_admin_url()
        self.template: str | None = None
        self.created: list[str] = []
        self.unavailable: str | None = None

    async def _execute(self, sql: str) -> None:
        conn = await asyncpg.connect(_asyncpg_dsn(self.admin), timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def _ensure_template(self) -> str:
        if self.template is None:
            name = f"corral_tpl_{uuid.uuid4().hex[:10]}"
            await self._execute(f'CREATE DATABASE "{name}"')
            self.created.append(name)
            db = Database(_asyncpg_dsn(self.admin, name))
            await migrate.upgrade(db)
            await db.dispose()
            self.template = name
        return self.template

    async def new_database(self) -> str:
        template = await self._ensure_template()
        name = f"corral_t_{uuid.uuid4().hex[:12]}"
        await self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self.created.append(name)
        return _asyncpg_dsn(self.admin, name)

    async def _drop(self, name: str) -> None:
        # An autovacuum worker connected to the database makes FORCE fail for a non-superuser
        # ("must be a member of the role whose process is being terminated"); it leaves soon.
        for attempt in range(20):
            try:
                await self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return
            except asyncpg.PostgresError:
                if attempt == 19:
                    raise
                await asyncio.sleep(0.25)

    async def drop(self, url: str) -> None:
        name = make_url(url).database
        assert name is not None
        await self._drop(name)
        if name in self.created:
            self.created.remove(name)

    async def drop_all(self) -> None:
        for name in list(reversed(self.created)):
            await self._drop(name)
        self.created.clear()

    async def check(self) -> str | None:
        try:
            await asyncio.wait_for(self._execute("SELECT 1"), 8)
        except Exception as exc:
            return f"PostgreSQL not reachable at {self.admin}: {exc}"
        return None


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'corral.db'}"
