"""A replica keeps the PostgreSQL connections it opened: a burst above the pool's base size
must not leave it opening and closing a connection (a backend fork) per request."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from corral.store.db import Database
from tests.support.databases import PostgresFactory


async def _burst(db: Database, width: int) -> set[int]:
    """``width`` reads at once; the backend pids that served them."""
    entered = asyncio.Event()
    inside = 0

    async def one() -> int:
        nonlocal inside
        async with db.read() as conn:
            inside += 1
            if inside == width:
                entered.set()
            await asyncio.wait_for(entered.wait(), 10)  # all hold a connection together
            return int((await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())

    return set(await asyncio.gather(*(one() for _ in range(width))))


async def test_connections_beyond_the_base_size_are_kept(postgres: PostgresFactory) -> None:
    if postgres.unavailable:
        raise AssertionError(postgres.unavailable)
    url = await postgres.new_database()
    db = Database(url, pool_size=2, max_overflow=4)
    try:
        first = await _burst(db, 6)
        assert len(first) == 6
        for _ in range(3):
            assert await _burst(db, 6) == first  # the same six backends, none reopened
    finally:
        await db.engine.dispose()
        await postgres.drop(url)
